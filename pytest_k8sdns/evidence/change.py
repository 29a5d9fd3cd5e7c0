"""What a watched change leaves in the report and the results file: its figures (pooled and per
node), a table of each stream's gaps, and the raw timeline (report/html.py draws its plot)."""

from __future__ import annotations

from pytest_k8sdns.evidence.measure import Measurement, Q
from pytest_k8sdns.evidence.recorder import Recorder
from pytest_k8sdns.monitor.timeline import Timeline, document, gaps, p99_ms
from pytest_k8sdns.verdict.disruption import ChangeOutcome, ChangeVerdict, error_name


def measurements(timeline: Timeline, verdict: ChangeVerdict, outcome: ChangeOutcome | None) -> list[Measurement]:
    change = {"change": outcome.name} if outcome else {}
    f = verdict.figures
    out = [
        Measurement("lookups", f["lookups"], "", Q.CHANGE_LOOKUPS, change),
        Measurement("failed", f["failed"], "", Q.CHANGE_FAILED, change),
        Measurement("longest_gap_s", f["longest_gap_s"], "s", Q.CHANGE_GAP, change),
        Measurement("p99_ms", f["p99_ms"], "ms", Q.CHANGE_P99, change),
        Measurement("socket_queries", f["socket_queries"], ""),
        Measurement("socket_failed", f["socket_failed"], ""),
        Measurement("socket_recovery_s", f["socket_recovery_s"], "s", Q.CHANGE_SOCKET_RECOVERY, change),
    ]
    if outcome is not None:
        out.append(Measurement("change_s", round(outcome.seconds, 3), "s", Q.CHANGE_SECONDS, change))
        out.append(Measurement("change_exit", outcome.exit_code, ""))
    lookups = timeline.during("libc")
    for node in sorted({s.stream.node for s in lookups}):
        mine = [s for s in lookups if s.stream.node == node]
        entity = {**change, "node": node}
        out.append(Measurement(f"failed[{node}]", sum(1 for s in mine if not s.ok), "", Q.CHANGE_FAILED, entity))
        p99 = p99_ms(mine)
        out.append(Measurement(f"p99_ms[{node}]", round(p99, 3) if p99 is not None else None, "ms", Q.CHANGE_P99, entity))
    return out


def failure_rows(timeline: Timeline) -> list[list[object]]:
    """One row per gap: stream, from, to (s since the change started), failed lookups, errors, recovered."""
    rows: list[list[object]] = []
    for gap in gaps(timeline.during(), timeline.stopped_ns):
        errors = sorted({error_name(s.error) for s in timeline.of(gap.stream)
                         if not s.ok and gap.start_ns <= s.start_ns < gap.end_ns})
        rows.append([gap.stream.label, f"{timeline.offset_s(gap.start_ns):+.1f}", f"{timeline.offset_s(gap.end_ns):+.1f}",
                     gap.failed, ", ".join(errors), "yes" if gap.recovered else "no"])
    return rows


def record(recorder: Recorder, timeline: Timeline, verdict: ChangeVerdict, outcome: ChangeOutcome | None) -> None:
    recorder.add(*measurements(timeline, verdict, outcome))
    rows = failure_rows(timeline)
    if rows:
        recorder.table("gaps of failed lookups (seconds since the change started)",
                       ["stream", "from", "to", "failed", "errors", "recovered"], rows[:200])
    doc = document(timeline)
    if outcome is not None:
        doc["change"] = outcome.document()
    else:
        doc["change"] = ChangeOutcome("change", None, None, timeline.change[0], timeline.stopped_ns).document()
    recorder.timeline(doc)
