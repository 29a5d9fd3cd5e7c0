"""The probe fleet's pacing: waves of probes within the query budget, and a fan-out that keeps the
node order and never runs more probes at once than the budget allows."""

from __future__ import annotations

import random
import threading
import time

import pytest

from pytest_k8sdns.probe.fleet import (
    MAX_PARALLEL_EXECS,
    QUERIES_PER_LOOKUP,
    Fleet,
    Load,
    paced_qps,
    waves,
)


def test_waves_times_each_probes_rate_stays_within_the_budget() -> None:
    rng = random.Random(0)
    for _ in range(20_000):
        probes, qps, budget = rng.randint(1, 60), rng.uniform(0.1, 600), rng.uniform(1, 2000)
        w = waves(probes, qps, budget)
        assert 1 <= w <= min(probes, MAX_PARALLEL_EXECS)
        assert w == 1 or w * qps <= budget, (probes, qps, budget, w)
        # and it is the most that fit: one more probe would break the budget (or there is none)
        assert w == min(probes, MAX_PARALLEL_EXECS) or (w + 1) * qps > budget


@pytest.mark.parametrize(("probes", "qps", "budget", "expected"), [
    (0, 10, 500, 0),  # nothing to run
    (3, 1000, 500, 1),  # one probe over the budget still runs, alone
    (10, 100, 500, 5),
    (10, 50, 500, 10),
    (40, 1, 500, MAX_PARALLEL_EXECS),  # websockets to the API server, whatever the budget
    (5, 0, 500, 5),  # a probe that sends nothing costs nothing
])
def test_waves_examples(probes: int, qps: float, budget: float, expected: int) -> None:
    assert waves(probes, qps, budget) == expected


def test_paced_qps_never_asks_more_than_the_budget_and_zero_means_the_budgets_rate() -> None:
    assert paced_qps(50, QUERIES_PER_LOOKUP, 500) == 50
    assert paced_qps(1000, QUERIES_PER_LOOKUP, 500) == 250
    assert paced_qps(0, QUERIES_PER_LOOKUP, 500) == 250
    rng = random.Random(1)
    for _ in range(5000):
        asked, per, budget = rng.choice([0, rng.uniform(0.1, 2000)]), rng.choice([1, 2, 8]), rng.uniform(1, 2000)
        rate = paced_qps(asked, per, budget)
        assert rate * per <= budget * (1 + 1e-12)
        assert rate == (budget / per if asked == 0 else min(asked, budget / per))


def test_a_paced_probe_at_the_budgets_rate_runs_alone() -> None:
    qps = paced_qps(0, QUERIES_PER_LOOKUP, 500) * QUERIES_PER_LOOKUP
    assert waves(8, qps, 500) == 1


class Counter:
    """fn for Fleet.each: counts the calls in flight and the most seen at once."""

    def __init__(self, pause: float = 0.03, fail: str = "") -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.seen: list[str] = []
        self.pause, self.fail = pause, fail

    def __call__(self, pod: str) -> str:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.seen.append(pod)
        try:
            time.sleep(self.pause)
            if pod == self.fail:
                raise RuntimeError(f"exec in {pod} failed")
            return pod.upper()
        finally:
            with self.lock:
                self.now -= 1


NODES = [f"worker{i}" for i in (7, 2, 9, 1, 5, 3, 8, 4)]  # placement order, not sorted


def fleet(budget: float) -> Fleet:
    pods = {}
    for node in NODES:
        pods[(node, "glibc")] = f"{node}-glibc"
        pods[(node, "musl")] = f"{node}-musl"
    return Fleet(pods, budget)  # type: ignore[arg-type]  # any object stands in for a ProbePod


