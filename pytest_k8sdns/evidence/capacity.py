"""Capacity (check 20), measured: each query class ramped from several probe pods at once against
the cluster DNS Service, CoreDNS's counters scraped around it, and the search-list multiplier.

The pods run the probe's `load` (payload/load.py) with their share of each step's rate and one
wall-clock start, so their steps line up and merge. While a class ramps, a sampler scrapes every
DNS pod's :9153 (process_cpu_seconds_total) about once a step, for the CPU each replica used at
the knee. Before any ramp, two scrapes of coredns_dns_requests_total some seconds apart give the
cluster's current demand, and a few libc lookups of an external name per libc, between two more,
give the server-side queries each client lookup costs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pytest_k8sdns.evidence import stats
from pytest_k8sdns.probe.load import LoadResult, LoadStep
from pytest_k8sdns.probe.pods import ProbePod
from pytest_k8sdns.verdict.capacity import (
    CapacityBounds,
    CapacityVerdict,
    ClassCapacity,
    Demand,
    StepFigures,
    judge_class,
    per_pod,
)

REQUESTS = "coredns_dns_requests_total"
CPU = "process_cpu_seconds_total"
#: Seconds from the ramp's planning to its first step: every pod's exec has started by then.
START_DELAY_S = 4.0
#: Seconds between the two scrapes that give the demand.
DEMAND_WINDOW_S = 5.0
#: libc lookups of the external name per libc for the search-list multiplier.
MULTIPLIER_LOOKUPS = 20
MULTIPLIER_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Scrape:
    """Counters of every DNS pod at one wall-clock moment (pod -> value); pods that could not be
    read are missing."""

    at: float
    requests: Mapping[str, float]
    cpu_s: Mapping[str, float]


Scraper = Callable[[], Scrape]


def counter_sums(body: str) -> tuple[float | None, float | None]:
    """(requests, cpu seconds) of one :9153/metrics body, each summed over its labels."""
    parsed = stats.parse_prometheus(body)
    requests = parsed.get(REQUESTS)
    cpu = parsed.get(CPU)
    return (sum(s.value for s in requests) if requests else None, sum(s.value for s in cpu) if cpu else None)


def scraper(via: ProbePod, targets: Mapping[str, str]) -> Scraper:
    """Scrape {pod name: pod IP}'s :9153 from inside `via` (the host may not reach pod IPs)."""

    def scrape() -> Scrape:
        requests: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for pod, ip in targets.items():
            host = f"[{ip}]" if ":" in ip else ip
            status, body = via.http_status(f"http://{host}:9153/metrics", timeout_s=5)
            if status != 200:
                continue
            req, cpu_s = counter_sums(body)
            if req is not None:
                requests[pod] = req
            if cpu_s is not None:
                cpu[pod] = cpu_s
        return Scrape(time.time(), requests, cpu)

    return scrape


def rate(a: Scrape, b: Scrape, field: str) -> dict[str, float]:
    """Per pod: the counter's growth per second from a to b (pods read both times; a restart,
    where the counter went down, counts from zero)."""
    span = b.at - a.at
    if span <= 0:
        return {}
    before, after = getattr(a, field), getattr(b, field)
    return {pod: ((after[pod] - before[pod]) if after[pod] >= before[pod] else after[pod]) / span
            for pod in after if pod in before}


def demand(scrape: Scraper, planned_qps: float, window_s: float = DEMAND_WINDOW_S) -> Demand:
    a = scrape()
    time.sleep(window_s)
    b = scrape()
    per_pod_rate = rate(a, b, "requests")
    return Demand(round(sum(per_pod_rate.values()), 2) if per_pod_rate else None, planned_qps)


@dataclasses.dataclass(frozen=True)
class Multiplier:
    """Server-side queries per client lookup of an external name, per libc, from the counters."""

    name: str
    lookups: int
    per_libc: Mapping[str, float | None]  # None where the counters could not be read


def multiplier(scrape: Scraper, pods: Mapping[str, ProbePod], name: str, background_qps: float | None,
               lookups: int = MULTIPLIER_LOOKUPS) -> Multiplier:
    """Each libc's pod looks `name` up `lookups` times (as a workload would, through the search
    list); the counters' growth, less the background demand's share, over the lookups made
    (those of at most MULTIPLIER_SECONDS: a DNS that does not answer costs libc timeouts)."""
    out: dict[str, float | None] = {}
    for libc, pod in pods.items():
        a = scrape()
        made = len(pod.lookup([name], count=lookups, qps=20, concurrency=4, duration_s=MULTIPLIER_SECONDS).rows)
        b = scrape()
        grown = {p: v * (b.at - a.at) for p, v in rate(a, b, "requests").items()}
        if not grown or len(grown) < len(a.requests):
            out[libc] = None
            continue
        own = sum(grown.values()) - (background_qps or 0.0) * (b.at - a.at)
        out[libc] = round(max(own, 0.0) / made, 2) if made else None
    return Multiplier(name, lookups, out)


@dataclasses.dataclass(frozen=True)
class RampPlan:
    """One class's ramp: rates of all pods together, one per step."""

    rates: tuple[float, ...]
    step_s: float
    timeout_s: float
    stop_loss: float
    #: source ports per pod (--k8sdns-capacity-sockets): kube-proxy sends each UDP flow to one
    #: replica, so a few flows can load one replica and leave another idle
    sockets: int


