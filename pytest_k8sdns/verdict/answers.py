"""Verdicts on answers: a libc lookup asked from every node, a raw reply asked once. A wrong answer
fails the check with its own subject; a measurement spoiled by timeouts fails it with the root cause
instead (verdict.rootcause)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from pytest_k8sdns.evidence.recorder import Recorder
from pytest_k8sdns.probe.results import LookupResult, QueryReply
from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.verdict.pernode import node_verdicts
from pytest_k8sdns.verdict.rootcause import (
    lookup_spoiled,
    reply_spoiled,
    spoiled_message,
)

#: Gives the transport causes the node x replica matrix found (measured on first use).
Causes = Callable[[], Sequence[str]]


def lookups_everywhere(runs: Mapping[str, LookupResult], libc: str, what: str, expected: Any,
                       good: Callable[[list[str]], bool], fix: str, causes: Causes,
                       record: Recorder | None = None) -> dict[str, list[str]]:
    """Judge one name's lookup from every node ({node: result}); returns {node: addresses}. Each
    node's part goes to `record` as its node.verdict."""
    __tracebackhide__ = True
    got = {node: list(r.addresses[0] or ()) for node, r in runs.items()}
    bad = [node for node in runs if not good(got[node])]
    if record is not None:
        record.add(*node_verdicts(bad, runs, {"libc": libc}))
    if not bad:
        return got
    spoiled = {node: lookup_spoiled(runs[node], libc) for node in bad}
    if all(spoiled.values()):
        where = "; ".join(f"on {node}: {why}" for node, why in spoiled.items())
        pytest.fail(spoiled_message(what, f"({where})", "timeouts", causes()), pytrace=False)
    wrong = [node for node in bad if not spoiled[node]]
    measured = "; ".join(f"{node}: {got[node] or dict(runs[node].errors)}" for node in wrong)
    also = [node for node in bad if spoiled[node]]
    if also:
        measured += "; spoiled by timeouts on " + ", ".join(also)
    rest = len(runs) - len(bad)
    if rest:
        measured += f"; the other {rest} node{'s' if rest > 1 else ''}: as expected"
    expect(False, what, expected, measured, fix)
    return got


def reply(reply: QueryReply, where: str, what: str, ok: bool, expected: Any, measured: Any, fix: str,
          causes: Causes) -> None:
    """Judge one raw reply: its own verdict, unless it is no reply or SERVFAIL."""
    __tracebackhide__ = True
    if ok:
        return
    why = reply_spoiled(reply)
    if why:
        pytest.fail(spoiled_message(what, f"from {where}", why, causes()), pytrace=False)
    expect(False, what, expected, measured, fix)


def names_in_pod(pod: Any, expected: Mapping[str, list[str]], record: Recorder) -> dict[str, Any]:
    """One libc lookup of each name in `expected` ({name: addresses}) from one probe pod; the
    addresses go to `record`. Returns the names that got other addresses: {name: addresses, or the
    lookup's errors when it got none}."""
    result = pod.lookup(list(expected), count=len(expected), family="inet")
    got = {n: list(a or ()) for n, a in zip(result.names, result.addresses)}
    record("addresses", [f"{n}: {' '.join(a) or 'none'}" for n, a in got.items()])
    return {n: a or dict(result.errors) for n, a in got.items() if a != expected[n]}
