"""The HTML report: pytest-html extras per check, and the summary the report opens with."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_k8sdns import summary
from pytest_k8sdns.results import RESULTS_KEY, SCHEMA_VERSION, Results

if TYPE_CHECKING:
    from pytest_k8sdns.verdict import Gate

__all__ = ["RESULTS_KEY", "SCHEMA_VERSION", "HtmlExtras", "Results", "cdf_png", "html_table", "png_img"]


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


def html_table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(summary.short(c))}</td>" for c in row) + "</tr>" for row in rows)
    return (f"<div class='k8sdns'><b>{html.escape(title)}</b><table border='1' cellpadding='3'>"
            f"<tr>{head}</tr>{body}</table></div>")


class HtmlExtras:
    """Registered only when pytest-html is active: each check's tables and plots, the report's
    title, and the summary it opens with (per libc, checks, cluster, upgrade gate)."""

    def __init__(self, results: Results, gate: Gate | None = None, profile: str = "default") -> None:
        self.results = results
        self.gate = gate
        self.profile = profile

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
        if report.when != "call":
            return
        import pytest_html  # type: ignore[import-untyped]

        extras = getattr(report, "extras", [])
        measured = self.results.measurements.get(item.nodeid, {})
        if measured:
            rows = [[k, v["value"], v["unit"]] for k, v in measured.items()]
            extras.append(pytest_html.extras.html(html_table("measurements", ["name", "value", "unit"], rows)))
        for title, header, rows in self.results.tables.get(item.nodeid, []):
            extras.append(pytest_html.extras.html(html_table(title, header, rows)))
        for title, png in self.results.plots.get(item.nodeid, []):
            # inline, not extras.png: pytest-html writes those to assets/ unless --self-contained-html
            extras.append(pytest_html.extras.html(f"<div class='k8sdns'><b>{html.escape(title)}</b><br/>"
                                                  f"{png_img(png, title)}</div>"))
        report.extras = extras  # type: ignore[attr-defined]

    def pytest_html_report_title(self, report: Any) -> None:
        if self.profile == "certification":
            report.title = f"DNS certification: {report.title}"
        else:
            report.title = f"DNS from inside pods: {report.title}"

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str]) -> None:
        doc = self.results.final
        if doc is None:
            return
        comparison = self.gate.comparison if self.gate else None
        before = self.gate.before if self.gate else None
        prefix.append(render_summary(doc, comparison, before))


def render_summary(doc: dict[str, Any], comparison: Any = None, before: dict[str, Any] | None = None) -> str:
    """The block the report opens with, as HTML with its plots embedded."""
    plots = {}
    for libc in summary.LIBCS:
        series = {}
        if before is not None:
            series[f"{libc} before"] = summary.latency_series(before, libc)
        series[f"{libc} now" if before is not None else libc] = summary.latency_series(doc, libc)
        plots[libc] = cdf_png(series, f"{libc} getaddrinfo latency, CDF", dashed=[f"{libc} before"], size=(5.4, 3.0))
    return summary.render(doc, {k: png_img(v, f"{k} latency CDF") for k, v in plots.items()}, comparison, before)
