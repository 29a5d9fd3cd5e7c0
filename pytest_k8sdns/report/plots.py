"""Plots for the HTML report, drawn by matplotlib, as PNG bytes and self-contained <img> tags."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: cell colours of the node x check matrix, by verdict; None is a node the check did not measure
MATRIX_COLOURS: dict[str | None, str] = {None: "#dddddd", "passed": "#4caf50", "failed": "#e53935"}


def cdf_png(series: Mapping[str, Sequence[float]], title: str, xlabel: str = "latency (ms)",
            dashed: Iterable[str] = (), size: tuple[float, float] = (6, 3.2)) -> bytes:
    """A step CDF per series, drawn by matplotlib, as PNG bytes; labels in `dashed` are drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashed = set(dashed)
    fig, ax = plt.subplots(figsize=size, dpi=100)
    try:
        drawn = 0
        lows, highs = [], []
        for label, values in series.items():
            xs = sorted(v for v in values if v > 0)
            if not xs:
                continue
            lows.append(xs[0])
            highs.append(xs[-1])
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{label} (n={len(xs)})", linestyle="--" if label in dashed else "-")
            drawn += 1
        if drawn:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_xscale("log")
            # plain numbers at 1-2-5 steps (0.5, 1, 2, 5 ms), or at decades when the range is wide
            # (0.1 ms to 10 s after lost packets): nothing crowded
            wide = math.log10(max(highs) / min(lows)) > 2.5
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.legend(loc="lower right")
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of lookups")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        return figure_png(fig)
    finally:
        plt.close(fig)


def figure_png(fig: Any) -> bytes:
    """A laid-out matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def matrix_png(rows: Sequence[str], columns: Sequence[str], cells: Sequence[Sequence[str | None]],
               title: str) -> bytes:
    """A categorical grid (rows x columns, cells "passed", "failed" or None) as PNG bytes; the
    figure grows with the grid so that ~60 rows x 30 columns stay readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    codes = list(MATRIX_COLOURS)
    grid = [[codes.index(c if c in MATRIX_COLOURS else None) for c in row] for row in cells]
    label_in = max((len(r) for r in rows), default=4) * 0.07
    size = (max(4.0, 1.2 + label_in + 0.32 * len(columns)), max(2.5, 2.4 + 0.22 * len(rows)))
    fig, ax = plt.subplots(figsize=size, dpi=100)
    try:
        ax.imshow(grid, cmap=ListedColormap(list(MATRIX_COLOURS.values())), vmin=0, vmax=len(codes) - 1,
                  aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(columns)), list(columns), rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
        # white lines between cells: a grid of minor ticks at the cell borders
        ax.set_xticks([x - 0.5 for x in range(1, len(columns))], minor=True)
        ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
        ax.grid(which="minor", color="white", linewidth=1)
        ax.tick_params(which="minor", length=0)
        ax.set_title(title, fontsize=9)
        legend = [Patch(color=colour, label=str(code or "not measured")) for code, colour in MATRIX_COLOURS.items()]
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


def png_img(png: bytes, alt: str) -> str:
    """An <img> holding the PNG itself (a data: URI), so the report stays one self-contained file."""
    data = base64.b64encode(png).decode()
    return f"<img class='k8sdns-plot' alt='{html.escape(alt, quote=True)}' src='data:image/png;base64,{data}'/>"


def ramp_png(asked_qps: Sequence[float], p50_ms: Sequence[float | None], p99_ms: Sequence[float | None],
             bad_pct: Sequence[float], knee: tuple[float, float] | None, p99_bound_ms: float, max_bad_pct: float,
             title: str) -> bytes:
    """A capacity ramp: p50 and p99 (top) and the share lost or wrong (bottom) against each step's
    offered rate, the bounds dotted and the knee (its step's offered rate, its answered rate) a
    dashed vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, loss) = plt.subplots(2, 1, sharex=True, figsize=(6, 4.4), dpi=100)
    try:
        for label, values, style in (("p50", p50_ms, "-"), ("p99", p99_ms, "-")):
            pairs = [(x, y) for x, y in zip(asked_qps, values, strict=True) if y is not None and x > 0]
            if pairs:
                lat.plot([x for x, _ in pairs], [y for _, y in pairs], style, marker=".", label=label)
        lat.axhline(p99_bound_ms, color="grey", linestyle=":", label=f"p99 bound {p99_bound_ms:g} ms")
        lat.set_yscale("log")
        lat.set_ylabel("latency (ms)")
        loss.plot([x for x in asked_qps if x > 0], [b for x, b in zip(asked_qps, bad_pct, strict=True) if x > 0],
                  marker=".", color="#e53935", label="lost or wrong")
        loss.axhline(max_bad_pct, color="grey", linestyle=":", label=f"bound {max_bad_pct:g} %")
        loss.set_ylabel("share (%)")
        loss.set_xlabel("queries/s offered (all load pods)")
        if any(x > 0 for x in asked_qps):
            loss.set_xscale("log")
        for ax in (lat, loss):
            if knee:
                ax.axvline(knee[0], color="black", linestyle="--", linewidth=1)
            ax.grid(True, which="both", alpha=0.3)
        if knee:
            lat.text(knee[0], 1.02, f" knee {knee[1]:.0f} qps answered", transform=lat.get_xaxis_transform(), fontsize=8)
        lat.legend(loc="upper left", fontsize=8)
        loss.legend(loc="upper left", fontsize=8)
        lat.set_title(title, fontsize=9, pad=14)
        return figure_png(fig)
    finally:
        plt.close(fig)
