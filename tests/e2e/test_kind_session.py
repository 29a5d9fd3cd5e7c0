"""End to end: the README's main command `pytest --k8sdns-kind`, verbatim from a directory outside
the checkout, runs the packaged suite on a 2-node kind cluster built from the substrate's images
(found without an option), with both libc probes, and leaves no container behind. The session itself
is the `kind_session` fixture of conftest.py, which test_kind_reports.py shares."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_k8sdns.kube.kind import docker_leftovers, kind_env_ok

NODE_IMAGE = os.environ.get("K8SDNS_NODE_IMAGE", "k8sdns/kind-node:latest")
GLIBC_IMAGE = os.environ.get("K8SDNS_GLIBC_IMAGE", "k8sdns/probe-glibc:py3.11-bookworm")
MUSL_IMAGE = os.environ.get("K8SDNS_MUSL_IMAGE", "k8sdns/probe-musl:py3.11-musl")
HERE = Path(__file__).parent


def _need_kind_and_images(*more: str) -> None:
    reason = kind_env_ok()
    if reason:
        pytest.skip(f"{reason}; run substrate/build (see README)")
    for image in (NODE_IMAGE, GLIBC_IMAGE, MUSL_IMAGE, *more):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
            pytest.skip(f"image {image} is not built; run substrate/build (see README)")


def test_whole_suite_passes_on_healthy_cluster(kind_session: dict) -> None:
    proc = kind_session["proc"]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    checks = kind_session["results"]["checks"]
    outcomes = {c["nodeid"].split("::", 1)[-1]: c["outcome"] for c in checks}
    failed = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not failed
    skipped = {c["nodeid"] for c in checks if c["outcome"] == "skipped"}
    # only NodeLocal skips on the healthy cluster (none deployed): its checks, and check 16's rollout of it;
    # the dual-stack checks, on this single-stack cluster (tests/e2e/test_kind_dualstack.py runs them);
    # and the opt-in capacity check (tests/e2e/test_negative_controls.py runs it)
    assert skipped and all("test_nodelocal.py" in n or n.endswith("[nodelocal-rollout]") or "test_dualstack.py" in n
                           or "test_capacity.py" in n for n in skipped), skipped
    assert all("no NodeLocal DNSCache deployed" in c["message"] or "no NodeLocal DNSCache DaemonSet" in c["message"]
               or "single-stack cluster: Service " in c["message"] or "pass --k8sdns-capacity" in c["message"]
               for c in checks if c["outcome"] == "skipped")
    for libc in ("glibc", "musl"):
        assert outcomes[f"test_lookup_latency[{libc}]"] == "passed"
    # the packaged suite, found without a path, in a directory outside the checkout
    assert {c["nodeid"].split("::", 1)[0] for c in checks} >= {"test_latency.py", "test_records.py"}, checks[:3]


def test_main_command_chose_the_substrate_images(kind_session: dict) -> None:
    """No image option was given: the plugin found substrate/build's images in the local Docker, ran
    them, and said so in the results and the report's environment table (the terminal header says it
    too, but this session runs with -q, which hides pytest's header)."""
    doc = kind_session["results"]
    settings = doc["settings"]
    assert (settings["kind_image"], settings["glibc_image"], settings["musl_image"]) == (NODE_IMAGE, GLIBC_IMAGE, MUSL_IMAGE)
    why = {role: entry["why"] for role, entry in doc["cluster"]["images"].items()}
    assert why == dict.fromkeys(("node", "glibc", "musl"), "built here by substrate/build, found in the local Docker")
    report = html.unescape((kind_session["out"] / "report.html").read_text())
    assert f'"k8sdns images": "node={NODE_IMAGE} (built here by substrate/build, found in the local Docker), ' in report


#: check 16's built-in changes that run on the kind cluster the session creates (no NodeLocal there)
CHANGES = ("coredns-rollout", "coredns-pod-delete", "node-drain", "kube-proxy-restart")


def test_dns_holds_during_every_built_in_change(kind_session: dict) -> None:
    """--k8sdns-disruptive on a cluster the plugin created: the rollouts, a node drain and a
    kube-proxy restart, each watched from every chosen node, lose no lookup within the bounds."""
    checks = [c for c in kind_session["results"]["checks"] if c["name"] == "test_dns_during_change"]
    by_change = {c["params"]["k8sdns_change"]: c for c in checks}
    assert set(by_change) == {*CHANGES, "nodelocal-rollout"}, sorted(by_change)
    assert by_change["nodelocal-rollout"]["outcome"] == "skipped"
    for name in CHANGES:
        check = by_change[name]
        m = check["measurements"]
        print(f"{name}: {m['lookups']['value']} lookups, {m['failed']['value']} failed, longest gap "
              f"{m['longest_gap_s']['value']} s, p99 {m['p99_ms']['value']} ms, socket {m['socket_failed']['value']} "
              f"of {m['socket_queries']['value']} (recovery {m['socket_recovery_s']['value']} s), change "
              f"{m['change_s']['value']} s")
        assert check["outcome"] == "passed", (name, check.get("message", ""))
        timeline = check["timeline"]
        assert timeline["change"]["name"] == name and timeline["change"]["exit_code"] == 0, timeline["change"]
        assert timeline["rows"] and [m["label"] for m in timeline["marks"]] == ["change start", "change end"]
    drained = by_change["node-drain"]["timeline"]["change"]["output"]
    assert re.fullmatch(r"drained \S+ \(evicted coredns-\S+.*\); CoreDNS whole again after [\d.]+ s; uncordoned",
                        drained), drained
    assert "healthy on every node" in by_change["kube-proxy-restart"]["timeline"]["change"]["output"]


def test_results_hold_measurements(kind_session: dict) -> None:
    doc = kind_session["results"]
    assert doc["schema_version"] == 1
    assert doc["cluster"]["server_version"].startswith("v1.34")
    assert len(doc["cluster"]["nodes"]) == 2
    latency = next(c for c in doc["checks"] if c["nodeid"].endswith("test_lookup_latency[musl]"))
    assert latency["measurements"]["lookups"]["value"] >= 300
    assert latency["measurements"]["p99_ms"]["value"] > 0


def test_nothing_left_behind(kind_session: dict) -> None:
    # only this session's cluster: other sessions on the machine may run kind clusters of their own
    names = re.findall(r"k8sdns: creating kind cluster (\S+)", kind_session["proc"].stdout)
    assert len(names) == 1, kind_session["proc"].stdout[:2000]
    assert docker_leftovers(names[0]) == []
    assert not [c for c in kind_session["left"] if c.startswith(f"{names[0]}-")], kind_session["left"]
    kind = shutil.which("kind")
    assert kind
    clusters = subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, check=False).stdout.split()
    assert names[0] not in clusters, clusters
