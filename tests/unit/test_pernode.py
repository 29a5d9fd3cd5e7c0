"""Per-node verdicts: every node judged on its own, failing nodes named first, the others' range after."""

from __future__ import annotations

import dataclasses

from pytest_k8sdns.verdict.pernode import Bound, judge


@dataclasses.dataclass(frozen=True)
class Ev:
    lookups: int = 100
    retries: int = 0
    p99: float | None = 3.0


RETRIES = Bound[Ev]("lookups at the retry signature", lambda e: e.retries, 0,
                    lambda e: f"{e.retries} of {e.lookups} lookups at the retry signature")
P99 = Bound[Ev]("p99", lambda e: e.p99, 100.0, lambda e: f"p99 {e.p99} ms", "ms")


def test_every_node_within_its_bounds_passes_with_no_message() -> None:
    verdict = judge({"worker": Ev(), "worker2": Ev(p99=100.0)}, [RETRIES, P99])
    assert verdict.ok and verdict.failing == {} and verdict.broken == () and verdict.message == ""


def test_no_nodes_pass() -> None:
    assert judge({}, [RETRIES, P99]).ok


def test_the_failing_node_is_named_and_the_others_range_follows() -> None:
    per_node = {"worker": Ev(), "worker2": Ev(retries=31), "worker3": Ev()}
    verdict = judge(per_node, [RETRIES, P99])
    assert not verdict.ok
    assert verdict.failing == {"worker2": ("31 of 100 lookups at the retry signature",)}
    assert verdict.broken == ("lookups at the retry signature",)
    assert verdict.message == ("worker2: 31 of 100 lookups at the retry signature; "
                               "the other 2 nodes: lookups at the retry signature 0")


def test_one_other_node_is_singular_and_its_value_is_shown_once() -> None:
    verdict = judge({"a": Ev(p99=250.0), "b": Ev(p99=4.0)}, [RETRIES, P99])
    assert verdict.message == "a: p99 250.0 ms; the other 1 node: p99 4 ms"


def test_the_others_range_runs_from_low_to_high_in_the_bound_unit() -> None:
    per_node = {"a": Ev(p99=2.345), "b": Ev(p99=101.0), "c": Ev(p99=7.891), "d": Ev(p99=4.0)}
    verdict = judge(per_node, [RETRIES, P99])
    assert verdict.message == "b: p99 101.0 ms; the other 3 nodes: p99 2.35 to 7.89 ms"


def test_integer_ranges_are_shown_without_decimals() -> None:
    bound = Bound[Ev]("lookups at the retry signature", lambda e: e.retries, 2, lambda e: f"{e.retries} of 100")
    verdict = judge({"a": Ev(retries=0), "b": Ev(retries=2), "c": Ev(retries=9)}, [bound])
    assert verdict.message == "c: 9 of 100; the other 2 nodes: lookups at the retry signature 0 to 2"


def test_the_limit_itself_passes_and_one_above_fails() -> None:
    assert judge({"a": Ev(p99=100.0)}, [P99]).ok
    assert not judge({"a": Ev(p99=100.000001)}, [P99]).ok


def test_nothing_measured_fails() -> None:
    verdict = judge({"a": Ev(p99=None), "b": Ev()}, [P99])
    assert verdict.failing == {"a": ("p99 None ms",)}
    assert verdict.message == "a: p99 None ms; the other 1 node: p99 3 ms"


def test_a_node_that_breaks_two_bounds_lists_both_and_the_others_range_of_each() -> None:
    per_node = {"a": Ev(retries=3, p99=5000.0), "b": Ev(retries=0, p99=3.0), "c": Ev(retries=0, p99=5.0)}
    verdict = judge(per_node, [RETRIES, P99])
    assert verdict.failing["a"] == ("3 of 100 lookups at the retry signature", "p99 5000.0 ms")
    assert verdict.broken == ("lookups at the retry signature", "p99")
    assert verdict.message == ("a: 3 of 100 lookups at the retry signature, p99 5000.0 ms; "
                               "the other 2 nodes: lookups at the retry signature 0, p99 3 to 5 ms")


def test_only_the_bounds_some_node_broke_get_a_range() -> None:
    verdict = judge({"a": Ev(retries=1), "b": Ev(p99=9.5)}, [RETRIES, P99])
    assert "p99" not in verdict.message
    assert verdict.message.endswith("the other 1 node: lookups at the retry signature 0")


def test_failing_nodes_keep_the_order_they_were_given_in() -> None:
    per_node = {"z": Ev(retries=1), "a": Ev(), "m": Ev(retries=2)}
    verdict = judge(per_node, [RETRIES])
    assert list(verdict.failing) == ["z", "m"]
    assert verdict.message.startswith("z: 1 of 100 lookups at the retry signature; m: 2 of 100")


def test_every_node_failing_says_so_instead_of_a_range() -> None:
    verdict = judge({"a": Ev(retries=1), "b": Ev(p99=400.0), "c": Ev(retries=5)}, [RETRIES, P99])
    assert verdict.broken == ("lookups at the retry signature", "p99")
    assert verdict.message == ("a: 1 of 100 lookups at the retry signature; b: p99 400.0 ms; "
                               "c: 5 of 100 lookups at the retry signature; (every one of the 3 nodes)")


def test_a_single_failing_node_needs_no_comparison() -> None:
    verdict = judge({"only": Ev(retries=4)}, [RETRIES])
    assert verdict.message == "only: 4 of 100 lookups at the retry signature"
