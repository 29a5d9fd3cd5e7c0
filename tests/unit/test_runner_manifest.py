"""fixtures/runner.yaml against fixtures/rbac.yaml and the runner: the same least privilege, one Role
more in the runner's own namespace, and a Job whose arguments the runner and the plugin accept."""

from __future__ import annotations

import base64
import gzip
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_k8sdns.errors import ConfigError, K8sDnsError
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube.client import IN_CLUSTER, SERVICE_ACCOUNT_DIR, Cluster
from pytest_k8sdns.runner import MAX_BYTES, results_configmap

ROOT = Path(__file__).resolve().parents[2]


def _docs(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(fixture_path(name).read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _job() -> dict[str, Any]:
    return _docs("runner.yaml")[("Job", "k8sdns-runner")]


def test_runner_yaml_holds_rbac_yaml_unchanged() -> None:
    rbac, runner = _docs("rbac.yaml"), _docs("runner.yaml")
    assert set(rbac) <= set(runner)
    for key, doc in rbac.items():
        assert runner[key] == doc, f"{key} differs between rbac.yaml and runner.yaml"


def test_the_runner_adds_only_configmap_writes_in_its_namespace() -> None:
    rbac, runner = _docs("rbac.yaml"), _docs("runner.yaml")
    extra = {k: v for k, v in runner.items() if k not in rbac}
    assert set(extra) == {("Role", "k8sdns-runner-results"), ("RoleBinding", "k8sdns-runner-results"),
                          ("Job", "k8sdns-runner")}
    role = extra[("Role", "k8sdns-runner-results")]
    assert role["metadata"]["namespace"] == "k8sdns"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "update"]}]
    binding = extra[("RoleBinding", "k8sdns-runner-results")]
    assert binding["metadata"]["namespace"] == "k8sdns"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "k8sdns-runner", "namespace": "k8sdns"}]


def test_the_job_runs_the_suite_in_cluster_as_the_service_account() -> None:
    job = _job()
    assert job["metadata"]["namespace"] == "k8sdns" and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "k8sdns-runner" and pod["restartPolicy"] == "Never"
    # the probe pods' label: the pre-run check would take the runner for another run
    assert "app.kubernetes.io/managed-by" not in job["spec"]["template"]["metadata"]["labels"]
    (container,) = pod["containers"]
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version and container["image"] == f"k8sdns/runner:{version.group(1)}"
    args: list[str] = container["args"]
    own, pytest_args = args[:args.index("--")], args[args.index("--") + 1:]
    assert own == ["--dir=/results", "--configmap=k8sdns-results"]
    for arg in (f"--k8sdns-context={IN_CLUSTER}", "--k8sdns-namespace=k8sdns", "--k8sdns-results=/results/results.json",
                "--junitxml=/results/junit.xml", "--html=/results/report.html", "--self-contained-html"):
        assert arg in pytest_args
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/results", "/tmp"}
    # Pod Security "restricted", which the namespace enforces
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_results_configmap_round_trips_and_refuses_over_1_mib() -> None:
    files = {"results.json": b'{"checks": []}', "report.html": b"<html>" + b"x" * 300_000}
    cm = results_configmap("k8sdns-results", files, 1, "uid-1")
    assert cm.data["exit-status"] == "1" and cm.data["job-uid"] == "uid-1"
    assert {k: gzip.decompress(base64.b64decode(v)) for k, v in cm.binary_data.items()} == \
        {f"{k}.gz": v for k, v in files.items()}
    with pytest.raises(K8sDnsError, match="over a ConfigMap's 1 MiB"):
        results_configmap("k8sdns-results", {"report.html": os.urandom(MAX_BYTES)}, 0, "")


@pytest.mark.skipif(os.path.exists(SERVICE_ACCOUNT_DIR), reason="runs inside a pod")
def test_in_cluster_outside_a_pod_is_one_line_naming_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        Cluster.from_kubeconfig(None, IN_CLUSTER)
    assert str(info.value).startswith(f"no service account token at {SERVICE_ACCOUNT_DIR}/token")
    assert "run inside a pod or give --k8sdns-context=NAME" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="uses the pod's service account, not --k8sdns-kubeconfig=kc; drop one"):
        Cluster.from_kubeconfig("kc", IN_CLUSTER)
