"""Verdict helpers for the conformance suite: every failure says expected, measured, and the fix."""

from __future__ import annotations

from typing import Any

import pytest


def expect(ok: bool, what: str, expected: Any, measured: Any, fix: str) -> None:
    """Fail the current check with one message: what, expected, measured, what to do."""
    __tracebackhide__ = True
    if not ok:
        pytest.fail(f"{what}: expected {expected}; measured {measured}. {fix}", pytrace=False)
