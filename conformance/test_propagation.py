"""Check 17: propagation and negative caching, from every chosen node through each libc. New
Services and headless pods must answer soon after they are ready; a name asked before its Service
existed must not stay NXDOMAIN much past the zone's negative TTL."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns.propagation import quantile_s
from pytest_k8sdns.evidence import propagation as evidence
from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.verdict.rootcause import spoiled_message


def _worst(propagation, kind, q):
    """(stream label, value) of the stream with the highest q-th percentile."""
    streams = evidence.by_stream(propagation, kind)
    key, delays = max(streams.items(), key=lambda kv: quantile_s(kv[1], q) or 0.0)
    return evidence.label(key), quantile_s(delays, q)


def _fail_if_spoiled(propagation, kind, bound, late, what, causes):
    """A measurement whose late streams each lost queries (timed-out lookups of their late names) says
    nothing about propagation: fail as spoiled, naming the transport's root cause, not the watch."""
    streams = {evidence.label(key): ds for key, ds in evidence.by_stream(propagation, kind).items()}
    timeouts = {label: sum(d.timed_out_before for d in streams[label] if d.seconds is None or d.seconds > bound)
                for label in late}
    if late and all(timeouts.values()):
        said = "; ".join(f"{label}: {n} lookups of its late names timed out" for label, n in sorted(timeouts.items()))
        pytest.fail(spoiled_message(what, f"on {', '.join(sorted(late))} ({said})", "timeouts", causes()),
                    pytrace=False)


@pytest.mark.k8sdns_check(17)
@pytest.mark.parametrize("kind", ["service", "headless-pod"])
def test_new_names_answer_soon(propagation, k8sdns_settings, k8sdns_record, root_causes, kind):
    """From a Service created (or a headless pod Ready) to its name answering, per node and libc:
    p99 over --k8sdns-propagation-objects objects within --k8sdns-propagation-p99-s."""
    k8sdns_record.add(*evidence.measurements(propagation, kind))
    header, rows = evidence.table(propagation, kind)
    k8sdns_record.table(f"{kind} names: seconds from ready to answering ({propagation.path})", header, rows)
    bound = k8sdns_settings.propagation_p99_s
    late = {evidence.label(key): quantile_s(ds, 99) for key, ds in evidence.by_stream(propagation, kind).items()
            if (quantile_s(ds, 99) or 0.0) > bound}
    label, worst = _worst(propagation, kind, 99)
    what = f"{kind} names from {len(evidence.by_stream(propagation, kind))} streams ({propagation.path})"
    _fail_if_spoiled(propagation, kind, bound, late, what, root_causes)
    expect(not late, what,
           f"p99 <= {bound:g} s on each", f"p99 over the bound on {sorted(late)} (worst {label}: {worst:.2f} s)",
           "a slow watch between the API server and CoreDNS, or an EndpointSlice controller that lags; see "
           "kubernetes/kubernetes#127259")


@pytest.mark.k8sdns_check(17)
def test_negative_window(propagation, k8sdns_settings, k8sdns_record, root_causes):
    """A name asked (and denied) before its Service existed answers within --k8sdns-negative-window-s
    of the Service's creation, on every node and libc."""
    k8sdns_record.add(*evidence.measurements(propagation, "primed"))
    header, rows = evidence.table(propagation, "primed")
    k8sdns_record.table(f"names asked before their Service: seconds of NXDOMAIN after it ({propagation.path})",
                        header, rows)
    bound = k8sdns_settings.negative_window_s
    label, worst = _worst(propagation, "primed", 100)
    late = [evidence.label(key) for key, ds in evidence.by_stream(propagation, "primed").items()
            if (quantile_s(ds, 100) or 0.0) > bound]
    _fail_if_spoiled(propagation, "primed", bound, late, "names asked before their Service existed", root_causes)
    expect(worst is not None and worst <= bound, "names asked before their Service existed",
           f"answering within {bound:g} s of its creation on every node and libc",
           f"{label} kept NXDOMAIN for {worst:.1f} s" if worst != float("inf") else f"{label} never answered",
           "a cache keeps denials longer than the zone's negative TTL: lower `cache ... denial` (CoreDNS, NodeLocal) "
           "or the kubernetes plugin's `ttl` (kubernetes/kubernetes#92559)")
