"""Least privilege on a real cluster: the packaged suite's checks that read kube-system or make
objects pass as a ServiceAccount bound only to fixtures/rbac.yaml (a token, no client certificate;
the whole suite runs with exactly these Roles in test_runner_job.py), and a permission taken away
is named in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils
from test_kind_session import GLIBC_IMAGE, MUSL_IMAGE

from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.plugin import _suite_dir
from pytest_k8sdns.session import Run

NAMESPACE = "k8sdns"
ACCOUNT = "k8sdns-runner"
FAST = ["--k8sdns-samples=60", "--k8sdns-bursts=4", "--k8sdns-burst-size=4"]


SHARED_CLUSTER = True  # conftest.shared_run, the dual-stack cluster test_kind_dualstack uses too


@pytest.fixture(scope="module")
def cluster(shared_run: Run) -> Run:
    """The e2e tier's shared kind cluster (conftest.shared_run) with fixtures/rbac.yaml applied."""
    docs = [d for d in yaml.safe_load_all(fixture_path("rbac.yaml").read_text()) if d]
    utils.create_from_yaml(shared_run.cluster.api_client, yaml_objects=docs)
    return shared_run


@pytest.fixture(scope="module")
def runner_kubeconfig(cluster: Run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A kubeconfig for the ServiceAccount: the cluster's CA and a token, no client certificate."""
    assert cluster.kind is not None
    admin = yaml.safe_load(cluster.kind.kubeconfig.read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    token = cluster.cluster.core.create_namespaced_service_account_token(
        ACCOUNT, NAMESPACE, {"spec": {"expirationSeconds": 3600}}).status.token
    path = tmp_path_factory.mktemp("rbac") / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": ACCOUNT,
        "clusters": [{"name": "kind", "cluster": {"server": cluster.cluster.server, "certificate-authority-data": ca}}],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": "kind", "user": ACCOUNT, "namespace": NAMESPACE}}],
    }))
    return path, token


def suite(kubeconfig: Path, out: Path, *extra: str,
          only: str | tuple[str, ...] | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """The packaged suite (or part of it, `only`: node ids under it) as the ServiceAccount."""
    paths = [only] if isinstance(only, str) else list(only or ())
    results = out / "results.json"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
            f"--k8sdns-context={ACCOUNT}", f"--k8sdns-kubeconfig={kubeconfig}", f"--k8sdns-namespace={NAMESPACE}",
            f"--k8sdns-glibc-image={GLIBC_IMAGE}", f"--k8sdns-musl-image={MUSL_IMAGE}",
            "--k8sdns-external-name=api.example.test", f"--k8sdns-results={results}",
            "-W", "ignore::pytest.PytestDeprecationWarning", *FAST, *extra,
            *([str(_suite_dir() / p) for p in paths] or [str(_suite_dir())])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False, cwd=out)
    (out / "output.txt").write_text(proc.stdout + proc.stderr)
    return proc, json.loads(results.read_text()) if results.exists() else None


def test_suite_passes_with_only_the_shipped_role(cluster: Run, runner_kubeconfig: tuple[Path, str],
                                                 tmp_path: Path) -> None:
    kubeconfig, token = runner_kubeconfig
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    assert set(user) == {"token"}  # no client certificate, no admin
    # what reads kube-system (the loop checks: logs, Corefile, DNS pods), every kind of object the
    # suite makes (records), and the dual-stack checks; the whole suite runs with exactly these Roles
    # in test_runner_job.py (the Job's ServiceAccount, in-cluster)
    proc, doc = suite(kubeconfig, tmp_path, only=("test_loop.py", "test_records.py", "test_dualstack.py"))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert doc is not None
    outcomes = {c["nodeid"].split("::", 1)[1]: c["outcome"] for c in doc["checks"]}
    assert {o for o in outcomes.values()} == {"passed"}, outcomes
    assert sum("test_dualstack.py" in c["nodeid"] for c in doc["checks"]) == 7
    assert sum(o == "passed" for o in outcomes.values()) >= 40, outcomes
    assert doc["cluster"]["namespace"] == NAMESPACE
    # the namespace stays, without the run's pods and Services
    core = cluster.cluster.core
    deadline = time.monotonic() + 60
    while core.list_namespaced_pod(NAMESPACE).items and time.monotonic() < deadline:
        time.sleep(1)
    assert core.list_namespaced_pod(NAMESPACE).items == []
    assert core.list_namespaced_service(NAMESPACE).items == []
    # the token was used and is nowhere in what the run wrote
    for text in ((tmp_path / "results.json").read_text(), (tmp_path / "output.txt").read_text()):
        assert token not in text and token.split(".")[1] not in text


