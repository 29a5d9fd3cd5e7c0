"""The HTML report: pytest-html extras per check, and the summary the report opens with."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.monitor.timeline import from_document
from pytest_k8sdns.report import summary
from pytest_k8sdns.report.plots import cdf_png, png_img
from pytest_k8sdns.report.timeline import timeline_png
from pytest_k8sdns.results import Results

if TYPE_CHECKING:
    from pytest_k8sdns.verdict.gate import Gate



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
        plots = [*self.results.plots.get(item.nodeid, []), *series_plots(self.results.series.get(item.nodeid, {}))]
        change = self.results.timelines.get(item.nodeid)
        if change is not None:
            name = change["change"]["name"]
            plots.insert(0, (f"lookups during {name}", timeline_png(from_document(change), f"DNS during {name}")))
        for title, png in plots:
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


def _label(entity: dict[str, Any]) -> str:
    return " ".join(str(entity[k]) for k in ("libc", "option", "node", "replica") if entity.get(k)) or "lookups"


def series_plots(series: dict[str, dict[str, Any]]) -> list[tuple[str, bytes]]:
    """A check's plots, drawn from the series it recorded: a latency CDF for every lookup-latency series."""
    plots = []
    for entry in series.values():
        if entry.get("quantity") == Q.LOOKUP_LATENCY:
            label = _label(entry.get("entity") or {})
            plots.append((f"{label} lookup latency CDF", cdf_png({label: entry["values"]}, f"{label} getaddrinfo latency")))
    return plots


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
