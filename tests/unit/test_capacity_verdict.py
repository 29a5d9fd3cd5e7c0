"""verdict/capacity.py: the knee, the headroom and the ramp, on synthetic load steps (pure logic)."""

from __future__ import annotations

from bisect import bisect_left

import pytest

from pytest_k8sdns.probe.load import LoadStep
from pytest_k8sdns.probe.protocol import LOAD_BUCKETS_NS
from pytest_k8sdns.verdict.capacity import (
    CapacityBounds,
    Demand,
    figures,
    judge,
    judge_class,
    merge,
    per_pod,
    rate_ramp,
)

BOUNDS = CapacityBounds(max_loss=0.01, p99_ms=100.0, min_headroom=2.0)


def step(rate: float, *, sent: int | None = None, lost: int = 0, latency_ms: float = 1.0, rcode: str = "NOERROR",
         empty: int = 0, step_s: float = 1.0) -> LoadStep:
    sent = int(rate * step_s) if sent is None else sent
    answered = sent - lost
    hist = [0] * (len(LOAD_BUCKETS_NS) + 1)
    hist[bisect_left(LOAD_BUCKETS_NS, int(latency_ms * 1e6))] = answered
    return LoadStep(rate=rate, sent=sent, answered=answered, timeouts=lost, send_errors=0, truncated=0, empty=empty,
                    rcodes={rcode: answered} if answered else {}, histogram=tuple(hist))


def test_the_knee_is_the_last_step_that_held_before_the_first_that_lost_too_much() -> None:
    ramp = [step(1000), step(2000), step(4000, lost=100), step(8000)]  # the last one recovers: not counted
    cap = judge_class("internal", "kubernetes.default.svc.cluster.local", [ramp], 1.0, BOUNDS)
    assert cap.knee_qps == 2000 and cap.reached
    assert cap.broke is not None and cap.broke.asked_qps == 4000 and "2.50 % lost or wrong > 1 %" in cap.broke.why
    assert cap.peak_qps == 8000


def test_a_p99_past_its_bound_breaks_a_step_with_no_loss() -> None:
    ramp = [step(1000), step(2000, latency_ms=150)]
    cap = judge_class("internal", "k", [ramp], 1.0, BOUNDS)
    assert cap.knee_qps == 1000 and cap.broke is not None and cap.broke.why.startswith("p99 ")


def test_unexpected_rcodes_and_empty_answers_count_as_bad_per_class() -> None:
    nx = step(1000, rcode="NXDOMAIN")
    assert not figures(nx, 1.0, "NOERROR", BOUNDS).held  # an internal name answered NXDOMAIN
    assert figures(nx, 1.0, "NXDOMAIN", BOUNDS).held  # the nxdomain class expects it
    empty = figures(step(1000, empty=50), 1.0, "NOERROR", BOUNDS)
    assert not empty.held and empty.kinds["empty"] == 50 and empty.bad == 50


def test_pods_merge_step_by_step_as_far_as_every_pod_got() -> None:
    a = [step(500), step(1000), step(2000)]
    b = [step(500), step(1000)]  # stopped early
    merged = merge([a, b])
    assert [s.rate for s in merged] == [1000, 2000] and merged[1].sent == 2000
    cap = judge_class("internal", "k", [a, b], 1.0, BOUNDS)
    assert cap.pods == 2 and cap.knee_qps == 2000 and not cap.reached


def test_a_ramp_that_ends_short_found_the_load_pods_ceiling() -> None:
    ramp = [step(1000), step(2000, sent=1200)]  # asked 2000, could send 1200
    cap = judge_class("internal", "k", [ramp], 1.0, BOUNDS)
    assert cap.generator_bound and cap.knee_qps == 1200
    verdict = judge(cap, Demand(10.0, 0.0), BOUNDS)
    assert verdict.ok and "their ceiling, not the server's" in verdict.message


def test_headroom_below_the_minimum_fails_and_names_what_is_needed() -> None:
    cap = judge_class("internal", "k", [[step(100), step(200, lost=50)]], 1.0, BOUNDS)
    verdict = judge(cap, Demand(measured_qps=3.0, planned_qps=80.0), BOUNDS)
    assert not verdict.ok and verdict.headroom == 1.25
    assert "knee 100 qps" in verdict.message and "needs 160 qps" in verdict.message
    assert judge(cap, Demand(measured_qps=3.0, planned_qps=0.0), BOUNDS).ok  # x33 over the measured 3 qps


def test_a_first_step_that_breaks_has_no_knee_and_fails() -> None:
    cap = judge_class("internal", "k", [[step(100, lost=100)]], 1.0, BOUNDS)
    assert cap.knee_qps is None
    verdict = judge(cap, Demand(None, 0.0), BOUNDS)
    assert not verdict.ok and "first step already broke" in verdict.message


def test_no_demand_passes_and_says_there_is_nothing_to_compare_with() -> None:
    cap = judge_class("internal", "k", [[step(100)]], 1.0, BOUNDS)
    verdict = judge(cap, Demand(None, 0.0), BOUNDS)
    assert verdict.ok and verdict.headroom is None and "no demand" in verdict.message


def test_the_figures_at_a_target_rate_are_the_step_at_or_below_it() -> None:
    cap = judge_class("internal", "k", [[step(100), step(200), step(400)]], 1.0, BOUNDS)
    assert cap.at(300) is not None and cap.at(300).asked_qps == 200  # type: ignore[union-attr]
    assert cap.at(50).asked_qps == 100  # type: ignore[union-attr]


def test_the_ramp_grows_geometrically_and_ends_at_its_maximum() -> None:
    assert rate_ramp(100, 1000, 2) == [100, 200, 400, 800, 1000]
    assert rate_ramp(100, 800, 2) == [100, 200, 400, 800]
    assert len(rate_ramp(100, 50000, 1.1)) == 67
    assert per_pod([100, 300], 4) == [25, 75]
    with pytest.raises(ValueError):
        rate_ramp(100, 50, 2)
