"""Opt-in pytest plugin for fault injection: `-p pytest_k8sdns.faults.plugin` on the command line,
or `pytest_plugins = ["pytest_k8sdns.faults.plugin"]` in the top-level conftest, adds the
`k8sdns_faults` fixture."""

from __future__ import annotations

import pytest

from pytest_k8sdns.errors import K8sDnsError
from pytest_k8sdns.faults import Faults
from pytest_k8sdns.session import Run


@pytest.fixture(scope="session")
def k8sdns_faults(k8sdns_run: Run) -> Faults:
    """Session. Fault injection (pytest_k8sdns.faults.Faults) on the kind cluster this run created;
    fails on any other cluster."""
    try:
        return Faults(k8sdns_run.cluster, k8sdns_run.kind)
    except K8sDnsError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)
