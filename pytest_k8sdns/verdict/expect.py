"""Verdict helpers for the conformance suite: every failure says expected, measured, and the fix."""

from __future__ import annotations

from typing import Any

import pytest


def expect(ok: bool, what: str, expected: Any, measured: Any, fix: str) -> None:
    """Fail the current check with one message: what, expected, measured, what to do."""
    __tracebackhide__ = True
    if not ok:
        pytest.fail(f"{what}: expected {expected}; measured {measured}. {fix}", pytrace=False)


def client_findings(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(check id, finding) of every check of a results document that recorded a client finding: what
    a probe's libc cannot do that the cluster does right (check 18's musl without TCP fallback),
    reported for the workloads on that libc rather than failed against the cluster."""
    out = []
    for check in doc.get("checks", []):
        found = (check.get("measurements") or {}).get("client_finding")
        if found:
            out.append((str(check.get("nodeid", "")).split("::", 1)[-1], str(found.get("value"))))
    return out
