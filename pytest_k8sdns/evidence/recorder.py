"""What a check keeps for the report, the results file and JUnit: figures, series, tables, plots."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pytest_k8sdns.evidence.measure import Entity, Measurement
from pytest_k8sdns.results import Results


class Recorder:
    """Keeps the current check's measurements, tables and plots for the report and results."""

    def __init__(self, results: Results, nodeid: str, record_property: Callable[[str, Any], None] | None) -> None:
        self._results = results
        self._nodeid = nodeid
        self._record_property = record_property

    def __call__(self, name: str, value: Any, unit: str = "", *, quantity: str | None = None,
                 entity: Entity | None = None) -> None:
        """Keep one figure; `quantity` and `entity` say what it is and what it belongs to."""
        self.add(Measurement(name, value, unit, quantity, entity or {}))

    def add(self, *measurements: Measurement) -> None:
        """Keep figures an evidence object made (its .measurements())."""
        for m in measurements:
            self._results.add(self._nodeid, m)
            if self._record_property is not None:
                self._record_property(m.name, m.value)

    def series(self, name: str, values: Sequence[float], unit: str = "", *, quantity: str | None = None,
               entity: Entity | None = None) -> None:
        """Raw samples (e.g. every lookup's latency): in the results file and the report's plots,
        not in JUnit or the measurement table."""
        self._results.add_series(self._nodeid, name, values, unit, quantity=quantity, entity=entity)

    def table(self, title: str, header: list[str], rows: list[list[Any]]) -> None:
        self._results.table(self._nodeid, title, header, rows)

    def timeline(self, doc: dict[str, Any]) -> None:
        """A change's raw timeline (monitor.timeline.document plus the change): in the results file."""
        self._results.timeline(self._nodeid, doc)

    def capacity(self, doc: dict[str, Any]) -> None:
        """A query class's capacity ramp, judged (verdict.capacity.document): in the results file."""
        self._results.capacity(self._nodeid, doc)

    def plot(self, title: str, png: bytes) -> None:
        self._results.plot(self._nodeid, title, png)
