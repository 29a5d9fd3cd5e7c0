"""Per-node verdicts: each node judged against the bounds on its own, and a failure that names the
nodes that broke a bound and how the rest compare ("worker2: 31 of 100 lookups at the retry
signature; the other 2 nodes: 0")."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

from pytest_k8sdns.evidence.measure import Entity, Measurement, Q
from pytest_k8sdns.evidence.recorder import Recorder

E = TypeVar("E")


@dataclasses.dataclass(frozen=True)
class Bound(Generic[E]):
    """One bound a node's evidence must keep."""

    name: str  # "retry signatures", as the other nodes' range is labelled
    value: Callable[[E], float | None]  # the figure judged (None: nothing measured, which fails)
    limit: float  # the largest value that passes
    said: Callable[[E], str]  # the figure of a failing node, in words: "31 of 100 lookups at ..."
    unit: str = ""


@dataclasses.dataclass(frozen=True)
class NodeVerdict:
    failing: Mapping[str, tuple[str, ...]]  # node -> what it broke, in words
    broken: tuple[str, ...]  # the names of the bounds some node broke
    message: str  # "" when every node passed

    @property
    def ok(self) -> bool:
        return not self.failing


def _range(values: Sequence[float], unit: str) -> str:
    if not values:
        return "nothing measured"
    low, high = min(values), max(values)
    shown = (lambda v: f"{v:g}") if all(float(v).is_integer() for v in values) else (lambda v: f"{v:.3g}")
    text = shown(low) if math.isclose(low, high) else f"{shown(low)} to {shown(high)}"
    return f"{text} {unit}".rstrip()


def judge(per_node: Mapping[str, E], bounds: Sequence[Bound[E]]) -> NodeVerdict:
    """Judge every node; the message lists the failing nodes first, then the others' range of each
    bound that failed somewhere."""
    failing: dict[str, tuple[str, ...]] = {}
    broken: list[str] = []
    for node, evidence in per_node.items():
        said = []
        for bound in bounds:
            value = bound.value(evidence)
            if value is None or value > bound.limit:
                said.append(bound.said(evidence))
                if bound.name not in broken:
                    broken.append(bound.name)
        if said:
            failing[node] = tuple(said)
    if not failing:
        return NodeVerdict({}, (), "")
    parts = [f"{node}: {', '.join(said)}" for node, said in failing.items()]
    others = [n for n in per_node if n not in failing]
    if others:
        ranges = []
        for bound in bounds:
            if bound.name in broken:
                values = [v for v in (bound.value(per_node[n]) for n in others) if v is not None]
                ranges.append(f"{bound.name} {_range(values, bound.unit)}")
        noun = "node" if len(others) == 1 else "nodes"
        parts.append(f"the other {len(others)} {noun}: {', '.join(ranges)}")
    elif len(per_node) > 1:
        parts.append(f"(every one of the {len(per_node)} nodes)")
    return NodeVerdict(failing, tuple(broken), "; ".join(parts))


def node_verdicts(failing: Iterable[str], nodes: Iterable[str], entity: Entity) -> list[Measurement]:
    """Each node's part of a check that judges every node, for the node x check matrix."""
    bad = set(failing)
    return [Measurement(f"verdict[{node}]", "failed" if node in bad else "passed", "", Q.NODE_VERDICT,
                        {**entity, "node": node}) for node in nodes]


def record_node_verdicts(record: Recorder, verdict: NodeVerdict, per_node: Mapping[str, object], entity: Entity) -> None:
    record.add(*node_verdicts(verdict.failing, per_node, entity))
