"""Plots for the HTML report, drawn by matplotlib, as PNG bytes and self-contained <img> tags."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence


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
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def png_img(png: bytes, alt: str) -> str:
    """An <img> holding the PNG itself (a data: URI), so the report stays one self-contained file."""
    data = base64.b64encode(png).decode()
    return f"<img class='k8sdns-plot' alt='{html.escape(alt, quote=True)}' src='data:image/png;base64,{data}'/>"
