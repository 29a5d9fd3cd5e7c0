"""Substrate smoke checks, run inside a `pytest --k8sdns-kind` session on the plugin's fixtures.

Not collected by the outer session (the name does not match test_*.py); test_kind_session.py
passes this file to the inner session explicitly.
"""

from __future__ import annotations

import pytest

from pytest_k8sdns.kube.rollout import wait_deployment
from pytest_k8sdns.probe.pods import LIBCS


def test_two_nodes_ready_and_coredns_ready(k8sdns_cluster, coredns):
    nodes = k8sdns_cluster.nodes()
    assert len(nodes) == 2 and all(n.ready for n in nodes), nodes
    wait_deployment(k8sdns_cluster, "kube-system", "coredns", 60)
    assert coredns.pods() and all(p.ready for p in coredns.pods())


@pytest.mark.parametrize("libc", LIBCS)
def test_probe_libc_is_its_own(probe_pods, libc):
    """Each probe pod runs python3 on the libc it claims, so getaddrinfo goes through that libc."""
    assert probe_pods[libc].info().libc == libc


@pytest.mark.parametrize("libc", LIBCS)
def test_kubernetes_default_resolves(probe_pods, k8sdns_cluster, libc):
    want = k8sdns_cluster.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    result = probe_pods[libc].lookup(["kubernetes.default"], count=1, family="inet")
    assert want in (result.addresses[0] or ()), result


@pytest.mark.parametrize("libc", LIBCS)
def test_new_service_resolves_to_its_cluster_ip(probe_pods, k8sdns_cluster, k8sdns_namespace, libc):
    name = f"smoke-{libc}"
    svc = k8sdns_cluster.core.create_namespaced_service(k8sdns_namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
    result = probe_pods[libc].lookup([name], count=1, family="inet")
    assert result.addresses[0] == (svc.spec.cluster_ip,), result


# ---- the one-line errors, on the real cluster -------------------------------------------------

def test_unpullable_image_names_image_and_option(k8sdns_run):
    from pytest_k8sdns.errors import PodError
    from pytest_k8sdns.probe import pods as probes
    from pytest_k8sdns.probe.pods import ProbeSpec

    image = "k8sdns/no-such-image:0"
    spec = ProbeSpec(key="badimage", libc="musl", image=image)
    with pytest.raises(PodError) as err:
        probes.start(k8sdns_run.cluster, k8sdns_run.namespace, k8sdns_run.run_id, [spec], timeout_s=120,
                     image_options={image: "--k8sdns-musl-image"})
    message = str(err.value)
    assert f"cannot pull image {image}" in message and "--k8sdns-musl-image" in message and "\n" not in message


def test_timeout_says_what_it_saw(k8sdns_run):
    from pytest_k8sdns.errors import WaitTimeout
    from pytest_k8sdns.kube import pods
    from pytest_k8sdns.probe import pods as probes
    from pytest_k8sdns.probe.pods import ProbeSpec

    spec = ProbeSpec(key="nowhere", libc="glibc", image=k8sdns_run.settings.glibc_image)
    doc = probes.manifest(spec, k8sdns_run.run_id)
    doc["spec"]["nodeSelector"] = {"k8sdns.io/no-such-node": "true"}
    k8sdns_run.cluster.core.create_namespaced_pod(k8sdns_run.namespace, doc)
    with pytest.raises(WaitTimeout) as err:
        pods.wait_ready(k8sdns_run.cluster, k8sdns_run.namespace, [spec.pod_name], 8, {})
    message = str(err.value)
    assert "not Ready after 8 s: phase Pending" in message and "FailedScheduling" in message, message


def test_forbidden_names_verb_resource_namespace(k8sdns_run):
    """An identity with no rights gets a Forbidden line naming what it tried."""
    from kubernetes import client

    from pytest_k8sdns.errors import ClusterError
    from pytest_k8sdns.kube.client import Cluster

    ns = k8sdns_run.namespace
    core = k8sdns_run.cluster.core
    core.create_namespaced_service_account(ns, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", ns, {"spec": {"expirationSeconds": 600}}).status.token
    cfg = client.Configuration()
    cfg.host = k8sdns_run.cluster.server
    cfg.ssl_ca_cert = k8sdns_run.cluster.api_client.configuration.ssl_ca_cert  # no client certificate
    cfg.api_key = {"authorization": f"Bearer {token}"}
    weak = Cluster(client.ApiClient(cfg), "nobody", "", created=False)
    try:
        with pytest.raises(ClusterError) as err:
            weak.call("list", "pods", "kube-system", weak.core.list_namespaced_pod, "kube-system")
    finally:
        weak.close()
    assert str(err.value).startswith(f"Forbidden: cannot list pods in namespace kube-system on {k8sdns_run.cluster.server}")


def test_keep_kubeconfig_credentials_for_the_leak_check(k8sdns_run):
    """Hands the kind kubeconfig's client key and certificate to test_no_secrets.py (the cluster is
    deleted at the end), which looks for them in everything this session wrote."""
    import json

    import yaml

    doc = yaml.safe_load(k8sdns_run.kind.kubeconfig.read_text())
    user = doc["users"][0]["user"]
    secrets = {k: user[k] for k in ("client-key-data", "client-certificate-data")}
    with open("kubeconfig-secrets.json", "w", encoding="utf-8") as f:  # the session's cwd: its output folder
        json.dump(secrets, f)


def test_monitor_fixture_sync_gate(k8sdns_monitor):
    """A gate written in pytest: the monitor streams from every chosen node while the block runs;
    its verdict judges the block, and its timeline goes to the results file."""
    import time

    with k8sdns_monitor() as m:  # warm here: the monitor marks the change's start itself
        time.sleep(3)  # the user's change; nothing changes here, so nothing may be lost
        m.mark("change end")
    verdict = m.verdict()
    assert verdict.ok, verdict.message
    assert verdict.figures["lookups"] >= 20 and verdict.figures["socket_queries"] >= 10, verdict.figures
    assert {s.client for s in m.timeline.streams} == {"libc", "socket"}


def test_monitor_fixture_async_gate(k8sdns_monitor):
    """The same monitor under `async with`, in the caller's own event loop."""
    import asyncio

    async def gate():
        async with k8sdns_monitor() as m:
            await asyncio.sleep(2)
        return m

    m = asyncio.run(gate())
    assert m.verdict().ok, m.verdict().message
    assert all(s.ok for s in m.timeline.samples if s.stream.client == "libc")
