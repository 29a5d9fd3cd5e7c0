"""The suite as a Job inside the cluster (fixtures/runner.yaml): the runner image, loaded into the
shared kind cluster, runs the packaged suite with the pod's ServiceAccount (in-cluster config, bound
only to rbac.yaml's Roles), and its results JSON, JUnit XML and HTML are fetched after the Job
ends with `python -m pytest_k8sdns.runner fetch`. A failing run fails the Job and still stores them."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils
from test_kind_session import GLIBC_IMAGE, MUSL_IMAGE

from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.session import Run

SHARED_CLUSTER = True  # conftest.shared_run, the dual-stack cluster test_rbac uses too
NAMESPACE = "k8sdns"
FAST = ["--k8sdns-samples=60", "--k8sdns-bursts=4", "--k8sdns-burst-size=4"]
#: the shared cluster's CoreDNS forwards to the test upstream, which serves this name (test_rbac)
EXTERNAL = "--k8sdns-external-name=api.example.test"


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(fixture_path("runner.yaml").read_text()) if d]


def _runner_image() -> str:
    (job,) = [d for d in _docs() if d["kind"] == "Job"]
    return str(job["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture(scope="module")
def runner(shared_run: Run) -> Iterator[Run]:
    """The shared cluster with the runner image loaded and runner.yaml's RBAC applied (objects
    test_rbac already made are kept as they are: they are the same documents). Removes what it
    created, the Jobs' pods included, so test_rbac finds the namespace empty in any order."""
    image = _runner_image()
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
        pytest.fail(f"image {image} is not built; run bash substrate/build-runner.sh (substrate/build runs it)")
    assert shared_run.kind is not None
    assert {image, GLIBC_IMAGE, MUSL_IMAGE} <= set(shared_run.kind.load_images([image, GLIBC_IMAGE, MUSL_IMAGE]))
    api = shared_run.cluster.api_client
    created: list[dict[str, Any]] = []
    for doc in _docs():
        if doc["kind"] == "Job":
            continue
        try:
            utils.create_from_dict(api, doc)
            created.append(doc)
        except utils.FailToCreateError as exc:
            if any(e.status != 409 for e in exc.api_exceptions):
                raise
    try:
        yield shared_run
    finally:
        _cleanup(shared_run, created)


def _cleanup(run: Run, created: list[dict[str, Any]]) -> None:
    core, batch = run.cluster.core, client.BatchV1Api(run.cluster.api_client)
    rbac = client.RbacAuthorizationV1Api(run.cluster.api_client)
    for job in batch.list_namespaced_job(NAMESPACE, label_selector="app.kubernetes.io/name=k8sdns-runner").items:
        batch.delete_namespaced_job(job.metadata.name, NAMESPACE, propagation_policy="Foreground")
    core.delete_collection_namespaced_config_map(NAMESPACE, label_selector="app.kubernetes.io/name=k8sdns-runner")
    ns_created = False
    for doc in reversed(created):
        kind, name, ns = doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace")
        if kind == "Namespace":
            ns_created = True
            core.delete_namespace(name)
        elif kind == "ServiceAccount":
            core.delete_namespaced_service_account(name, ns)
        elif kind == "Role":
            rbac.delete_namespaced_role(name, ns)
        elif kind == "RoleBinding":
            rbac.delete_namespaced_role_binding(name, ns)
        elif kind == "ClusterRole":
            rbac.delete_cluster_role(name)
        elif kind == "ClusterRoleBinding":
            rbac.delete_cluster_role_binding(name)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = [n.metadata.name for n in core.list_namespace().items if n.metadata.name == NAMESPACE] if ns_created \
            else [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE, label_selector="job-name").items]
        if not left:
            return
        time.sleep(2)
    raise AssertionError(f"left behind in {NAMESPACE} after 120 s: {left}")


