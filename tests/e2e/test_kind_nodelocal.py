"""End to end: `pytest --k8sdns-kind --k8sdns-kind-nodelocal` deploys NodeLocal DNSCache on a
2-node kind cluster, every check 14 passes on every node, the record checks pass through the cache,
removing it leaves the nodes clean, and no container is left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_k8sdns.config import DEFAULT_NODELOCAL_IMAGE
from pytest_k8sdns.kube.kind import docker_leftovers, kind_env_ok
from pytest_k8sdns.plugin import _suite_dir

NODE_IMAGE = os.environ.get("K8SDNS_NODE_IMAGE", "k8sdns/kind-node:latest")
GLIBC_IMAGE = os.environ.get("K8SDNS_GLIBC_IMAGE", "k8sdns/probe-glibc:py3.11-bookworm")
MUSL_IMAGE = os.environ.get("K8SDNS_MUSL_IMAGE", "k8sdns/probe-musl:py3.11-musl")
NODECACHE_IMAGE = os.environ.get("K8SDNS_NODECACHE_IMAGE", DEFAULT_NODELOCAL_IMAGE)
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def nodelocal_session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One inner pytest session on a fresh kind cluster with NodeLocal DNSCache."""
    reason = kind_env_ok()
    if reason:
        pytest.skip(f"{reason}; run substrate/build (see README)")
    for image in (NODE_IMAGE, GLIBC_IMAGE, MUSL_IMAGE, NODECACHE_IMAGE):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
            pytest.skip(f"image {image} is not built; run substrate/build (see README)")
    before = set(docker_leftovers())
    out = tmp_path_factory.mktemp("kind-nodelocal")
    results = out / "results.json"
    suite = _suite_dir()
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
            "--k8sdns-kind", "--k8sdns-kind-nodelocal", "--k8sdns-require-nodelocal",
            f"--k8sdns-kind-image={NODE_IMAGE}", f"--k8sdns-nodelocal-image={NODECACHE_IMAGE}",
            f"--k8sdns-glibc-image={GLIBC_IMAGE}", f"--k8sdns-musl-image={MUSL_IMAGE}",
            f"--k8sdns-results={results}", "-W", "ignore::pytest.PytestDeprecationWarning",
            str(suite / "test_nodelocal.py"), str(suite / "test_records.py"), str(HERE / "nodelocal_checks.py")]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=out, timeout=1800, check=False)
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr)
    doc = json.loads(results.read_text()) if results.exists() else None
    own = (doc or {}).get("cluster", {}).get("kind_cluster")
    # only this session's cluster: other runs may start clusters meanwhile
    left = docker_leftovers(own) if own else sorted(set(docker_leftovers()) - before)
    return {"proc": proc, "results": doc, "left": left}


def _checks(session: dict, path: str) -> dict[str, dict]:
    assert session["results"], session["proc"].stdout[-6000:] + session["proc"].stderr[-3000:]
    return {c["nodeid"].split("::", 1)[-1]: c for c in session["results"]["checks"] if path in c["nodeid"]}


def test_session_passes(nodelocal_session: dict) -> None:
    proc = nodelocal_session["proc"]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    facts = nodelocal_session["results"]["cluster"]
    assert facts["nodelocal"] == "daemonset kube-system/node-local-dns ready 2/2 on 169.254.20.10"
    assert NODECACHE_IMAGE in facts["loaded_images"]


def test_every_nodelocal_check_passes_on_every_node(nodelocal_session: dict) -> None:
    checks = _checks(nodelocal_session, "test_nodelocal.py")
    assert set(checks) == {"test_daemonset_on_every_node", "test_answers_on_every_node[udp]",
                           "test_answers_on_every_node[tcp]", "test_health_and_setup_errors", "test_caches",
                           "test_cluster_zone_forwards_over_tcp", "test_new_service_visible_within_denial_ttl"}
    assert {k: c["outcome"] for k, c in checks.items() if c["outcome"] != "passed"} == {}
    nodes = sorted(n["name"] for n in nodelocal_session["results"]["cluster"]["nodes"])
    assert len(nodes) == 2
    m = {k: {name: v["value"] for name, v in c["measurements"].items()} for k, c in checks.items()}
    assert m["test_daemonset_on_every_node"]["ready_on"] == nodes
    for node in nodes:
        for proto in ("udp", "tcp"):
            assert m[f"test_answers_on_every_node[{proto}]"][f"rcode[{node}]"] == "NOERROR"
        assert m["test_health_and_setup_errors"][f"health[{node}]"] == 200
        assert m["test_health_and_setup_errors"][f"setup_errors[{node}]"] == 0
        assert m["test_caches"][f"new_hits[{node}]"] >= 1
        visible = m["test_new_service_visible_within_denial_ttl"]
        # primed with an NXDOMAIN the cache keeps 5 s: held for seconds, and gone by then
        assert visible[f"negative_ttl_s[{node}]"] == 5
        assert (visible[f"last_miss_s[{node}]"] or 0) <= 5 and visible[f"visible_s[{node}]"] > 3


def test_records_pass_through_the_cache(nodelocal_session: dict) -> None:
    records = _checks(nodelocal_session, "test_records.py")
    assert records and {k: c["outcome"] for k, c in records.items() if c["outcome"] != "passed"} == {}
    extra = _checks(nodelocal_session, "nodelocal_checks.py")
    assert {k: c["outcome"] for k, c in extra.items()} == {
        "test_cluster_first_lookups_go_through_the_cache": "passed", "test_remove_leaves_nodes_as_they_were": "passed"}


def test_nothing_left_behind(nodelocal_session: dict) -> None:
    assert nodelocal_session["left"] == []
    kind = shutil.which("kind")
    assert kind
    clusters = subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, check=False).stdout.split()
    own = nodelocal_session["results"]["cluster"]["kind_cluster"]  # others may run beside this one
    assert own and own not in clusters, clusters
