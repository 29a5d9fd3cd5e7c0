"""The machine-readable results of a run, its JSON Schema, and `python -m pytest_k8sdns.results`.

    python -m pytest_k8sdns.results validate FILE...          0 valid, 1 invalid, 2 unreadable
    python -m pytest_k8sdns.results compare BEFORE AFTER      0 no regression, 1 regressions, 2 unusable
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdns import __version__
from pytest_k8sdns.config import default
from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.evidence.measure import Entity, Measurement
from pytest_k8sdns.verdict.baseline import check_id, compare

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
OUTCOMES = ("passed", "failed", "skipped", "error")


def _json_scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


class Results:
    """Everything a run measured, per test, plus outcomes and cluster facts."""

    def __init__(self) -> None:
        self.measurements: dict[str, dict[str, dict[str, Any]]] = {}
        self.series: dict[str, dict[str, dict[str, Any]]] = {}
        self.tables: dict[str, list[tuple[str, list[str], list[list[Any]]]]] = {}
        self.plots: dict[str, list[tuple[str, bytes]]] = {}
        #: a change's timeline per check (check 16 and gates with the k8sdns_monitor fixture)
        self.timelines: dict[str, dict[str, Any]] = {}
        #: a query class's capacity ramp per check (check 20)
        self.capacities: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.facts: dict[str, Any] = {}
        #: under xdist, the controller's copy of the root causes each worker's run found
        self.worker_causes: list[dict[str, Any]] = []
        #: the finished document, once pytest_sessionfinish built it (the HTML summary reads it)
        self.final: dict[str, Any] | None = None

    def measure(self, nodeid: str, name: str, value: Any, unit: str = "", *, quantity: str | None = None,
                entity: Entity | None = None) -> None:
        self.add(nodeid, Measurement(name, value, unit, quantity, entity or {}))

    def add(self, nodeid: str, measurement: Measurement) -> None:
        self.measurements.setdefault(nodeid, {})[measurement.name] = measurement.as_dict()

    def add_series(self, nodeid: str, name: str, values: Sequence[float], unit: str = "", *,
                   quantity: str | None = None, entity: Entity | None = None) -> None:
        entry: dict[str, Any] = {"unit": unit, "values": [float(v) for v in values]}
        if quantity:
            entry["quantity"] = quantity
        if entity:
            entry["entity"] = dict(entity)
        self.series.setdefault(nodeid, {})[name] = entry

    def table(self, nodeid: str, title: str, header: list[str], rows: list[list[Any]]) -> None:
        self.tables.setdefault(nodeid, []).append((title, header, rows))

    def timeline(self, nodeid: str, doc: dict[str, Any]) -> None:
        self.timelines[nodeid] = doc

    def capacity(self, nodeid: str, doc: dict[str, Any]) -> None:
        self.capacities[nodeid] = doc

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

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        """Hook: the check number (k8sdns_check marker) and parameters ride on the report, so they
        reach the xdist controller too."""
        report = yield
        marker = item.get_closest_marker("k8sdns_check")
        callspec = getattr(item, "callspec", None)
        report.k8sdns_meta = {
            "name": getattr(item, "originalname", item.name),
            "number": int(marker.args[0]) if marker and marker.args else None,
            "params": {k: _json_scalar(v) for k, v in (callspec.params if callspec else {}).items()},
        }
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Hook: keep every check's outcome (the object is registered as a plugin)."""
        meta = getattr(report, "k8sdns_meta", None)
        if meta:
            self.meta.setdefault(report.nodeid, meta)
        self.outcome(report)

    def document(self, settings: dict[str, Any]) -> dict[str, Any]:
        checks = []
        summary = {k: 0 for k in OUTCOMES}
        for nodeid in sorted(set(self.outcomes) | set(self.measurements) | set(self.timelines) | set(self.capacities)):
            outcome = self.outcomes.get(nodeid, {"outcome": "unknown"})
            summary[outcome["outcome"]] = summary.get(outcome["outcome"], 0) + 1
            meta = self.meta.get(nodeid, {})
            checks.append({
                "id": check_id(nodeid), "nodeid": nodeid,
                "name": meta.get("name", nodeid.partition("::")[2].split("[")[0]),
                "number": meta.get("number"), "params": meta.get("params", {}),
                **outcome,
                "measurements": self.measurements.get(nodeid, {}),
                "series": self.series.get(nodeid, {}),
                **({"timeline": self.timelines[nodeid]} if nodeid in self.timelines else {}),
                **({"capacity": self.capacities[nodeid]} if nodeid in self.capacities else {}),
            })
        return {
            "schema_version": SCHEMA_VERSION,
            "suite_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "profile": settings.get("profile", "default"),
            "cluster": self.facts,
            "settings": settings,
            "summary": summary,
            "checks": checks,
        }

    def write(self, path: str, settings: dict[str, Any]) -> None:
        write_document(path, self.document(settings))


