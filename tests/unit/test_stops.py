"""Latency bounds and the probe's stop rules: a rule stops a run only when the full sample fails
too; and the root-cause rule that a timed-out lookup is never blamed on its record."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import pytest

from pytest_k8sdns.config import Settings
from pytest_k8sdns.evidence.latency import burst_retries, lookup_latency
from pytest_k8sdns.probe.results import (
    InFlightLookup,
    LookupResult,
    LookupRow,
    LookupTotals,
    QueryReply,
)
from pytest_k8sdns.verdict.pernode import NodeVerdict, judge
from pytest_k8sdns.verdict.rootcause import (
    OWNER,
    lookup_spoiled,
    reply_spoiled,
    spoiled_message,
)
from pytest_k8sdns.verdict.stops import (
    allowed_errors,
    allowed_slow,
    latency_bounds,
    latency_rules,
    root_cause,
    stopped_early,
)

RETRY_NS = {"glibc": 5_000_000_000, "musl": 2_500_000_000}


def row(latency_ns: int, error_code: int = 0) -> LookupRow:
    return LookupRow(0, 0, latency_ns, error_code == 0, error_code, 1 if error_code == 0 else 0)


def run(rows: Sequence[LookupRow], stopped: str = "count") -> LookupResult:
    ok = sum(r.ok for r in rows)
    errors = {r.error_code: "error" for r in rows if not r.ok}
    return LookupResult(("kubernetes.default.svc.cluster.local.",), "any", "stream", tuple(rows), (None,), errors,
                        LookupTotals(len(rows), ok, len(rows) - ok, 10**9, float(len(rows))), stopped)


def verdict(rows: Sequence[LookupRow], s: Settings, libc: str) -> NodeVerdict:
    return judge({"worker": lookup_latency(run(rows), libc)}, latency_bounds(s, libc))


def stop_at(rows: Sequence[LookupRow], rules: list[dict]) -> tuple[int, int] | None:
    """The probe's rule, row by row: (rows run, the rule that tripped), None if none did."""
    matched = [0] * len(rules)
    for n, r in enumerate(rows, 1):
        for i, rule in enumerate(rules):
            outcome = rule["outcome"] == "any" or (rule["outcome"] == "ok") == r.ok
            matched[i] += outcome and r.latency_ns >= rule.get("min_latency_ns", 0)
        for i, rule in enumerate(rules):
            if matched[i] > rule["more_than"]:
                return n, i
    return None


def sample(rng: random.Random, s: Settings, libc: str) -> list[LookupRow]:
    fail, slow, retry = (rng.choice([0.0, 0.001, 0.003, 0.008, 0.02]) for _ in range(3))
    bound = int(s.p99_ms * 1e6)
    edges = [bound, bound + 1, RETRY_NS[libc] - 1, RETRY_NS[libc]]  # either side of each rule's cut
    rows = []
    for _ in range(s.samples):
        ns = int(rng.lognormvariate(14.5, 0.6))  # ~2 ms
        if rng.random() < slow:
            ns = rng.choice([*edges[:2], rng.randrange(bound, 3 * bound)])
        if rng.random() < retry:
            ns = rng.choice([*edges[2:], RETRY_NS[libc] + rng.randrange(10**9)])
        failed = rng.random() < fail  # a failure is often slow too: it must not count as a slow success
        ns = rng.choice([ns, rng.randrange(bound, 3 * bound)]) if failed else ns
        rows.append(row(ns, rng.choice([-3, -2]) if failed else 0))
    return rows


