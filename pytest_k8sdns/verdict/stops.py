"""The latency bounds, each written once: as a per-node Bound the verdict judges by, and as the
probe's stop rule that ends sampling once breaking it is certain."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_k8sdns.config import Settings
from pytest_k8sdns.evidence import stats
from pytest_k8sdns.evidence.latency import BurstRetries, LookupLatency, shown
from pytest_k8sdns.probe.results import LookupResult
from pytest_k8sdns.verdict.pernode import Bound, NodeVerdict


def allowed_errors(s: Settings, samples: int | None = None) -> int:
    """Failed lookups a full sample (of --k8sdns-samples unless given) may hold within --k8sdns-max-error-rate."""
    return math.floor(s.max_error_rate * (samples or s.samples) + 1e-9)


def allowed_slow(samples: int) -> int:
    """Lookups over the p99 bound a sample of this size may hold (nearest-rank p99)."""
    return samples - math.ceil(0.99 * samples)


def latency_rules(s: Settings, libc: str, *, samples: int | None = None, p99_ms: float | None = None
                  ) -> list[dict[str, Any]]:
    """When a node's paced lookups have already failed: more failures than the error budget, more
    lookups at the retry signature than allowed, or more over the p99 bound than a p99 can hide.
    `samples` and `p99_ms` default to the cluster-name check's."""
    samples, p99_ms = samples or s.samples, p99_ms or s.p99_ms
    return [
        {"outcome": "failed", "more_than": allowed_errors(s, samples)},
        {"outcome": "any", "min_latency_ns": int(stats.retry_threshold(libc) * 1e9), "more_than": s.max_retry_signatures},
        {"outcome": "ok", "min_latency_ns": int(p99_ms * 1e6) + 1, "more_than": allowed_slow(samples)},
    ]


def retry_rules(s: Settings, libc: str) -> list[dict[str, Any]]:
    return [{"outcome": "any", "min_latency_ns": int(stats.retry_threshold(libc) * 1e9),
             "more_than": s.max_retry_signatures}]


def _kinds(ev: LookupLatency) -> str:
    return f" ({', '.join(sorted(set(ev.error_kinds.values())))[:160]})" if ev.error_kinds else ""


def latency_bounds(s: Settings, libc: str, *, samples: int | None = None, p99_ms: float | None = None,
                   p50: bool = True) -> list[Bound[LookupLatency]]:
    threshold = stats.retry_threshold(libc)
    p99_ms = p99_ms or s.p99_ms
    return [
        Bound("failed lookups", lambda ev: ev.errors, allowed_errors(s, samples),
              lambda ev: f"{ev.errors} of {ev.count} lookups failed{_kinds(ev)}"),
        Bound("lookups at the retry signature", lambda ev: ev.retry_signatures, s.max_retry_signatures,
              lambda ev: f"{ev.retry_signatures} of {ev.count} lookups at the retry signature (>= {threshold} s)"),
        Bound("p99", lambda ev: ev.p99_ms, p99_ms, lambda ev: f"p99 {shown(ev.p99_ms)} ms", "ms"),
        *([Bound("p50", lambda ev: ev.p50_ms, s.p50_ms, lambda ev: f"p50 {shown(ev.p50_ms)} ms", "ms")] if p50 else []),
    ]


def latency_expected(s: Settings, libc: str) -> str:
    return (f"on each node p50 <= {s.p50_ms} ms, p99 <= {s.p99_ms} ms, at most {allowed_errors(s)} failed of "
            f"{s.samples} (error rate {s.max_error_rate}) and at most {s.max_retry_signatures} at the retry "
            f"signature (>= {stats.retry_threshold(libc)} s)")


def latency_fix(broken: tuple[str, ...]) -> str:
    if "failed lookups" in broken or "lookups at the retry signature" in broken:
        return ("queries are lost on the way to the cluster DNS from the nodes named: test_replicas.py names the "
                "replica or node; check conntrack -S (insert_failed) there and CoreDNS errors and restarts")
    if "p99" in broken:
        return "a slow tail: look for lost packets (conntrack -S insert_failed) and CoreDNS saturation"
    return "the cluster DNS is slow for every query: check its CPU and upstream"


def retry_bound(s: Settings, libc: str) -> Bound[BurstRetries]:
    return Bound("lookups at the retry signature", lambda ev: ev.retry_signatures, s.max_retry_signatures,
                 lambda ev: f"{ev.retry_signatures} of {ev.lookups} lookups at the retry signature")


def stopped_early(runs: Mapping[str, LookupResult], planned: int | None) -> str:
    """The note ' (sampling stopped once the failure was certain: worker2 after 9 of 300 lookups)', or '' when
    every run ran in full."""
    stopped = [(node, run) for node, run in runs.items() if run.stopped == "verdict"]
    if not stopped:
        return ""
    of = f" of {planned}" if planned else ""
    said = ", ".join(f"{node} after {len(run.rows) + len(run.in_flight)}{of} lookups" + _running(run)
                     for node, run in stopped)
    return f" (sampling stopped once the failure was certain: {said})"


def _running(run: LookupResult) -> str:
    if not run.in_flight:
        return ""
    longest = max(r.waited_s for r in run.in_flight)
    return f" ({len(run.in_flight)} still running, the longest for {longest:.1f} s)"


#: The bounds whose breaking means lost queries, whose cause the node x replica matrix can place.
LOSS_BOUNDS = ("failed lookups", "lookups at the retry signature")


def root_cause(verdict: NodeVerdict, causes: Callable[[], Sequence[str]]) -> str:
    """The note '. Root cause: ...' for a verdict that saw lost queries, when the matrix placed them."""
    if verdict.ok or not any(b in verdict.broken for b in LOSS_BOUNDS):
        return ""
    found = causes()
    return f". Root cause: {'; '.join(found)}" if found else ""