@pytest.mark.parametrize(("budget", "qps"), [(500, 100), (500, 250), (500, 600), (1000, 10), (60, 20)])
def test_each_keeps_the_node_order_and_never_runs_more_than_its_waves(budget: float, qps: float) -> None:
    f, fn = fleet(budget), Counter()
    got = f.each("musl", fn, qps_per_probe=qps)
    allowed = waves(len(NODES), qps, budget)
    assert list(got) == NODES
    assert got == {node: f"{node}-musl".upper() for node in NODES}
    assert sorted(fn.seen) == sorted(f"{n}-musl" for n in NODES)
    assert fn.most <= allowed
    if allowed > 1:
        assert fn.most > 1  # the budget's parallelism is used
    assert f.loads == [Load(len(NODES), allowed, qps)]
    assert f.loads[0].peak_qps <= max(budget, qps)


def test_each_on_some_nodes_keeps_the_fleets_order() -> None:
    f = fleet(500)
    got = f.each("glibc", Counter(0), qps_per_probe=10, nodes=["worker4", "worker7", "worker1"])
    assert list(got) == ["worker7", "worker1", "worker4"]
    assert f.loads == [Load(3, 3, 10)]


def test_a_failing_probe_is_raised_once_the_others_have_ended() -> None:
    fn = Counter(fail="worker7-glibc")
    with pytest.raises(RuntimeError, match="exec in worker7-glibc failed"):
        fleet(500).each("glibc", fn, qps_per_probe=10)
    assert len(fn.seen) == len(NODES) and fn.now == 0


def test_a_failing_probe_in_serial_waves_lets_the_others_run() -> None:
    fn = Counter(0, fail="worker7-glibc")
    with pytest.raises(RuntimeError):
        fleet(10).each("glibc", fn, qps_per_probe=10)
    assert len(fn.seen) == len(NODES)


def test_pod_of_and_first() -> None:
    f = fleet(500)
    assert f.nodes == tuple(NODES)
    assert f.of("musl") == {n: f"{n}-musl" for n in NODES}
    assert f.first("glibc") == "worker7-glibc" and f.pod("worker3", "musl") == "worker3-musl"


def test_loads_are_recorded_from_concurrent_fan_outs() -> None:
    f = fleet(1000)
    threads = [threading.Thread(target=f.each, args=(libc, Counter(0.005)), kwargs={"qps_per_probe": 50})
               for libc in ("glibc", "musl") * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert f.loads == [Load(len(NODES), 8, 50)] * 8


def test_one_name_is_that_names_part_of_a_batch_as_if_asked_alone() -> None:
    from pytest_k8sdns.probe.fleet import one_name
    from pytest_k8sdns.probe.results import LookupResult, LookupRow, LookupTotals

    rows = (LookupRow(0, 0, 5_000_000, True, 0, 1), LookupRow(1, 10, 10_000_000_000, False, -3, 0),
            LookupRow(2, 20, 3_000_000, False, -2, 0))
    batch = LookupResult(("a", "b", "c"), "inet", "any", rows, (("10.0.0.1",), None, None),
                         {-3: "gaierror: try again", -2: "gaierror: no name"}, LookupTotals(3, 1, 2, 10**10, 0.3),
                         "count", concurrency=3)
    b = one_name(batch, 1)
    assert b.names == ("b",) and b.addresses == (None,) and b.errors == {-3: "gaierror: try again"}
    assert b.rows == (LookupRow(0, 10, 10_000_000_000, False, -3, 0),)
    assert (b.totals.lookups, b.totals.ok, b.totals.failed, b.totals.elapsed_ns) == (1, 0, 1, 10_000_000_010)
    a = one_name(batch, 0)
    assert a.addresses == (("10.0.0.1",),) and a.errors == {} and a.totals.ok == 1 and a.rows[0].name_index == 0


def test_waves_keep_the_execs_of_probes_that_hold_several_within_the_cap() -> None:
    assert waves(40, 1, 500, execs_per_probe=3) == MAX_PARALLEL_EXECS // 3
    assert waves(40, 1, 500, execs_per_probe=MAX_PARALLEL_EXECS + 1) == 1  # one at a time, never none
    assert waves(2, 1, 500, execs_per_probe=3) == 2
