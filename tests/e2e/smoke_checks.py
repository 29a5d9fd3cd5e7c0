"""Substrate smoke checks, run inside a `pytest --k8sdns-kind` session on the plugin's fixtures.

Not collected by the outer session (the name does not match test_*.py); test_kind_session.py
passes this file to the inner session explicitly.
"""

from __future__ import annotations

import pytest

from pytest_k8sdns.kind import wait_deployment
from pytest_k8sdns.probes import LIBCS


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
