"""A timeline of DNS lookups during a change: every lookup of every probe stream with its wall-clock
start, latency and outcome, and the marks of the change (its start and end). Pure data and pure
figures (failures, gaps, tail latency); the verdict lives in verdict/disruption.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_k8sdns.evidence.stats import percentile

#: The clients a probe runs: libc lookups through the image's own resolver, and one UDP socket
#: that keeps its source port for the whole run (as the Go and Java resolvers and nscd do).
CLIENTS = ("libc", "socket")
#: Mark labels the monitor sets around a change.
CHANGE_START = "change start"
CHANGE_END = "change end"


@dataclasses.dataclass(frozen=True, order=True)
class Stream:
    """One probe's stream of lookups: a node, a libc (the pod's image) and a client."""

    node: str
    libc: str
    client: str

    @property
    def label(self) -> str:
        return f"{self.node}/{self.libc}" if self.client == "libc" else f"{self.node}/{self.libc}/socket"


@dataclasses.dataclass(frozen=True)
class Sample:
    """One lookup: when it started (unix ns, the probe's clock), how long it took, how it ended."""

    stream: Stream
    start_ns: int
    latency_ns: int
    ok: bool
    error: int = 0

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.latency_ns


@dataclasses.dataclass(frozen=True)
class Mark:
    label: str
    at_ns: int


@dataclasses.dataclass(frozen=True)
class Gap:
    """Consecutive failed lookups of one stream: from the first one's start to the start of the next
    lookup that succeeded (or, if none did before the monitor stopped, to the stop: not recovered)."""

    stream: Stream
    start_ns: int
    end_ns: int
    failed: int
    recovered: bool

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def severity(self) -> tuple[bool, float]:
        """How bad a gap is: one never recovered from is worse than any that was, then the longer."""
        return not self.recovered, self.seconds


@dataclasses.dataclass
class Timeline:
    """Samples of all streams, sorted by start; marks; and the error texts the probes gave by code."""

    samples: list[Sample]
    marks: list[Mark]
    started_ns: int
    stopped_ns: int
    errors: dict[int, str] = dataclasses.field(default_factory=dict)
    streams: list[Stream] = dataclasses.field(default_factory=list)
    #: probe streams that ended before the monitor stopped: "node/libc" -> why
    lost: dict[str, str] = dataclasses.field(default_factory=dict)
    #: libc lookups a stream could not start (all its in-flight slots held by hanging ones) or that
    #: never ended: "node/libc" -> count; each is a lookup the client did not get an answer to
    unstarted: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.samples.sort(key=lambda s: (s.start_ns, s.stream))
        known = set(self.streams)
        self.streams = sorted(known | {s.stream for s in self.samples})

    def mark(self, label: str) -> int | None:
        return next((m.at_ns for m in self.marks if m.label == label), None)

    @property
    def change(self) -> tuple[int, int]:
        """The window a verdict judges: from the change's start to the monitor's stop (the change's
        end plus the settle time); the whole run if no change was marked."""
        return self.mark(CHANGE_START) or self.started_ns, self.stopped_ns

    def during(self, client: str | None = None) -> list[Sample]:
        lo, hi = self.change
        return [s for s in self.samples if lo <= s.start_ns <= hi and (client is None or s.stream.client == client)]

    def of(self, stream: Stream) -> list[Sample]:
        return [s for s in self.samples if s.stream == stream]

    def offset_s(self, at_ns: int) -> float:
        """Seconds since the change started (negative before it): how messages and plots place time."""
        return (at_ns - self.change[0]) / 1e9


def gaps(samples: Iterable[Sample], stopped_ns: int) -> list[Gap]:
    """The runs of failures of each stream, in start order (samples of one or many streams)."""
    by_stream: dict[Stream, list[Sample]] = {}
    for s in samples:
        by_stream.setdefault(s.stream, []).append(s)
    found: list[Gap] = []
    for stream, ss in by_stream.items():
        ss.sort(key=lambda s: s.start_ns)
        first: Sample | None = None
        failed = 0
        for s in ss:
            if not s.ok:
                first = first or s
                failed += 1
            elif first is not None:
                found.append(Gap(stream, first.start_ns, s.start_ns, failed, True))
                first, failed = None, 0
        if first is not None:
            found.append(Gap(stream, first.start_ns, max(stopped_ns, first.end_ns), failed, False))
    return sorted(found, key=lambda g: (g.start_ns, g.stream))


def longest_gaps(timeline: Timeline, client: str | None = None) -> dict[Stream, Gap]:
    """Each stream's worst gap during the change: one it never recovered from, else its longest
    (streams without failures are absent)."""
    longest: dict[Stream, Gap] = {}
    for gap in gaps(timeline.during(client), timeline.stopped_ns):
        if gap.stream not in longest or gap.severity > longest[gap.stream].severity:
            longest[gap.stream] = gap
    return longest


def p99_ms(samples: Sequence[Sample]) -> float | None:
    """The 99th percentile latency of the lookups that ended (failed ones too: a timeout is slow)."""
    values = [s.latency_ns / 1e6 for s in samples]
    return percentile(values, 99) if values else None


#: Columns of the timeline's rows in the results file (compact arrays, like the probe's own rows).
ROW_COLUMNS = ("stream", "start_ms", "latency_ms", "ok", "error")


def document(timeline: Timeline) -> dict[str, Any]:
    """The raw timeline for the results file: streams, marks and rows, times in ms since the
    monitor started (started_unix_ns says when that was)."""
    index = {stream: i for i, stream in enumerate(timeline.streams)}
    t0 = timeline.started_ns
    return {
        "started_unix_ns": t0,
        "stopped_ms": round((timeline.stopped_ns - t0) / 1e6, 3),
        "streams": [dataclasses.asdict(s) for s in timeline.streams],
        "marks": [{"label": m.label, "at_ms": round((m.at_ns - t0) / 1e6, 3)} for m in timeline.marks],
        "columns": list(ROW_COLUMNS),
        "rows": [[index[s.stream], round((s.start_ns - t0) / 1e6, 3), round(s.latency_ns / 1e6, 3), int(s.ok), s.error]
                 for s in timeline.samples],
        "errors": {str(code): text for code, text in sorted(timeline.errors.items())},
        "lost": dict(sorted(timeline.lost.items())),
        "unstarted": dict(sorted(timeline.unstarted.items())),
    }


def from_document(doc: dict[str, Any]) -> Timeline:
    """The Timeline a document() holds (the report draws its plot from the results' copy)."""
    t0 = int(doc["started_unix_ns"])
    streams = [Stream(**st) for st in doc["streams"]]
    samples = [Sample(streams[i], t0 + int(start * 1e6), int(latency * 1e6), bool(ok), int(error))
               for i, start, latency, ok, error in doc["rows"]]
    marks = [Mark(m["label"], t0 + int(m["at_ms"] * 1e6)) for m in doc["marks"]]
    return Timeline(samples, marks, t0, t0 + int(doc["stopped_ms"] * 1e6),
                    {int(k): v for k, v in doc.get("errors", {}).items()}, streams, dict(doc.get("lost", {})),
                    dict(doc.get("unstarted", {})))
