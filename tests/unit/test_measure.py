"""Measurements carry their quantity and entity: the gate and the report find figures by what they
measure and whom they belong to, whatever the check that recorded them is called."""

from __future__ import annotations

from typing import Any

from results_docs import doc

from pytest_k8sdns.evidence import measure
from pytest_k8sdns.evidence.measure import Measurement, Q
from pytest_k8sdns.report import summary
from pytest_k8sdns.results import validate
from pytest_k8sdns.verdict.baseline import compare


def _check(cid: str, *figures: Measurement, series: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": cid, "nodeid": f"suite/{cid}", "name": cid.partition("::")[2].split("[")[0], "number": None,
            "params": {}, "outcome": "passed", "duration_s": 0.1,
            "measurements": {m.name: m.as_dict() for m in figures}, "series": series or {}}


def _run(p99: float, retries: int) -> dict[str, Any]:
    # check and figure names no code knows: only quantities and entities say what they are
    glibc = {"libc": "glibc"}
    return doc(
        _check("test_vendor.py::test_tail[glibc]", Measurement("tail", p99, "ms", Q.LOOKUP_P99, glibc),
               Measurement("n", 300, "", Q.LOOKUP_COUNT, glibc),
               series={"all": {"unit": "ms", "values": [0.4, 0.5, p99], "quantity": Q.LOOKUP_LATENCY, "entity": glibc}}),
        _check("test_vendor.py::test_bursts[glibc]", Measurement("slow", retries, "", Q.BURST_RETRIES, glibc)),
        _check("test_vendor.py::test_per_node", Measurement("p99[n1]", 1.0, "ms", Q.LOOKUP_P99, {"libc": "glibc", "node": "n1"})),
    )


def test_measurement_as_results_entry() -> None:
    m = Measurement("p99_ms", 3.2, "ms", Q.LOOKUP_P99, {"libc": "musl", "node": "n1"})
    assert m.as_dict() == {"value": 3.2, "unit": "ms", "quantity": "lookup.latency.p99",
                           "entity": {"libc": "musl", "node": "n1"}}
    assert Measurement("restarts", {"a": 0}).as_dict() == {"value": {"a": 0}, "unit": ""}
    assert validate(_run(3.0, 0)) == []


def test_find_by_quantity_and_entity() -> None:
    run = _run(3.0, 0)
    assert measure.value(run, Q.LOOKUP_P99, libc="glibc", node=None) == 3.0  # node=None: not a per-node figure
    assert measure.value(run, Q.LOOKUP_P99, node="n1") == 1.0
    assert measure.value(run, Q.LOOKUP_P99, libc="musl") is None
    assert [name for _, name, _ in measure.find(run, Q.LOOKUP_P99)] == ["tail", "p99[n1]"]


def test_gate_rules_follow_quantities_not_names() -> None:
    c = compare(_run(3.0, 0), _run(30.0, 2))
    assert sorted((r.kind, r.check, r.figure) for r in c.regressions) == [
        ("new-retry-signatures", "test_vendor.py::test_bursts[glibc]", "slow"),
        ("p99-growth", "test_vendor.py::test_tail[glibc]", "tail"),
    ]
    assert "n" not in {f.figure for f in c.figures}  # a count carries no rule and is not shown
    assert compare(_run(3.0, 0), _run(3.5, 0)).ok


def test_summary_reads_figures_by_quantity() -> None:
    run = _run(7.5, 0)
    assert summary.latency_series(run, "glibc") == [0.4, 0.5, 7.5]
    assert summary.latency_series(run, "musl") == []
    html = summary.render(run, {})
    assert "<td>p99 (ms)</td><td class='num'>7.5</td>" in html


def test_results_files_without_quantities_are_read_by_their_names() -> None:
    # a baseline written before measurements carried quantities (pytest-k8sdns 0.1.0)
    old = {"name": "test_lookup_latency", "params": {"libc": "musl"}}
    assert measure.quantity_of(old, "p99_ms", {"value": 1, "unit": "ms"}) == Q.LOOKUP_P99
    assert measure.entity_of(old, {"value": 1, "unit": "ms"}) == {"libc": "musl"}
    reopen = {"name": "test_retry_signature", "params": {"variant": "glibc-single-request-reopen"}}
    assert measure.entity_of(reopen, {}) == {"libc": "glibc", "option": "single-request-reopen"}
    assert measure.quantity_of({"name": "test_other"}, "p99_ms", {"value": 1, "unit": "ms"}) is None
