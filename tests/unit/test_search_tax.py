"""The search tax in a failure message names the failing node, and only a range for the others."""

from __future__ import annotations

from pytest_k8sdns.evidence.latency import LookupLatency, search_tax


def _latency(node: str, p50_ms: float) -> LookupLatency:
    return LookupLatency({"node": node}, 100, 0, 0.0, p50_ms, p50_ms, p50_ms, p50_ms, p50_ms, 0, 10.0, (p50_ms,), {})


def test_the_failing_node_is_named_and_the_others_are_a_range() -> None:
    with_search = {"w1": _latency("w1", 4.0), "w2": _latency("w2", 5.0), "w3": _latency("w3", 2000.0)}
    without = {node: _latency(node, 2.0) for node in with_search}
    tax = search_tax(with_search, without, "glibc")
    said = tax.said(["w3"])
    assert said.startswith(f"w3 x{tax.ratios('w3')[0]} at p50, the other 2 nodes x")
    assert "w1" not in said and "w2" not in said
    assert tax.said() == ", ".join(f"{n} x{tax.ratios(n)[0]} at p50" for n in with_search)  # nothing failed: all
