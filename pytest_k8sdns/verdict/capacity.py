"""Capacity (check 20), pure: where a ramp's steps stop holding (the knee), the figures at a target
rate, and the headroom over the cluster's demand.

A ramp is the `load` command's steps from several pods at once, merged step by step. A step holds
while its bad share (queries lost, plus answers with an rcode the query class does not expect)
stays within `max_loss` and the p99 of its answers within `p99_ms`. The knee is the answered rate of
the last step that held before the first that did not: resperf's "rate at which loss starts", with
the latency bound of clusterloader2 beside it. A step whose pods could not send what it asked
(their CPU, not the server) is `short`; a ramp that ends short without breaking found the load
pods' ceiling, not the server's, and says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from pytest_k8sdns.probe.load import LoadStep

#: The query classes of the ramp, in the order they run, and the rcode each expects.
EXPECTED_RCODE: Mapping[str, str] = {"internal": "NOERROR", "external": "NOERROR", "nxdomain": "NXDOMAIN",
                                     "headless": "NOERROR"}
CLASSES = tuple(EXPECTED_RCODE)
#: A step sent less than this share of what it asked: the load pods fell behind.
SHORT_SHARE = 0.9


@dataclasses.dataclass(frozen=True)
class CapacityBounds:
    max_loss: float  # share of a step's queries lost or wrongly answered
    p99_ms: float
    min_headroom: float  # knee / demand


@dataclasses.dataclass(frozen=True)
class StepFigures:
    """One merged step: what was asked and sent, what came back, and whether it held."""

    asked_qps: float
    sent_qps: float
    answered_qps: float
    bad: int  # lost + unexpected rcodes + empty answers where records were expected
    sent: int
    p50_ms: float | None
    p99_ms: float | None
    kinds: Mapping[str, int]  # timeouts, send errors, truncated, empty, and each unexpected rcode
    held: bool
    why: str  # why it did not hold ("" when it did)

    @property
    def bad_share(self) -> float:
        return self.bad / self.sent if self.sent else 0.0

    @property
    def short(self) -> bool:
        return self.sent_qps < SHORT_SHARE * self.asked_qps

    def said(self) -> str:
        p99 = "no answer" if self.p99_ms is None else f"p99 {self.p99_ms:g} ms"
        kinds = ", ".join(f"{n} {k}" for k, n in self.kinds.items() if n)
        return (f"{self.sent_qps:.0f} qps sent, {self.answered_qps:.0f} answered, {100 * self.bad_share:.2f} % bad"
                f"{f' ({kinds})' if kinds else ''}, {p99}")


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def figures(step: LoadStep, step_s: float, expected_rcode: str, bounds: CapacityBounds,
            expect_records: bool = True) -> StepFigures:
    """One merged step judged by the bounds."""
    unexpected = {code: n for code, n in step.rcodes.items() if code != expected_rcode and n}
    empty = step.empty if expect_records and expected_rcode == "NOERROR" else 0
    kinds = {"timeouts": step.timeouts, "send_errors": step.send_errors, **unexpected, "empty": empty,
             "truncated": step.truncated}
    bad = step.lost + sum(unexpected.values()) + empty
    p50, p99 = _ms(step.quantile_ns(0.50)), _ms(step.quantile_ns(0.99))
    why = []
    if step.sent and bad / step.sent > bounds.max_loss:
        why.append(f"{100 * bad / step.sent:.2f} % lost or wrong > {100 * bounds.max_loss:g} %")
    if p99 is not None and p99 > bounds.p99_ms:
        why.append(f"p99 {p99:g} ms > {bounds.p99_ms:g} ms")
    if not step.answered and step.sent:
        why.append("no answer")
    return StepFigures(asked_qps=step.rate, sent_qps=step.sent / step_s, answered_qps=step.answered / step_s,
                       bad=bad, sent=step.sent, p50_ms=p50, p99_ms=p99, kinds=kinds, held=not why,
                       why="; ".join(dict.fromkeys(why)))


def merge(ramps: Sequence[Sequence[LoadStep]]) -> list[LoadStep]:
    """The same ramp of several pods, step by step, as far as every pod got (a pod stops early
    when its own steps lose too much)."""
    depth = min((len(r) for r in ramps), default=0)
    return [LoadStep.merged([r[i] for r in ramps]) for i in range(depth)]


@dataclasses.dataclass(frozen=True)
class ClassCapacity:
    """One query class's ramp, judged."""

    name: str
    qname: str
    steps: tuple[StepFigures, ...]
    pods: int

    @property
    def broke(self) -> StepFigures | None:
        """The first step that did not hold; None when the ramp ended first."""
        return next((s for s in self.steps if not s.held), None)

    @property
    def knee_qps(self) -> float | None:
        """The answered rate of the last step that held before the first that broke (or of the
        ramp's last step when none broke); None when the first step already broke."""
        knee = self.knee
        return None if knee is None else knee[1]

    @property
    def knee(self) -> tuple[float, float] | None:
        """(offered, answered) rate of the knee's step."""
        broke = self.broke
        held = self.steps[:self.steps.index(broke)] if broke is not None else self.steps
        best = max(held, key=lambda s: s.answered_qps, default=None)
        return None if best is None else (best.asked_qps, best.answered_qps)

    @property
    def peak_qps(self) -> float:
        """The most answers per second of any step, past the knee too (resperf's "maximum throughput")."""
        return max((s.answered_qps for s in self.steps), default=0.0)

    @property
    def reached(self) -> bool:
        """Whether the ramp found the knee (a step broke), rather than ending below it."""
        return self.broke is not None

    @property
    def generator_bound(self) -> bool:
        """The ramp ended without breaking, its last step short: the ceiling found is the load
        pods', and the knee is above it."""
        return not self.reached and bool(self.steps) and self.steps[-1].short

    def at(self, qps: float) -> StepFigures | None:
        """The step whose asked rate is the highest at or below `qps` (the first step when all
        are above it)."""
        below = [s for s in self.steps if s.asked_qps <= qps]
        return below[-1] if below else (self.steps[0] if self.steps else None)


