"""Every check of the packaged suite has a fault that must make it fail (pytest_k8sdns.faults.TARGETS);
tests/e2e/test_negative_controls.py proves each entry on a real kind cluster."""

from __future__ import annotations

import ast

from pytest_k8sdns.faults import RUN_INPUT_FAULTS, TARGETS, Faults
from pytest_k8sdns.plugin import _suite_dir


def _suite_checks() -> set[str]:
    names: set[str] = set()
    for path in _suite_dir().glob("test_*.py"):
        tree = ast.parse(path.read_text())
        names |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return names


def test_every_check_has_a_fault() -> None:
    covered = {check for checks in TARGETS.values() for check in checks}
    assert _suite_checks() - covered == set()


def test_targets_name_real_checks() -> None:
    covered = {check for checks in TARGETS.values() for check in checks}
    assert covered - _suite_checks() == set()


def test_every_target_is_a_fault_method_or_a_run_input() -> None:
    assert [f for f in TARGETS if not callable(getattr(Faults, f, None)) and f not in RUN_INPUT_FAULTS] == []
    assert set(RUN_INPUT_FAULTS) <= set(TARGETS)