@pytest.mark.parametrize("libc", ["glibc", "musl"])
@pytest.mark.parametrize("samples", [100, 300, 2000])
def test_a_run_stops_only_when_its_full_sample_and_its_prefix_fail(libc: str, samples: int) -> None:
    tripped = [0, 0, 0]
    for seed in range(150 if samples < 2000 else 40):
        rng = random.Random(seed * 7919 + samples)
        s = Settings(samples=samples, p99_ms=rng.choice([20.0, 100.0, 4.1]), max_error_rate=rng.choice([0.001, 0.01]),
                     max_retry_signatures=rng.choice([0, 2]))
        rows = sample(rng, s, libc)
        stop = stop_at(rows, latency_rules(s, libc))
        if stop is None:
            continue
        n, rule = stop
        tripped[rule] += 1
        assert not verdict(rows, s, libc).ok, (seed, s, rule)
        assert not verdict(rows[:n], s, libc).ok, (seed, s, rule, n)
    assert all(tripped), tripped  # every rule was put to the test


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_the_error_and_retry_rules_stop_exactly_when_their_bound_breaks(libc: str) -> None:
    rng = random.Random(5)
    for _ in range(200):
        s = Settings(samples=300, max_error_rate=0.01, max_retry_signatures=rng.choice([0, 1]), p99_ms=10**6)
        rows = sample(rng, s, libc)
        stop = stop_at(rows, latency_rules(s, libc)[:2])
        broken = verdict(rows, s, libc).broken
        assert (stop is not None) == any(b in broken for b in ("failed lookups", "lookups at the retry signature"))


def test_slow_failures_are_not_slow_successes() -> None:
    s = Settings(samples=2000, p99_ms=100.0, max_error_rate=0.01)
    slow, failed_slow = row(150_000_000), row(150_000_000, -3)
    rows = [row(1_000_000)] * 1971 + [slow] * 19 + [failed_slow] * 10  # the p99 of 1990 successes hides 19
    assert verdict(rows, s, "glibc").ok
    assert stop_at(rows, latency_rules(s, "glibc")) is None


@pytest.mark.parametrize(("samples", "rate", "errors"), [
    (100, 0.001, 0), (100, 0.01, 1), (300, 0.001, 0), (300, 0.01, 3), (2000, 0.001, 2), (2000, 0.01, 20)])
def test_allowed_errors_at_the_edges(samples: int, rate: float, errors: int) -> None:
    s = Settings(samples=samples, max_error_rate=rate)
    assert allowed_errors(s) == errors
    ok = [row(1_000_000)] * (samples - errors - 1)
    assert verdict([*ok, row(1_000_000), *[row(1_000_000, -3)] * errors], s, "glibc").ok
    assert verdict([*ok, *[row(1_000_000, -3)] * (errors + 1)], s, "glibc").broken == ("failed lookups",)


@pytest.mark.parametrize(("samples", "slow"), [(1, 0), (99, 0), (100, 1), (101, 1), (300, 3), (2000, 20)])
def test_allowed_slow_is_what_a_nearest_rank_p99_hides(samples: int, slow: int) -> None:
    assert allowed_slow(samples) == slow
    s = Settings(samples=samples, p99_ms=100.0, p50_ms=10**6)
    fast, late = row(1_000_000), row(100_000_001)
    assert verdict([fast] * (samples - slow) + [late] * slow, s, "glibc").ok
    assert verdict([fast] * (samples - slow - 1) + [late] * (slow + 1), s, "glibc").broken == ("p99",)


def test_latency_rules_for_each_libc() -> None:
    s = Settings(samples=300, p99_ms=100.0, max_error_rate=0.01, max_retry_signatures=1)
    assert latency_rules(s, "glibc") == [
        {"outcome": "failed", "more_than": 3},
        {"outcome": "any", "min_latency_ns": 5_000_000_000, "more_than": 1},
        {"outcome": "ok", "min_latency_ns": 100_000_001, "more_than": 3}]
    assert latency_rules(s, "musl")[1]["min_latency_ns"] == 2_500_000_000


def test_a_p99_exactly_at_its_bound_passes() -> None:
    assert verdict([row(4_100_000)] * 100, Settings(samples=100, p99_ms=4.1), "glibc").ok


def test_stopped_early_names_the_nodes_that_stopped() -> None:
    runs = {"worker": run([row(1)] * 300), "worker2": run([row(1)] * 9, "verdict"), "worker3": run([row(1)], "verdict")}
    assert stopped_early(runs, 300) == (" (sampling stopped once the failure was certain: worker2 after 9 of 300 "
                                        "lookups, worker3 after 1 of 300 lookups)")
    assert stopped_early(runs, None).endswith(": worker2 after 9 lookups, worker3 after 1 lookups)")
    assert stopped_early({"worker": runs["worker"], "w": run([], "duration")}, 300) == ""


