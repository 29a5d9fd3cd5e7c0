"""Every check of the packaged suite has a fault that must make it fail (pytest_k8sdns.faults.TARGETS);
tests/e2e/test_negative_controls.py proves each entry on a real kind cluster. Faults are opt-in:
a user run never imports them."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from kubernetes import client

from pytest_k8sdns.errors import ClusterError
from pytest_k8sdns.faults import RUN_INPUT_FAULTS, TARGETS, Faults
from pytest_k8sdns.kube.client import Cluster
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


def test_a_user_run_imports_no_fault() -> None:
    """The plugin, its fixtures and the run's lifecycle load without pytest_k8sdns.faults; only the
    opt-in plugin module brings it, with the k8sdns_faults fixture."""
    probe = ("import sys, pytest_k8sdns.plugin, pytest_k8sdns.fixtures, pytest_k8sdns.session; "
             "print(sorted(m for m in sys.modules if m.startswith('pytest_k8sdns.faults')))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "[]\n"
    from pytest_k8sdns.faults import plugin
    assert callable(plugin.k8sdns_faults)


def test_faults_refuse_a_cluster_the_plugin_did_not_create() -> None:
    cluster = Cluster(client.ApiClient(client.Configuration(host="https://127.0.0.1:1")), "prod", "kc", created=False)
    with pytest.raises(ClusterError) as info:
        Faults(cluster, None)
    assert str(info.value) == ("refusing to inject faults into prod (https://127.0.0.1:1): the plugin did not create it; "
                               "faults only run on kind clusters made by --k8sdns-kind")