def run_job(run: Run, out: Path, name: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """runner.yaml's Job under another name and ConfigMap, with `extra` pytest arguments; waits and
    fetches its files into `out` as the README does. The fetch's exit status and the Job's status."""
    (job,) = [copy.deepcopy(d) for d in _docs() if d["kind"] == "Job"]
    job["metadata"]["name"] = name
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [f"--configmap={name}" if a.startswith("--configmap=") else a for a in container["args"]]
    container["args"] += [EXTERNAL, *FAST, *extra]
    utils.create_from_dict(run.cluster.api_client, job)
    assert run.kind is not None
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest_k8sdns.runner", "fetch", f"--job={name}",
                           f"--configmap={name}", f"--out={out}", f"--kubeconfig={run.kind.kubeconfig}",
                           f"--context=kind-{run.kind.name}", "--wait=1200"],
                          capture_output=True, text=True, timeout=1500, check=False)
    logs = "".join(run.cluster.core.read_namespaced_pod_log(p.metadata.name, NAMESPACE, tail_lines=200)
                   for p in run.cluster.core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items)
    (out / "job.log").write_text(logs)
    print(f"job {name}: {time.monotonic() - t0:.0f} s; fetch exit {proc.returncode}")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr + logs[-4000:]
    assert sorted(p.name for p in out.iterdir() if p.name != "job.log") == ["junit.xml", "report.html", "results.json"]
    status = client.BatchV1Api(run.cluster.api_client).read_namespaced_job(name, NAMESPACE).status
    conditions = {c.type for c in status.conditions or [] if c.status == "True"}
    for path in ("results.json",):
        check = subprocess.run([sys.executable, "-m", "pytest_k8sdns.results", "validate", str(out / path)],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    return proc.returncode, {"conditions": conditions, "logs": logs,
                             "results": json.loads((out / "results.json").read_text())}


def test_the_job_passes_and_its_files_are_fetched(runner: Run, tmp_path: Path) -> None:
    status, job = run_job(runner, tmp_path, "k8sdns-runner")
    assert status == 0 and "Complete" in job["conditions"], job["logs"][-6000:]
    doc = job["results"]
    assert doc["cluster"]["namespace"] == NAMESPACE and doc["cluster"]["context"] == "in-cluster"
    outcomes = {c["nodeid"].split("::", 1)[1]: c["outcome"] for c in doc["checks"]}
    assert set(outcomes.values()) <= {"passed", "skipped"}, outcomes
    # as in test_rbac with only the shipped role: NodeLocal, changes and hostNetwork pods skip; capacity is opt-in
    assert all("test_nodelocal.py" in c["nodeid"] or "test_change.py" in c["nodeid"]
               or "test_host_network_pods" in c["nodeid"] or "test_capacity.py" in c["nodeid"]
               for c in doc["checks"] if c["outcome"] == "skipped")
    assert sum("test_dualstack.py" in c["nodeid"] and c["outcome"] == "passed" for c in doc["checks"]) == 7
    assert sum(o == "passed" for o in outcomes.values()) >= 40, outcomes
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    assert int(suite.get("failures", "0")) == 0 and int(suite.get("errors", "0")) == 0
    assert int(suite.get("tests", "0")) == len(doc["checks"])
    html = (tmp_path / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and len(html) > 50_000


def test_a_failing_run_fails_the_job_and_keeps_its_files(runner: Run, tmp_path: Path) -> None:
    # one latency check fails on its bound; check 16 watches a --k8sdns-during command in the pod,
    # which has no kubeconfig to copy (the command gets the pod's ServiceAccount)
    status, job = run_job(runner, tmp_path, "k8sdns-runner-fail", "--k8sdns-p99-ms=0.001", "--k8sdns-during=sleep 3",
                          "-k", "test_lookup_latency or test_dns_during_change")
    assert status == 1 and "Failed" in job["conditions"], job["logs"][-6000:]
    outcomes = {c["nodeid"].split("::", 1)[1]: c["outcome"] for c in job["results"]["checks"]}
    assert "failed" in outcomes.values(), outcomes
    assert outcomes.get("test_dns_during_change[during]") in ("passed", "failed"), outcomes
    assert not any(c["nodeid"].endswith("[during]") and "kubeconfig" in (c.get("message") or "")
                   for c in job["results"]["checks"]), job["logs"][-6000:]
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    assert int(suite.get("failures", "0")) >= 1
    assert "pytest exited 1; stored" in job["logs"]
