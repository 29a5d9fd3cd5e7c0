"""End to end: `pytest --k8sdns-kind --k8sdns-kind-nodelocal` (conftest.nodelocal_session) deploys
NodeLocal DNSCache on a 2-node kind cluster, every check 14 passes on every node, the record checks
pass through the cache, removing it leaves the nodes clean, and no container is left behind; the
substrate smoke checks (smoke_checks.py) pass in the same session."""

from __future__ import annotations

import shutil
import subprocess

from pytest_k8sdns.config import DEFAULT_NODELOCAL_IMAGE


def _checks(session: dict, path: str) -> dict[str, dict]:
    assert session["results"], session["proc"].stdout[-6000:] + session["proc"].stderr[-3000:]
    return {c["nodeid"].split("::", 1)[-1]: c for c in session["results"]["checks"] if path in c["nodeid"]}


def test_session_passes(nodelocal_session: dict) -> None:
    proc = nodelocal_session["proc"]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    facts = nodelocal_session["results"]["cluster"]
    assert facts["nodelocal"] == "daemonset kube-system/node-local-dns ready 2/2 on 169.254.20.10"
    assert DEFAULT_NODELOCAL_IMAGE in facts["loaded_images"]


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


def test_smoke_checks_pass(nodelocal_session: dict) -> None:
    """smoke_checks.py in the same session: the plugin's fixtures, its errors, and the monitor gates."""
    smoke = _checks(nodelocal_session, "smoke_checks.py")
    assert len(smoke) >= 10 and {k: c["outcome"] for k, c in smoke.items() if c["outcome"] != "passed"} == {}
    for libc in ("glibc", "musl"):
        assert smoke[f"test_probe_libc_is_its_own[{libc}]"]["outcome"] == "passed"
        assert smoke[f"test_new_service_resolves_to_its_cluster_ip[{libc}]"]["outcome"] == "passed"
    timeline = smoke["test_monitor_fixture_sync_gate"]["timeline"]
    assert timeline["rows"] and [m["label"] for m in timeline["marks"]] == ["change start", "change end"]
    assert smoke["test_monitor_fixture_async_gate"]["outcome"] == "passed"


def test_nothing_left_behind(nodelocal_session: dict) -> None:
    assert nodelocal_session["left"] == []
    kind = shutil.which("kind")
    assert kind
    clusters = subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, check=False).stdout.split()
    own = nodelocal_session["results"]["cluster"]["kind_cluster"]  # others may run beside this one
    assert own and own not in clusters, clusters
