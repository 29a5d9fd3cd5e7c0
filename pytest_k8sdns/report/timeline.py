"""The timeline plot of a change: lookups over time per stream, failures marked in red, the change's
start and end as vertical lines; drawn by matplotlib, as PNG bytes."""

from __future__ import annotations

from pytest_k8sdns.monitor.timeline import CHANGE_END, CHANGE_START, Stream, Timeline
from pytest_k8sdns.report.plots import figure_png

#: Streams drawn one row each; past it, those with failures first, then the rest up to the limit.
MAX_ROWS = 40


def _rows(timeline: Timeline) -> list[Stream]:
    failing = {s.stream for s in timeline.samples if not s.ok}
    ordered = sorted(timeline.streams, key=lambda st: (st not in failing, st))
    return sorted(ordered[:MAX_ROWS])


def timeline_png(timeline: Timeline, title: str) -> bytes:
    """Two panels over seconds since the change started: every lookup's latency (log scale, failures
    as red crosses at their latency), and one row per stream with each lookup as a tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(timeline)
    height = 2.6 + 0.2 * len(rows)
    fig, (top, strip) = plt.subplots(2, 1, figsize=(8, 2.8 + height), dpi=100, sharex=True,
                                     gridspec_kw={"height_ratios": [2.8, height]})
    try:
        ok = [s for s in timeline.samples if s.ok]
        bad = [s for s in timeline.samples if not s.ok]
        top.scatter([timeline.offset_s(s.start_ns) for s in ok], [max(s.latency_ns / 1e6, 0.01) for s in ok],
                    s=4, color="#1e88e5", label=f"answered (n={len(ok)})", rasterized=True)
        if bad:
            top.scatter([timeline.offset_s(s.start_ns) for s in bad], [max(s.latency_ns / 1e6, 0.01) for s in bad],
                        s=28, marker="x", color="#e53935", label=f"failed (n={len(bad)})")
        top.set_yscale("log")
        top.set_ylabel("latency (ms)")
        top.set_title(title, fontsize=10)
        index = {st: i for i, st in enumerate(rows)}
        for wanted, colour, size in ((True, "#4caf50", 6), (False, "#e53935", 30)):
            xs = [timeline.offset_s(s.start_ns) for s in timeline.samples if s.ok is wanted and s.stream in index]
            ys = [index[s.stream] for s in timeline.samples if s.ok is wanted and s.stream in index]
            strip.scatter(xs, ys, s=size, marker="|", color=colour, rasterized=True)
        strip.set_yticks(range(len(rows)), [st.label for st in rows], fontsize=7)
        strip.set_ylim(-0.5, len(rows) - 0.5)
        strip.set_xlabel("seconds since the change started")
        for axis in (top, strip):
            for label, style in ((CHANGE_START, "--"), (CHANGE_END, ":")):
                at = timeline.mark(label)
                if at is not None:
                    axis.axvline(timeline.offset_s(at), color="black", linestyle=style, linewidth=1,
                                 label=label if axis is top else None)
            axis.grid(True, alpha=0.3)
        top.legend(loc="upper left", fontsize=7)
        return figure_png(fig)
    finally:
        plt.close(fig)
