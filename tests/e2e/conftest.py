"""The end-to-end tier's shared clusters: `kind_session`, the README's main command `pytest
--k8sdns-kind` run verbatim on a fresh kind cluster, whose exit code, results file, JUnit XML and
HTML report several test files check; and
`plugin_run`, a kind cluster made by the plugin's own Run for one test module; and `shared_run`, one
dual-stack cluster for the modules that set SHARED_CLUSTER."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_kind_session import (
    GLIBC_IMAGE,
    HERE,
    MUSL_IMAGE,
    NODE_IMAGE,
    _need_kind_and_images,
)

from pytest_k8sdns.config import DEFAULT_NODELOCAL_IMAGE, Settings
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube.kind import docker_leftovers
from pytest_k8sdns.plugin import _suite_dir
from pytest_k8sdns.session import Run, new_run_id


@pytest.fixture(scope="module")
def plugin_run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """A kind cluster made by the plugin's own Run (so faults may touch it) for the requesting test
    module, named after its RUN_PREFIX, and deleted when the module ends, also on failure."""
    _need_kind_and_images()
    prefix = getattr(request.module, "RUN_PREFIX", "e2e")
    config = getattr(request.module, "KIND_CONFIG", None)  # a fixtures/ file name; default 2 nodes
    run = Run(Settings(kind=True, kind_image=NODE_IMAGE, glibc_image=GLIBC_IMAGE, musl_image=MUSL_IMAGE,
                       kind_config=str(fixture_path(config)) if config else None),
              run_id=f"{prefix}-{new_run_id()}")
    try:
        run.start()
        yield run
    finally:
        run.stop()


@pytest.fixture(scope="session")
def shared_run() -> Iterator[Run]:
    """One dual-stack 2-node kind cluster (fixtures/kind-dual.yaml), made by the plugin's own Run, for
    the modules that set SHARED_CLUSTER (test_kind_dualstack, test_rbac, test_xdist): each undoes what
    it changes, and one cluster fewer to make saves about a minute each. tests/conftest.py runs those
    modules last, so the cluster goes as soon as they end (also on failure). kube-dns is made
    PreferDualStack (kubeadm leaves it SingleStack, as its operator would not), so the pods' IPv6
    nameserver is a Service address through kube-proxy's ip6tables."""
    _need_kind_and_images()
    run = Run(Settings(kind=True, kind_image=NODE_IMAGE, glibc_image=GLIBC_IMAGE, musl_image=MUSL_IMAGE,
                       kind_config=str(fixture_path("kind-dual.yaml"))),
              run_id=f"shared-{new_run_id()}")
    try:
        run.start()
        svc = run.cluster.core.patch_namespaced_service("kube-dns", "kube-system",
                                                        {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
        assert len(svc.spec.cluster_ips) == 2, svc.spec.cluster_ips
        yield run
    finally:
        run.stop()


#: the README's main command, verbatim, as a user types it after the README's set-up
MAIN_COMMAND = ("pytest", "--k8sdns-kind")


def _pytest_executable() -> str:
    """The `pytest` console script of this interpreter's environment (the one `pip install` made)."""
    beside = Path(sys.executable).with_name("pytest")
    found = str(beside) if beside.exists() else shutil.which("pytest")
    assert found, f"no pytest console script beside {sys.executable} or on PATH"
    return found


@pytest.fixture(scope="session")
def kind_session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's main command `pytest --k8sdns-kind`, verbatim (no image option: it finds the
    images substrate/build made), from a temporary directory outside the checkout, on a fresh kind
    cluster. PYTEST_ADDOPTS, as a CI job would set it, adds only outputs and check 16's built-in
    changes (those for clusters the plugin created too). Its exit code, output, results file, and the
    paths of its JUnit XML (xunit1, so it holds each check's figures) and self-contained HTML."""
    _need_kind_and_images()
    before = set(docker_leftovers())
    out = tmp_path_factory.mktemp("kind-session")
    results = out / "results.json"
    addopts = ["-p", "no:cacheprovider", "-rs", "-q", "--k8sdns-disruptive", "--k8sdns-settle-s=5",
               f"--k8sdns-results={results}", f"--junitxml={out / 'junit.xml'}", "-o", "junit_family=xunit1",
               f"--html={out / 'report.html'}", "--self-contained-html"]
    env = {**os.environ, "PYTEST_ADDOPTS": shlex.join(addopts)}
    proc = subprocess.run([_pytest_executable(), *MAIN_COMMAND[1:]], capture_output=True, text=True, cwd=out,
                          env=env, timeout=1800, check=False)
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr)
    after = set(docker_leftovers())
    return {"proc": proc, "results": json.loads(results.read_text()) if results.exists() else None,
            "left": sorted(after - before), "out": out}


@pytest.fixture(scope="session")
def nodelocal_session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One inner pytest session on a fresh kind cluster with NodeLocal DNSCache (test_kind_nodelocal):
    the NodeLocal and records checks, the substrate smoke checks (smoke_checks.py, which also hand
    test_no_secrets the cluster's credentials) and the NodeLocal removal check, last; its outputs."""
    _need_kind_and_images(DEFAULT_NODELOCAL_IMAGE)
    before = set(docker_leftovers())
    out = tmp_path_factory.mktemp("kind-nodelocal")
    results = out / "results.json"
    suite = _suite_dir()
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
            "--k8sdns-kind", "--k8sdns-kind-nodelocal", "--k8sdns-require-nodelocal",
            f"--k8sdns-kind-image={NODE_IMAGE}", f"--k8sdns-nodelocal-image={DEFAULT_NODELOCAL_IMAGE}",
            f"--k8sdns-glibc-image={GLIBC_IMAGE}", f"--k8sdns-musl-image={MUSL_IMAGE}",
            f"--k8sdns-results={results}", f"--junitxml={out / 'junit.xml'}", f"--html={out / 'report.html'}",
            "--self-contained-html", "-W", "ignore::pytest.PytestDeprecationWarning",
            str(suite / "test_nodelocal.py"), str(suite / "test_records.py"), str(HERE / "smoke_checks.py"),
            str(HERE / "nodelocal_checks.py")]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=out, timeout=1800, check=False)
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr)
    doc = json.loads(results.read_text()) if results.exists() else None
    own = (doc or {}).get("cluster", {}).get("kind_cluster")
    # only this session's cluster: other runs may start clusters meanwhile
    left = docker_leftovers(own) if own else sorted(set(docker_leftovers()) - before)
    return {"proc": proc, "results": doc, "left": left, "out": out}
