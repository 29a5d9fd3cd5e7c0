"""The upgrade gate of --k8sdns-baseline as a pytest plugin: this run against an earlier results file
(the comparison itself is verdict/baseline.py, which needs neither pytest nor a cluster)."""

from __future__ import annotations

from typing import Any

from pytest_k8sdns import results
from pytest_k8sdns.config import Settings
from pytest_k8sdns.verdict import baseline


class Gate:
    """The upgrade gate of --k8sdns-baseline: this run against an earlier results file."""

    def __init__(self, settings: Settings) -> None:
        assert settings.baseline is not None
        self.source = settings.baseline
        self.max_p99_growth = settings.max_p99_growth
        self.p99_floor_ms = settings.p99_floor_ms
        self.before: dict[str, Any] = results.load(settings.baseline, "--k8sdns-baseline")
        self.comparison: baseline.Comparison | None = None

    def judge(self, doc: dict[str, Any]) -> bool:
        """Compare, add the gate's section to the results document, and say whether it passed."""
        self.comparison = baseline.compare(self.before, doc, self.max_p99_growth, self.p99_floor_ms)
        doc["baseline"] = self.comparison.as_dict(self.source)
        return self.comparison.ok

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.comparison is None:
            return
        ok = self.comparison.ok
        terminalreporter.section("k8sdns upgrade gate", sep="=", green=ok, red=not ok, bold=True)
        for line in self.comparison.lines(self.source):
            terminalreporter.line(line, red=not ok and line.startswith("  "))
