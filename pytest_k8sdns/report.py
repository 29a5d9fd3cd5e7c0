"""Measurements of each check, the machine-readable results file, and pytest-html extras/plots."""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdns import __version__

RESULTS_KEY = pytest.StashKey["Results"]()
SCHEMA_VERSION = 1


class Results:
    """Everything a run measured, per test, plus outcomes and cluster facts."""

    def __init__(self) -> None:
        self.measurements: dict[str, dict[str, dict[str, Any]]] = {}
        self.tables: dict[str, list[tuple[str, list[str], list[list[Any]]]]] = {}
        self.plots: dict[str, list[tuple[str, bytes]]] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.facts: dict[str, Any] = {}

    def measure(self, nodeid: str, name: str, value: Any, unit: str = "") -> None:
        self.measurements.setdefault(nodeid, {})[name] = {"value": value, "unit": unit}

    def table(self, nodeid: str, title: str, header: list[str], rows: list[list[Any]]) -> None:
        self.tables.setdefault(nodeid, []).append((title, header, rows))

    def plot(self, nodeid: str, title: str, png: bytes) -> None:
        self.plots.setdefault(nodeid, []).append((title, png))

    def outcome(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            entry = self.outcomes.setdefault(report.nodeid, {})
            if entry.get("outcome") in ("failed", "error") and report.when == "teardown":
                return
            entry["outcome"] = "error" if report.when != "call" and report.outcome == "failed" else report.outcome
            entry["duration_s"] = round(report.duration, 3)
            if report.outcome != "passed":
                entry["message"] = _one_line(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Hook: keep every check's outcome (the object is registered as a plugin)."""
        self.outcome(report)

    def document(self, settings: dict[str, Any]) -> dict[str, Any]:
        checks = []
        for nodeid in sorted(set(self.outcomes) | set(self.measurements)):
            checks.append({"nodeid": nodeid, **self.outcomes.get(nodeid, {"outcome": "unknown"}),
                           "measurements": self.measurements.get(nodeid, {})})
        return {
            "schema_version": SCHEMA_VERSION,
            "suite_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cluster": self.facts,
            "settings": settings,
            "checks": checks,
        }

    def write(self, path: str, settings: dict[str, Any]) -> None:
        Path(path).write_text(json.dumps(self.document(settings), indent=2, sort_keys=True, default=str) + "\n")


def _one_line(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = str(getattr(report, "longreprtext", "") or report.longrepr or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("E ")]
    return (lines[0][2:].strip() if lines else text.strip().splitlines()[-1] if text.strip() else "")[:2000]


def cdf_png(series: dict[str, Sequence[float]], title: str, xlabel: str = "latency (ms)") -> bytes:
    """A step CDF per series, drawn by matplotlib, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    try:
        for label, values in series.items():
            if not values:
                continue
            xs = sorted(values)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{label} (n={len(xs)})")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of lookups")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def html_table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return (f"<div class='k8sdns'><b>{html.escape(title)}</b><table border='1' cellpadding='3'>"
            f"<tr>{head}</tr>{body}</table></div>")


class HtmlExtras:
    """Registered only when pytest-html is active: adds each check's tables and plots."""

    def __init__(self, results: Results) -> None:
        self.results = results

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
        if report.when != "call":
            return
        import pytest_html

        extras = getattr(report, "extras", [])
        measured = self.results.measurements.get(item.nodeid, {})
        if measured:
            rows = [[k, v["value"], v["unit"]] for k, v in measured.items()]
            extras.append(pytest_html.extras.html(html_table("measurements", ["name", "value", "unit"], rows)))
        for title, header, rows in self.results.tables.get(item.nodeid, []):
            extras.append(pytest_html.extras.html(html_table(title, header, rows)))
        for title, png in self.results.plots.get(item.nodeid, []):
            extras.append(pytest_html.extras.png(base64.b64encode(png).decode(), name=title))
        report.extras = extras  # type: ignore[attr-defined]
