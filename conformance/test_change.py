"""Check 16: DNS during a change. Probes on every chosen node (both libcs, and a long-lived UDP
socket in the glibc pod) query while the change runs: --k8sdns-during=COMMAND, or with
--k8sdns-disruptive the built-in scenarios (a CoreDNS rollout restart, one CoreDNS pod deleted, a
NodeLocal DNSCache rollout). It runs first, so the rest of the suite judges the cluster after it."""

from __future__ import annotations

import pytest

from pytest_k8sdns.verdict.disruption import advice
from pytest_k8sdns.verdict.expect import expect


@pytest.mark.k8sdns_check(16)
def test_dns_during_change(k8sdns_change, k8sdns_settings):
    """No lookup lost beyond --k8sdns-change-max-failed, no stream's run of failures longer than
    --k8sdns-change-max-gap-s, p99 within --k8sdns-change-p99-ms, the long-lived socket back within
    --k8sdns-socket-recovery-s, and the change itself ended with exit 0."""
    w = k8sdns_change
    f = w.verdict.figures
    expect(w.verdict.ok, f"DNS during {w.outcome.name} ({w.outcome.seconds:.0f} s, {f['lookups']} lookups from "
                         f"{len({s.node for s in w.timeline.streams})} nodes)",
           f"at most {k8sdns_settings.change_max_failed} failed, gaps within {k8sdns_settings.change_max_gap_s:g} s, "
           f"p99 within {k8sdns_settings.change_p99_ms:g} ms",
           w.verdict.message, advice(w.verdict, w.outcome.name))
