"""The verdict on DNS during a change: lookups lost within a budget, the longest gap of failures per
stream, the p99 while the change ran, the long-lived socket's recovery, and the change's own exit.
Every message places time relative to the change's start ("+3.1 s"), as the timeline plot does."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pytest_k8sdns.monitor.timeline import (
    Sample,
    Stream,
    Timeline,
    longest_gaps,
    p99_ms,
)

#: Names of the error codes a monitor row carries: getaddrinfo's (negative, as glibc and musl
#: number them), the probe's own, and DNS rcodes of the socket client's replies (positive).
ERROR_NAMES = {
    -2: "EAI_NONAME", -3: "EAI_AGAIN", -4: "EAI_FAIL", -5: "EAI_NODATA", -1000: "unencodable name",
    -1001: "probe error", -1002: "no reply", -1003: "empty answer", -1004: "send failed",
    1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
}


@dataclasses.dataclass(frozen=True)
class ChangeBounds:
    """What a change may cost (each an option with an ini twin, config.OPTIONS)."""

    max_failed: int = 0  # failed lookups, all libc streams together
    max_gap_s: float = 5.0  # the longest run of failures of one stream
    p99_ms: float = 1000.0  # libc lookups that started during the change
    socket_recovery_s: float = 5.0  # the long-lived UDP socket's longest run of failures


@dataclasses.dataclass(frozen=True)
class ChangeOutcome:
    """What the change itself did: a command's exit status and output, or a scenario's."""

    name: str
    command: str | None
    exit_code: int | None  # None: it did not end (timed out, interrupted)
    started_ns: int
    ended_ns: int
    output: str = ""
    error: str = ""  # why it did not run or end, in one line

    @property
    def seconds(self) -> float:
        return (self.ended_ns - self.started_ns) / 1e9

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.error

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "command": self.command, "exit_code": self.exit_code,
                "started_unix_ns": self.started_ns, "ended_unix_ns": self.ended_ns,
                "seconds": round(self.seconds, 3), "output": self.output[-4000:], "error": self.error}


@dataclasses.dataclass(frozen=True)
class ChangeVerdict:
    problems: tuple[str, ...]
    figures: dict[str, float | int | None]
    #: what went wrong, one word each: change, lost, failed, gap, p99, socket
    kinds: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        return "; ".join(self.problems)


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"error {code}")


def _offsets(timeline: Timeline, samples: Sequence[Sample]) -> str:
    first, last = samples[0].start_ns, samples[-1].start_ns
    if first == last:
        return f"at {timeline.offset_s(first):+.1f} s"
    return f"{timeline.offset_s(first):+.1f} s to {timeline.offset_s(last):+.1f} s"


def _failures_said(timeline: Timeline, failed: Sequence[Sample], shown: int = 4) -> str:
    by_stream: dict[Stream, list[Sample]] = {}
    for s in failed:
        by_stream.setdefault(s.stream, []).append(s)
    worst = sorted(by_stream.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    parts = []
    for stream, ss in worst[:shown]:
        codes = Counter(error_name(s.error) for s in ss).most_common(2)
        parts.append(f"{stream.label} {len(ss)} ({_offsets(timeline, ss)}, {', '.join(c for c, _ in codes)})")
    more = f", and {len(worst) - shown} more streams" if len(worst) > shown else ""
    return ", ".join(parts) + more


def judge(timeline: Timeline, bounds: ChangeBounds, outcome: ChangeOutcome | None = None) -> ChangeVerdict:
    """Judge the timeline's window (change start to monitor stop) against the bounds."""
    problems: list[str] = []
    kinds: set[str] = set()
    if outcome is not None and not outcome.ok:
        why = outcome.error or f"exited {outcome.exit_code}"
        tail = outcome.output.strip().splitlines()[-1:] if outcome.output.strip() else []
        kinds.add("change")
        problems.append(f"the change {outcome.name!r} {why}" + (f" ({tail[0][:160]})" if tail else ""))
    for label, why in sorted(timeline.lost.items()):
        kinds.add("lost")
        problems.append(f"the monitor lost {label} before it stopped: {why}")
    lookups = timeline.during("libc")
    failed = [s for s in lookups if not s.ok]
    unstarted = sum(timeline.unstarted.values())
    if not lookups:
        kinds.add("lost")
        problems.append("no lookup was measured during the change: the probes stopped streaming")
    elif len(failed) + unstarted > bounds.max_failed:
        more = (f"; and {unstarted} lookups could not start or never ended, every in-flight slot held by hanging "
                f"ones ({', '.join(f'{k} {v}' for k, v in sorted(timeline.unstarted.items()))})" if unstarted else "")
        kinds.add("failed")
        problems.append(f"{len(failed) + unstarted} of {len(lookups) + unstarted} lookups failed during the change "
                        f"(budget {bounds.max_failed}): {_failures_said(timeline, failed) or 'none ended failed'}{more}")
    gaps = longest_gaps(timeline, "libc")
    longest = max(gaps.values(), key=lambda g: g.severity, default=None)
    if longest is not None and (longest.seconds > bounds.max_gap_s or not longest.recovered):
        how = "and had not recovered when the monitor stopped" if not longest.recovered else ""
        others = sorted({g.stream.node for g in gaps.values()} - {longest.stream.node})
        kinds.add("gap")
        problems.append(
            f"longest gap of failures {longest.seconds:.1f} s on {longest.stream.label} "
            f"({timeline.offset_s(longest.start_ns):+.1f} s to {timeline.offset_s(longest.end_ns):+.1f} s, "
            f"{longest.failed} lookups{', ' + how if how else ''}; bound {bounds.max_gap_s:g} s); "
            + (f"gaps on other nodes too: {', '.join(others)}" if others else "no other node had a gap"))
    p99 = p99_ms(lookups)
    if p99 is not None and p99 > bounds.p99_ms:
        slow = sorted(lookups, key=lambda s: -s.latency_ns)[: max(1, len(lookups) // 100)]
        where = Counter(s.stream.label for s in slow).most_common(3)
        kinds.add("p99")
        problems.append(f"p99 during the change {p99:.0f} ms (bound {bounds.p99_ms:g} ms); the slowest 1 % from "
                        + ", ".join(f"{label} ({n})" for label, n in where))
    socket = longest_gaps(timeline, "socket")
    stuck = max(socket.values(), key=lambda g: g.severity, default=None)
    if stuck is not None and (stuck.seconds > bounds.socket_recovery_s or not stuck.recovered):
        state = "did not recover before the monitor stopped" if not stuck.recovered else "recovered only"
        kinds.add("socket")
        problems.append(
            f"the long-lived UDP socket on {stuck.stream.node} {state} after {stuck.seconds:.1f} s of failures "
            f"({timeline.offset_s(stuck.start_ns):+.1f} s to {timeline.offset_s(stuck.end_ns):+.1f} s, "
            f"{stuck.failed} queries; bound {bounds.socket_recovery_s:g} s)")
    figures: dict[str, float | int | None] = {
        "lookups": len(lookups), "failed": len(failed) + unstarted,
        "longest_gap_s": round(longest.seconds, 3) if longest else 0.0,
        "p99_ms": round(p99, 3) if p99 is not None else None,
        "socket_queries": len(timeline.during("socket")),
        "socket_failed": sum(1 for s in timeline.during("socket") if not s.ok),
        "socket_recovery_s": round(stuck.seconds, 3) if stuck else 0.0,
    }
    return ChangeVerdict(tuple(problems), figures, frozenset(kinds))


#: Where to look when lookups failed, slowed or stopped during a change, by the change
_LOOKUP_ADVICE = {
    "nodelocal-rollout": "a node whose cache restarts has no DNS until the new one listens: roll NodeLocal with "
                         "surge (maxSurge 1, maxUnavailable 0), keep its teardown (no -skipteardown, a memory limit "
                         "it does not reach), and in iptables mode intercept the kube-dns address too, so that "
                         "queries fall through to CoreDNS while no cache runs",
    "node-drain": "evicted CoreDNS pods stop while kube-proxy still sends them queries: a PodDisruptionBudget for "
                  "CoreDNS, and `lameduck` (health plugin) longer than kube-proxy's endpoint sync",
    "kube-proxy-restart": "Service rules lost or rebuilt while kube-proxy restarted: see its logs for sync errors",
}
_ROLLOUT_ADVICE = ("a rollout that drops lookups: give CoreDNS `lameduck` (health plugin) longer than kube-proxy's "
                   "endpoint sync and a termination grace period above it")
_SOCKET_ADVICE = ("a long-lived UDP socket held on a removed CoreDNS pod: that node's conntrack entries for it were not "
                  "flushed (kube-proxy clears the UDP entries of removed endpoints; see its logs for conntrack errors, "
                  "kubernetes/kubernetes#125467)")


def advice(verdict: ChangeVerdict, change: str) -> str:
    """What to look at first, from what went wrong and which change ran (a built-in scenario's name,
    or "during" for --k8sdns-during)."""
    said = ["the timeline in the report shows when and where"]
    if "change" in verdict.kinds:
        said.append("the change itself did not succeed: its exit status and output are in the report")
    if "lost" in verdict.kinds:
        said.append("a probe stream ended early: its pod or node went away during the change (probe on nodes the "
                    "change leaves alone, or read the pod's events)")
    if verdict.kinds & {"failed", "gap", "p99"}:
        said.append(_LOOKUP_ADVICE.get(change, _ROLLOUT_ADVICE))
    if "socket" in verdict.kinds:
        said.append(_SOCKET_ADVICE)
    return "; ".join(said)