def write_document(path: str | Path, doc: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def _one_line(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = str(getattr(report, "longreprtext", "") or report.longrepr or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("E ")]
    return (lines[0][2:].strip() if lines else text.strip().splitlines()[-1] if text.strip() else "")[:2000]


# -- schema ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The results JSON Schema (draft 2020-12) shipped in the package."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


def _where(path: Sequence[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def validate(doc: Any) -> list[str]:
    """Schema errors of a results document, one line each (`$.checks[3].outcome: ...`); [] if valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    lines = []
    for error in errors:
        message = " ".join(error.message.split())
        lines.append(f"{_where(list(error.absolute_path))}: {message[:200]}{'...' if len(message) > 200 else ''}")
    return lines


def load(path: str | Path, option: str = "FILE") -> dict[str, Any]:
    """Read and validate a results file; a one-line ConfigError names the file and the first problem."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"{option}={path}: cannot read it ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option}={path} is not JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); "
                          "give a file written by --k8sdns-results") from None
    errors = validate(doc)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{option}={path} is not a pytest-k8sdns results file: {errors[0]}{more}; "
                          "check it with `python -m pytest_k8sdns.results validate FILE`")
    return doc


# -- command line ------------------------------------------------------------------------------

def _validate_cmd(files: list[str]) -> int:
    status = 0
    for name in files:
        try:
            doc = json.loads(Path(name).read_text())
        except OSError as exc:
            print(f"{name}: cannot read it ({exc.strerror or exc})", file=sys.stderr)
            return 2
        except json.JSONDecodeError as exc:
            print(f"{name}: not JSON: line {exc.lineno} column {exc.colno}: {exc.msg}", file=sys.stderr)
            status = 1
            continue
        errors = validate(doc)
        for line in errors:
            print(f"{name}: {line}", file=sys.stderr)
        if errors:
            status = 1
        else:
            print(f"{name}: valid (schema_version {doc['schema_version']}, {len(doc['checks'])} checks)")
    return status


def _compare_cmd(before: str, after: str, max_p99_growth: float, p99_floor_ms: float) -> int:
    try:
        old, new = load(before, "BEFORE"), load(after, "AFTER")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    comparison = compare(old, new, max_p99_growth, p99_floor_ms)
    print("\n".join(comparison.lines(before)))
    return 0 if comparison.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_k8sdns.results",
                                     description="check and compare pytest-k8sdns results files")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check files against the results JSON Schema")
    v.add_argument("files", nargs="+", metavar="FILE")
    c = sub.add_parser("compare", help="the upgrade gate of --k8sdns-baseline, on two files")
    c.add_argument("before", metavar="BEFORE")
    c.add_argument("after", metavar="AFTER")
    c.add_argument("--max-p99-growth", type=float, default=default("max_p99_growth"), metavar="RATIO")
    c.add_argument("--p99-floor-ms", type=float, default=default("p99_floor_ms"), metavar="MS")
    args = parser.parse_args(argv)
    if args.command == "validate":
        return _validate_cmd(args.files)
    return _compare_cmd(args.before, args.after, args.max_p99_growth, args.p99_floor_ms)


if __name__ == "__main__":
    sys.exit(main())
