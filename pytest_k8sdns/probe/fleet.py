"""The probe fleet: a probe pod of each libc on each chosen node, and a fan-out over them that keeps
all probes together within the run's query budget (--k8sdns-max-qps)."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pytest_k8sdns.probe.pods import ProbePod
from pytest_k8sdns.probe.results import LookupResult, LookupTotals

T = TypeVar("T")

#: Execs in flight at once, whatever the budget allows: each holds a websocket to the API server.
MAX_PARALLEL_EXECS = 16
#: DNS queries one libc lookup of an absolute name sends (A and AAAA, family any).
QUERIES_PER_LOOKUP = 2
#: The load of a probe that runs a handful of lookups per exec (the record checks): a partial name
#: under ndots:5 sends up to 8 queries for its 2 families, in an exec that takes 100 ms at best.
ONE_SHOT_QPS = 8 * 2 / 0.1


def waves(probes: int, qps_per_probe: float, budget_qps: float, execs_per_probe: int = 1) -> int:
    """How many probes may run at once so that together they send at most `budget_qps` (and hold at
    most MAX_PARALLEL_EXECS execs, each probe `execs_per_probe` of them)."""
    if probes <= 0:
        return 0
    fits = math.floor(budget_qps / qps_per_probe) if qps_per_probe > 0 else probes
    return max(1, min(probes, fits, MAX_PARALLEL_EXECS // max(1, execs_per_probe)))


def within_budget(interval_s: float, queries_per_interval: float, budget_qps: float) -> float:
    """The interval between one probe's groups of queries (a burst, a direct query), stretched so
    that one probe alone stays within the budget."""
    return max(interval_s, queries_per_interval / budget_qps)


def paced_qps(asked: float, queries_per_lookup: float, budget_qps: float) -> float:
    """The lookup rate of one probe: the asked rate, but never more than the whole budget
    (0, as fast as possible, becomes the budget's rate)."""
    ceiling = budget_qps / queries_per_lookup
    return ceiling if asked <= 0 else min(asked, ceiling)


@dataclasses.dataclass
class Load:
    """What a fan-out promised: probes at once and each one's query rate (for the results file)."""

    probes: int
    parallel: int
    qps_per_probe: float

    @property
    def peak_qps(self) -> float:
        return self.parallel * self.qps_per_probe


class Fleet:
    """Probe pods by (node, libc) on the nodes the placement chose, in the placement's order."""

    def __init__(self, pods: Mapping[tuple[str, str], ProbePod], budget_qps: float) -> None:
        self.pods = dict(pods)
        self.budget_qps = budget_qps
        self.nodes: tuple[str, ...] = tuple(dict.fromkeys(node for node, _ in self.pods))
        self.loads: list[Load] = []
        self._lock = threading.Lock()
        self._batches: dict[tuple[str, tuple[str, ...], str], dict[str, LookupResult]] = {}

    def pod(self, node: str, libc: str) -> ProbePod:
        return self.pods[(node, libc)]

    def of(self, libc: str) -> dict[str, ProbePod]:
        """{node: pod} of one libc."""
        return {node: pod for (node, lc), pod in self.pods.items() if lc == libc}

    def first(self, libc: str) -> ProbePod:
        """The pod of this libc on the first chosen node: for checks that need one client only."""
        return self.pod(self.nodes[0], libc)

    def each(self, libc: str, fn: Callable[[ProbePod], T], *, qps_per_probe: float,
             nodes: Sequence[str] | None = None, execs_per_probe: int = 1) -> dict[str, T]:
        """fn(pod) for every node's pod of this libc, as many at once as the budget allows; {node: result}.
        `qps_per_probe` and `execs_per_probe` are what one fn(pod) sends and holds at once. A failure
        of one node's probe (its exec, its pod) is raised once all have ended."""
        pods = {n: p for n, p in self.of(libc).items() if nodes is None or n in nodes}
        parallel = waves(len(pods), qps_per_probe, self.budget_qps, execs_per_probe)
        with self._lock:
            self.loads.append(Load(len(pods), parallel, qps_per_probe))
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="k8sdns-fleet")
        results: dict[str, T] = {}
        failure: Exception | None = None
        try:
            futures = {node: pool.submit(fn, pod) for node, pod in pods.items()}
            for node, future in futures.items():
                try:
                    results[node] = future.result()
                except Exception as exc:  # noqa: BLE001 - one node's failure; the others still run
                    failure = failure or exc
        except BaseException:
            # Ctrl-C or SIGTERM: the nodes still queued never start, so the run's cleanup is not held
            # up by every wave left (those running finish their exec)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
        if failure is not None:
            raise failure
        return results

    def lookup_in_batch(self, libc: str, names: Sequence[str], name: str, family: str = "inet") -> dict[str, LookupResult]:
        """One libc lookup of `name` from every node: {node: its result}. The first time any of
        `names` is asked, all of them are looked up together, in one exec per node with a thread
        each, so that lookups held up by lost queries wait side by side rather than one by one."""
        key = (libc, tuple(names), family)
        if key not in self._batches:
            batch = list(names)
            self._batches[key] = self.each(
                libc, lambda pod: pod.lookup(batch, count=len(batch), concurrency=len(batch), family=family),
                qps_per_probe=ONE_SHOT_QPS * len(batch))
        index = key[1].index(name)
        return {node: one_name(run, index) for node, run in self._batches[key].items()}


def one_name(run: LookupResult, index: int) -> LookupResult:
    """The part of a lookup run that asked names[index], as if it had asked that name alone."""
    rows = tuple(dataclasses.replace(r, name_index=0) for r in run.rows if r.name_index == index)
    ok = sum(1 for r in rows if r.ok)
    codes = {r.error_code for r in rows if not r.ok}
    elapsed = max((r.start_offset_ns + r.latency_ns for r in rows), default=0)
    return dataclasses.replace(
        run, names=(run.names[index],), rows=rows, addresses=(run.addresses[index],),
        errors={code: text for code, text in run.errors.items() if code in codes}, in_flight=(),
        totals=LookupTotals(len(rows), ok, len(rows) - ok, elapsed,
                            round(len(rows) / (elapsed / 1e9), 3) if elapsed > 0 else 0.0))