def test_missing_permission_is_named(cluster: Run, runner_kubeconfig: tuple[Path, str], tmp_path: Path) -> None:
    """Without the right to read CoreDNS's logs the run does not start, and says which right it lacks."""
    api = client.RbacAuthorizationV1Api(cluster.cluster.api_client)
    role = api.read_namespaced_role("k8sdns-read-dns", "kube-system")
    kept = [r for r in role.rules if r.resources != ["pods/log"]]
    assert len(kept) == len(role.rules) - 1
    serialize = api.api_client.sanitize_for_serialization
    api.patch_namespaced_role("k8sdns-read-dns", "kube-system", {"rules": serialize(kept)})
    try:
        proc, _ = suite(runner_kubeconfig[0], tmp_path)
    finally:
        api.patch_namespaced_role("k8sdns-read-dns", "kube-system", {"rules": serialize(role.rules)})
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR:")]
    assert errors == [f"ERROR: Forbidden: cannot get pods/log in namespace kube-system on {cluster.cluster.server}; "
                      f"grant it to this identity (fixtures/rbac.yaml lists what the suite needs)"], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert cluster.cluster.core.list_namespaced_pod(NAMESPACE).items == []  # nothing was started


def test_suite_passes_without_watch(cluster: Run, runner_kubeconfig: tuple[Path, str], tmp_path: Path) -> None:
    """An identity bound by the rbac.yaml of 0.1.0, which had no `watch`: the run starts (watch is
    optional) and its waits poll instead of watching."""
    api = client.RbacAuthorizationV1Api(cluster.cluster.api_client)
    role = api.read_namespaced_role("k8sdns-run", NAMESPACE)
    serialize = api.api_client.sanitize_for_serialization
    rules = serialize(role.rules)
    without = [{**r, "verbs": [v for v in r["verbs"] if v != "watch"]} for r in rules]
    assert without != rules  # the shipped role grants watch somewhere
    api.patch_namespaced_role("k8sdns-run", NAMESPACE, {"rules": without})
    try:
        # the records module waits for every kind of object the suite makes (pods, Services,
        # endpoints, a changed Service): the whole suite again would add a minute and prove no more
        proc, doc = suite(runner_kubeconfig[0], tmp_path, only="test_records.py")
    finally:
        api.patch_namespaced_role("k8sdns-run", NAMESPACE, {"rules": rules})
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert doc is not None and {c["outcome"] for c in doc["checks"]} == {"passed"}, doc["checks"] if doc else None


def test_disruptive_needs_its_role_and_runs_with_only_that(cluster: Run, runner_kubeconfig: tuple[Path, str],
                                                          tmp_path: Path) -> None:
    """--k8sdns-disruptive as the ServiceAccount bound to rbac.yaml only: refused before anything is
    created, in one line naming each right rbac-disruptive.yaml adds. With that file applied too, a
    built-in change runs and passes."""
    kubeconfig = runner_kubeconfig[0]
    proc, _ = suite(kubeconfig, tmp_path, "--k8sdns-disruptive", only="test_change.py")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1 and "Forbidden: cannot " in errors[0], proc.stderr
    assert "patch deployments (apps) in namespace kube-system" in errors[0], errors
    assert "delete pods in namespace kube-system" in errors[0], errors
    assert "fixtures/rbac-disruptive.yaml what --k8sdns-disruptive adds" in errors[0], errors
    assert "Traceback" not in proc.stdout + proc.stderr
    assert cluster.cluster.core.list_namespaced_pod(NAMESPACE).items == []  # nothing was started

    docs = [d for d in yaml.safe_load_all(fixture_path("rbac-disruptive.yaml").read_text()) if d]
    utils.create_from_yaml(cluster.cluster.api_client, yaml_objects=docs)
    rbac_api = client.RbacAuthorizationV1Api(cluster.cluster.api_client)
    try:
        proc, doc = suite(kubeconfig, tmp_path, "--k8sdns-disruptive", "--k8sdns-settle-s=3",
                          only="test_change.py::test_dns_during_change[coredns-pod-delete]")
    finally:
        rbac_api.delete_namespaced_role_binding("k8sdns-disruptive", "kube-system")
        rbac_api.delete_namespaced_role("k8sdns-disruptive", "kube-system")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert doc is not None and [c["outcome"] for c in doc["checks"]] == ["passed"], doc["checks"]