def judge_class(name: str, qname: str, ramps: Sequence[Sequence[LoadStep]], step_s: float,
                bounds: CapacityBounds) -> ClassCapacity:
    expected = EXPECTED_RCODE[name]
    steps = tuple(figures(s, step_s, expected, bounds) for s in merge(ramps))
    return ClassCapacity(name, qname, steps, len(ramps))


@dataclasses.dataclass(frozen=True)
class Demand:
    """The cluster's DNS load before the ramp: the rate of coredns_dns_requests_total over all
    replicas, and the rate a user plans for (--k8sdns-capacity-demand-qps); the larger counts."""

    measured_qps: float | None  # None: the counters could not be read
    planned_qps: float

    @property
    def qps(self) -> float:
        return max(self.measured_qps or 0.0, self.planned_qps)


@dataclasses.dataclass(frozen=True)
class CapacityVerdict:
    ok: bool
    headroom: float | None  # knee / demand; None with no demand to divide by
    message: str


def judge(cap: ClassCapacity, demand: Demand, bounds: CapacityBounds) -> CapacityVerdict:
    """The class passes when its knee is at least min_headroom times the demand."""
    knee, need = cap.knee_qps, demand.qps * bounds.min_headroom
    broke = cap.broke
    where = f"{cap.name} ({cap.qname}, {cap.pods} load pods)"
    if knee is None:
        assert broke is not None
        return CapacityVerdict(False, 0.0, f"{where}: the first step already broke at {broke.asked_qps:.0f} qps "
                                           f"asked: {broke.why} ({broke.said()})")
    headroom = round(knee / demand.qps, 2) if demand.qps > 0 else None
    if broke is not None:
        found = f"knee {knee:.0f} qps (broke at {broke.asked_qps:.0f} qps asked: {broke.why})"
    elif cap.generator_bound:
        found = (f"no knee up to {knee:.0f} qps answered: the load pods could send only "
                 f"{cap.steps[-1].sent_qps:.0f} of {cap.steps[-1].asked_qps:.0f} qps asked (their ceiling, not the server's)")
    else:
        found = f"no knee up to {knee:.0f} qps answered (the ramp's end)"
    if headroom is None:
        return CapacityVerdict(True, None, f"{where}: {found}; no demand measured or planned to compare with")
    said = f"{where}: {found}; demand {demand.qps:.1f} qps, headroom x{headroom:g}"
    if knee < need:
        return CapacityVerdict(False, headroom, f"{said} < x{bounds.min_headroom:g} (needs {need:.0f} qps)")
    return CapacityVerdict(True, headroom, f"{said} >= x{bounds.min_headroom:g}")


def rate_ramp(start_qps: float, max_qps: float, growth: float) -> list[float]:
    """The ramp's rates, all pods together: from start_qps, each step `growth` times the last, up to
    and including max_qps."""
    if start_qps <= 0 or growth <= 1 or max_qps < start_qps:
        raise ValueError(f"a ramp needs 0 < start ({start_qps}) <= max ({max_qps}) and growth ({growth}) > 1")
    rates = [start_qps]
    while rates[-1] * growth < max_qps:
        rates.append(rates[-1] * growth)
    if rates[-1] < max_qps:
        rates.append(max_qps)
    return [round(r, 1) for r in rates]


def per_pod(rates: Sequence[float], pods: int) -> list[float]:
    """Each pod's share of the ramp's rates."""
    return [round(r / pods, 2) for r in rates]