@dataclasses.dataclass(frozen=True)
class ClassRun:
    """One class ramped: the judged steps, each pod's raw result, and the sampler's scrapes."""

    capacity: ClassCapacity
    results: Mapping[str, LoadResult]  # pod name -> its ramp
    started_at: float  # wall clock of the first step
    scrapes: tuple[Scrape, ...]

    def cpu_at_knee(self) -> dict[str, float]:
        """Cores each DNS pod used around the knee step (or the last step when none broke):
        the counter's rate between the scrapes that bracket that step's end."""
        steps = self.capacity.steps
        if not steps or len(self.scrapes) < 2:
            return {}
        broke = self.capacity.broke
        k = max(0, steps.index(broke) - 1) if broke is not None else len(steps) - 1
        step_s = next(iter(self.results.values())).step_s
        end = self.started_at + (k + 1) * step_s
        after = next((i for i, s in enumerate(self.scrapes) if s.at >= end), len(self.scrapes) - 1)
        after = max(after, 1)
        return {pod: round(v, 3) for pod, v in rate(self.scrapes[after - 1], self.scrapes[after], "cpu_s").items()}


class _Sampler:
    """Scrapes in a thread until stopped, at most once per `every_s`."""

    def __init__(self, scrape: Scraper, every_s: float) -> None:
        self._scrape, self._every = scrape, every_s
        self._stop = threading.Event()
        self.scrapes: list[Scrape] = []
        self._thread = threading.Thread(target=self._loop, name="k8sdns-capacity-scrape", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.scrapes.append(self._scrape())
            except Exception:  # noqa: BLE001 - a lost scrape only thins the CPU figures
                pass
            self._stop.wait(max(0.0, self._every - (time.monotonic() - began)))

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def ramp_class(name: str, pods: Sequence[ProbePod], server: str, qnames: Sequence[str], qtype: str,
               plan: RampPlan, bounds: CapacityBounds, scrape: Scraper | None = None) -> ClassRun:
    """Every pod ramps its share of plan.rates at once; their steps merged and judged."""
    rates = per_pod(plan.rates, len(pods))
    start_at = time.time() + START_DELAY_S
    args: dict[str, Any] = {"qtype": qtype, "step_s": plan.step_s, "timeout_s": plan.timeout_s,
                            "sockets": plan.sockets, "stop_loss": plan.stop_loss, "start_at": start_at}
    exec_timeout = START_DELAY_S + len(rates) * plan.step_s + plan.timeout_s + 120
    sampler = _Sampler(scrape, plan.step_s) if scrape is not None else None
    pool = ThreadPoolExecutor(max_workers=len(pods), thread_name_prefix="k8sdns-capacity")
    try:
        with sampler if sampler is not None else contextlib.nullcontext():
            futures = {pod.name: pool.submit(pod.load, server, qnames, rates, exec_timeout, **args) for pod in pods}
            results = {pod: f.result() for pod, f in futures.items()}
    except BaseException:
        # Ctrl-C, SIGTERM or one pod's failure: the run's cleanup deletes the pods, which ends the
        # other execs, so it is not held up until their ramps end
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    ramps: list[Sequence[LoadStep]] = [r.steps for r in results.values()]
    capacity = judge_class(name, qnames[0].rstrip("."), ramps, plan.step_s, bounds)
    return ClassRun(capacity, results, start_at, tuple(sampler.scrapes) if sampler else ())


def step_document(s: StepFigures) -> dict[str, object]:
    return {"asked_qps": s.asked_qps, "sent_qps": round(s.sent_qps, 1), "answered_qps": round(s.answered_qps, 1),
            "bad_share": round(s.bad_share, 5), "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
            "kinds": {k: n for k, n in s.kinds.items() if n}, "held": s.held}


def document(run: ClassRun, server: str, demand: Demand, multiplier: Multiplier, verdict: CapacityVerdict,
             target_qps: float) -> dict[str, object]:
    """One class's capacity for the results file (results.schema.json, check.capacity)."""
    cap, broke = run.capacity, run.capacity.broke
    at = cap.at(target_qps)
    return {
        "class": cap.name, "qname": cap.qname, "server": server, "pods": cap.pods,
        "step_s": next(iter(run.results.values())).step_s if run.results else None,
        "knee_qps": None if cap.knee_qps is None else round(cap.knee_qps, 1), "peak_qps": round(cap.peak_qps, 1),
        "broke_at_qps": None if broke is None else broke.asked_qps, "broke_because": None if broke is None else broke.why,
        "generator_bound": cap.generator_bound, "headroom": verdict.headroom,
        "demand": {"measured_qps": demand.measured_qps, "planned_qps": demand.planned_qps},
        "target": {"qps": round(target_qps, 1), **({} if at is None else step_document(at))},
        "multiplier": {"name": multiplier.name, "lookups": multiplier.lookups, **dict(multiplier.per_libc)},
        "cpu_at_knee": run.cpu_at_knee(),
        "steps": [step_document(s) for s in cap.steps],
    }
