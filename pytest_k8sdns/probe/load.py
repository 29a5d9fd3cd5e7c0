"""The `load` command's document as dataclasses: one LoadStep per step of a capacity ramp.

Steps of several pods that ran the same ramp at the same time add up with LoadStep.merged; the
latency histogram uses protocol.LOAD_BUCKETS_NS (upper edges), so quantiles are bucket edges,
at most 15 % above the true value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_k8sdns.probe.protocol import LOAD_BUCKETS_NS


@dataclass(frozen=True)
class LoadStep:
    """One step of the ramp: `rate` queries/s offered for step_s, and what came of them."""

    rate: float
    sent: int
    answered: int
    timeouts: int
    send_errors: int
    truncated: int
    empty: int  # NOERROR with no answer record
    rcodes: Mapping[str, int]
    histogram: tuple[int, ...] = field(repr=False)

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> LoadStep:
        return cls(rate=float(d["rate"]), sent=d["sent"], answered=d["answered"], timeouts=d["timeouts"],
                   send_errors=d["send_errors"], truncated=d["truncated"], empty=d["empty"],
                   rcodes=dict(d["rcodes"]), histogram=tuple(d["histogram"]))

    @property
    def lost(self) -> int:
        """Queries with no reply: timed out, or never sent (the socket refused them)."""
        return self.timeouts + self.send_errors

    @property
    def loss(self) -> float:
        return self.lost / self.sent if self.sent else 0.0

    def quantile_ns(self, q: float) -> int | None:
        """The upper edge of the bucket holding the q-quantile of the answered queries' latency;
        None with no answer; past the last edge, twice it (off the scale)."""
        if not self.answered:
            return None
        rank = max(1, int(q * self.answered + 0.999999))
        seen = 0
        for i, count in enumerate(self.histogram):
            seen += count
            if seen >= rank:
                return LOAD_BUCKETS_NS[i] if i < len(LOAD_BUCKETS_NS) else 2 * LOAD_BUCKETS_NS[-1]
        return 2 * LOAD_BUCKETS_NS[-1]

    @staticmethod
    def merged(steps: Sequence[LoadStep]) -> LoadStep:
        """The same step of several pods, as one: rates and counts add up."""
        rcodes: dict[str, int] = {}
        for step in steps:
            for code, n in step.rcodes.items():
                rcodes[code] = rcodes.get(code, 0) + n
        return LoadStep(rate=sum(s.rate for s in steps), sent=sum(s.sent for s in steps),
                        answered=sum(s.answered for s in steps), timeouts=sum(s.timeouts for s in steps),
                        send_errors=sum(s.send_errors for s in steps), truncated=sum(s.truncated for s in steps),
                        empty=sum(s.empty for s in steps), rcodes=rcodes,
                        histogram=tuple(sum(col) for col in zip(*(s.histogram for s in steps), strict=True)))


@dataclass(frozen=True)
class LoadResult:
    """`load`: the ramp one pod sent to one server."""

    server: str
    port: int
    qtype: str
    names: int
    step_s: float
    timeout_s: float
    sockets: int
    steps: tuple[LoadStep, ...]
    late: int  # replies after their query's timeout (or duplicates)
    stopped: str  # protocol.LOAD_STOPS
    elapsed_s: float

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> LoadResult:
        return cls(server=d["server"], port=d["port"], qtype=d["qtype"], names=d["names"], step_s=float(d["step_s"]),
                   timeout_s=float(d["timeout_s"]), sockets=d["sockets"],
                   steps=tuple(LoadStep.from_doc(s) for s in d["steps"]), late=d["late"], stopped=d["stopped"],
                   elapsed_s=float(d["elapsed_s"]))