def test_root_cause_only_for_lost_queries() -> None:
    lost = NodeVerdict({"w": ("x",)}, ("lookups at the retry signature",), "w: x")
    slow = NodeVerdict({"w": ("x",)}, ("p99",), "w: x")
    assert root_cause(lost, lambda: ["replica a", "node b"]) == ". Root cause: replica a; node b"
    assert root_cause(lost, list) == ""
    assert root_cause(slow, lambda: pytest.fail("the matrix is not asked about a slow tail")) == ""
    assert root_cause(NodeVerdict({}, (), ""), lambda: pytest.fail("not asked")) == ""


@pytest.mark.parametrize("libc", ["glibc", "musl"])
def test_timed_out_lookups_are_spoiled_and_a_fast_nxdomain_is_not(libc: str) -> None:
    retry = RETRY_NS[libc]
    assert lookup_spoiled(run([row(1_000_000), row(3_000_000, -2)]), libc) == ""  # a genuine NXDOMAIN
    assert lookup_spoiled(run([row(retry - 1, -2)]), libc) == ""
    assert lookup_spoiled(run([row(1_000_000, -3), row(retry + 1, -3)]), libc) == "2 EAI_AGAIN (no answer in time, or SERVFAIL)"
    late = lookup_spoiled(run([row(retry, -2), row(2_000_000, -2)]), libc)
    assert late.startswith(f"1 failed only after {retry / 1e9} s, the {libc} retry time")
    both = lookup_spoiled(run([row(1, -3), row(retry + 5, -2), row(retry * 2)]), libc)
    assert both.startswith("1 EAI_AGAIN") and ", 1 failed only after" in both


def test_reply_spoiled() -> None:
    assert reply_spoiled(QueryReply(1, "NOERROR", None, ())) == ""
    assert reply_spoiled(QueryReply(1, "NXDOMAIN", None, ())) == ""
    assert reply_spoiled(QueryReply(1, "SERVFAIL", None, ())) == "SERVFAIL"
    assert reply_spoiled(QueryReply(1, None, "timeout after 2 s", ())) == "no reply (timeout after 2 s)"


@pytest.mark.parametrize("causes", [[], ["replica coredns-a (10.244.1.2) answered 0 of 20"]])
def test_spoiled_message_names_the_owner_and_never_blames_the_record(causes: list[str]) -> None:
    text = spoiled_message("web.ns A", "from worker2", "3 EAI_AGAIN", causes)
    assert text.startswith("web.ns A: not judged, the measurement from worker2 was spoiled by 3 EAI_AGAIN: "
                           "a transport failure, not a fault of the record or the search list.")
    assert text.endswith(f"({OWNER})")
    assert ("root cause: replica coredns-a" in text) == bool(causes)
    lowered = text.lower()
    assert "record problem" not in lowered and "search problem" not in lowered and "nxdomain" not in lowered


def test_a_lookup_still_running_past_the_threshold_is_a_retry_signature_and_nothing_else() -> None:
    """The probe ended the run on a lookup still running at 5.2 s (glibc): it counts as a lookup at
    the retry signature, and neither as a failure nor in the percentiles; one at 1 s counts as nothing."""
    s = Settings(samples=300, p99_ms=100.0, max_error_rate=0.01)
    stopped = dataclasses.replace(run([row(1_000_000)] * 3, "verdict"), stop_rule=1,
                                  in_flight=(InFlightLookup(0, 10, 5_200_000_000), InFlightLookup(0, 20, 10**9)))
    ev = lookup_latency(stopped, "glibc")
    assert (ev.count, ev.errors, ev.retry_signatures, ev.p99_ms) == (4, 0, 1, 1.0)
    assert judge({"worker2": ev}, latency_bounds(s, "glibc")).broken == ("lookups at the retry signature",)
    assert stopped_early({"worker2": stopped}, 300) == (
        " (sampling stopped once the failure was certain: worker2 after 5 of 300 lookups (2 still running, the "
        "longest for 5.2 s))")
    bursts = burst_retries(dataclasses.replace(stopped, in_flight=(InFlightLookup(0, 10, 3_000_000_000, 0),)), "musl")
    assert (bursts.lookups, bursts.retry_signatures, bursts.max_ms) == (4, 1, 3000.0)
