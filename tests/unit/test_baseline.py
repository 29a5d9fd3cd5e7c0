"""The upgrade gate's comparison: p99 growth, new retry signatures, checks that stopped passing."""

from __future__ import annotations

import pytest
from results_docs import check, doc, healthy

from pytest_k8sdns.results import validate
from pytest_k8sdns.verdict.baseline import check_id, compare

LAT = "test_latency.py::test_lookup_latency[glibc]"
RETRY = "test_latency.py::test_retry_signature[musl]"


def test_same_run_passes() -> None:
    c = compare(healthy(), healthy())
    assert c.ok and c.regressions == ()
    assert c.lines("before.json")[0].endswith("passed")
    assert {(f.check, f.figure) for f in c.figures} >= {(LAT, "p99_ms"), (LAT, "p50_ms"), (RETRY, "retry_signatures")}


@pytest.mark.parametrize(("after", "limit", "regressed"), [
    (12.0, 1.5, False),  # x1.5 is allowed
    (12.1, 1.5, True),
    (30.0, 4.0, False),
    (30.0, 3.0, True),
])
def test_p99_growth_against_the_ratio(after: float, limit: float, regressed: bool) -> None:
    c = compare(healthy(), healthy(**{LAT: {"p99_ms": after}}), max_p99_growth=limit)
    assert (not c.ok) is regressed
    if regressed:
        (r,) = c.regressions
        assert (r.kind, r.check, r.figure, r.before, r.after) == ("p99-growth", LAT, "p99_ms", 8.0, after)
        assert r.message.startswith(f"p99 grew x{after / 8.0:.2f} (more than x{limit:g}): {LAT} p99_ms 8 -> {after:g} ms")


def test_p99_floor_absorbs_jitter_of_fast_clusters() -> None:
    before = healthy(**{LAT: {"p99_ms": 1.0}})
    after = healthy(**{LAT: {"p99_ms": 3.0}})
    assert compare(before, after, 1.5, p99_floor_ms=5.0).ok  # 1 -> 3 ms: both count as 5 ms
    assert not compare(before, after, 1.5, p99_floor_ms=0.0).ok  # x3 without the floor
    grown = compare(before, healthy(**{LAT: {"p99_ms": 9.0}}), 1.5, p99_floor_ms=5.0)
    assert [r.kind for r in grown.regressions] == ["p99-growth"]  # 9 / 5 = x1.8


def test_server_p99_is_gated_too() -> None:
    server = "test_latency.py::test_server_latency"
    c = compare(doc(check(server, server_p99_ms=2.0)), doc(check(server, server_p99_ms=40.0)))
    assert [(r.kind, r.figure) for r in c.regressions] == [("p99-growth", "server_p99_ms")]


def test_new_retry_signatures() -> None:
    c = compare(healthy(), healthy(**{RETRY: {"retry_signatures": 3}}))
    assert [(r.kind, r.check, r.before, r.after) for r in c.regressions] == [("new-retry-signatures", RETRY, 0.0, 3.0)]
    assert "new retry signatures: test_latency.py::test_retry_signature[musl] 0 -> 3" in c.regressions[0].message
    fewer = compare(healthy(**{RETRY: {"retry_signatures": 3}}), healthy(**{RETRY: {"retry_signatures": 1}}))
    assert fewer.ok


def test_a_check_that_passed_and_now_fails() -> None:
    c = compare(healthy(), healthy(**{RETRY: {"outcome": "failed", "message": "musl lookups at the retry signature"}}))
    (r,) = c.regressions
    assert (r.kind, r.check, r.before, r.after) == ("now-failing", RETRY, "passed", "failed")
    assert r.message == f"passed before, failed now: {RETRY}: musl lookups at the retry signature"
    assert (RETRY, "passed", "failed") in c.outcomes


def test_checks_skipped_or_failing_before_are_not_regressions() -> None:
    nl = "test_nodelocal.py::test_caches"
    assert compare(healthy(**{nl: {"outcome": "skipped"}}), healthy(**{nl: {"outcome": "failed"}})).ok
    assert compare(healthy(**{LAT: {"outcome": "failed"}}), healthy(**{LAT: {"outcome": "failed"}})).ok
    assert compare(healthy(**{LAT: {"outcome": "skipped"}}), healthy(**{LAT: {"outcome": "skipped"}})).ok


def test_a_check_that_passed_and_now_skips() -> None:
    """What the cluster served before and no longer does (pod A records withdrawn, NodeLocal gone)
    shows as a check that now skips: the gate names it with the skip's reason."""
    c = compare(healthy(), healthy(**{LAT: {"outcome": "skipped", "message": "`pods disabled`"}}))
    (r,) = c.regressions
    assert (r.kind, r.check, r.before, r.after) == ("now-skipped", LAT, "passed", "skipped")
    assert r.message == f"passed before, skipped now: {LAT}: `pods disabled`"


def test_regressions_in_order_and_in_the_terminal_lines() -> None:
    after = healthy(**{LAT: {"p99_ms": 5000.0, "retry_signatures": 2},
                       RETRY: {"outcome": "failed", "message": "boom", "retry_signatures": 4}})
    c = compare(healthy(), after)
    assert [r.kind for r in c.regressions] == ["now-failing", "p99-growth", "new-retry-signatures",
                                               "new-retry-signatures"]
    lines = c.lines("before.json")
    assert lines[0] == ("upgrade gate against before.json (2026-11-26T08:00:00+00:00, pytest-k8sdns 0.1.0): "
                        "FAILED, 4 regressions")
    assert all(line.startswith("  ") for line in lines[1:]) and len(lines) == 5


def test_checks_match_by_file_and_name_not_by_path() -> None:
    assert check_id("../../work/main/conformance/test_latency.py::test_lookup_latency[musl]") == \
        "test_latency.py::test_lookup_latency[musl]"
    assert check_id("test_loop.py") == "test_loop.py"
    before = doc(check(LAT, p99_ms=8.0))
    after = doc(check(LAT, p99_ms=80.0))
    del before["checks"][0]["id"]
    before["checks"][0]["nodeid"] = "/somewhere/else/conformance/" + LAT
    assert [r.kind for r in compare(before, after).regressions] == ["p99-growth"]


def test_checks_not_run_this_time_are_listed_not_failed() -> None:
    before = healthy()
    after = doc(*[c for c in healthy()["checks"] if "musl" not in c["id"]])
    c = compare(before, after)
    assert c.ok and RETRY in c.missing
    assert c.lines("b.json")[-1].startswith("  not run this time (not compared): ")


def test_gate_section_is_valid_in_a_results_file() -> None:
    after = healthy(**{LAT: {"p99_ms": 5000.0}})
    after["baseline"] = compare(healthy(), after).as_dict("before.json")
    assert validate(after) == []
    assert after["baseline"]["ok"] is False
    fig = next(f for f in after["baseline"]["figures"] if f["check"] == LAT and f["figure"] == "p99_ms")
    assert fig == {"check": LAT, "figure": "p99_ms", "unit": "ms", "before": 8.0, "after": 5000.0, "ratio": 625.0}
