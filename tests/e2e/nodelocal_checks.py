"""NodeLocal evidence beyond check 14, run inside the `--k8sdns-kind-nodelocal` session of
test_kind_nodelocal.py (not collected by the outer session: the name does not match test_*.py).
The last check removes the cache, so this file goes last on that session's command line."""

from __future__ import annotations

import subprocess

from pytest_k8sdns.dns.nodelocal import find_nodelocal
from pytest_k8sdns.dns.nodelocal_deploy import remove_nodelocal
from pytest_k8sdns.evidence import stats


def _requests(body: str, server: str) -> float:
    return sum(s.value for s in stats.parse_prometheus(body).get("coredns_dns_requests_total", [])
               if s.labels.get("server") == f"dns://{server}:53")


def test_cluster_first_lookups_go_through_the_cache(nodelocal, node_probe_pods, cluster_nameserver, k8sdns_record):
    """Pods keep the kube-dns ClusterIP as their nameserver; the cache on their node answers it."""
    assert nodelocal is not None
    for node, pod in sorted(node_probe_pods.items()):
        _, before = pod.http_get(f"http://{nodelocal.local_ip}:9253/metrics")
        result = pod.lookup(["kubernetes.default"], count=3, family="inet")
        _, after = pod.http_get(f"http://{nodelocal.local_ip}:9253/metrics")
        seen = _requests(after, cluster_nameserver) - _requests(before, cluster_nameserver)
        k8sdns_record(f"cache_requests_on_{cluster_nameserver}[{node}]", seen)
        assert all(a for a in result.addresses), result
        # 3 libc lookups of a name with one dot under ndots:5: at least 2 queries each
        assert seen >= 6, f"{node}: the cache there saw {seen:g} queries to {cluster_nameserver}"


def test_remove_leaves_nodes_as_they_were(k8sdns_run, node_probe_pods, cluster_nameserver, cluster_domain):
    cluster = k8sdns_run.cluster
    remove_nodelocal(cluster)
    assert find_nodelocal(cluster) is None
    assert "kube-dns-upstream" not in {s.metadata.name for s in cluster.core.list_namespaced_service("kube-system").items}
    assert "node-local-dns" not in {c.metadata.name for c in cluster.core.list_namespaced_config_map("kube-system").items}
    for node in k8sdns_run.kind.node_containers():
        state = subprocess.run(["docker", "exec", node, "sh", "-c", "ip -br link; iptables-save; ip6tables-save"],
                               capture_output=True, text=True, check=True).stdout
        assert "nodelocaldns" not in state and "node-cache" not in state, f"{node}:\n{state}"
    # cluster DNS still answers on its ClusterIP, now through kube-proxy to CoreDNS
    for node, pod in sorted(node_probe_pods.items()):
        reply = pod.query(cluster_nameserver, f"kubernetes.default.svc.{cluster_domain}", rdtype="A").replies[0]
        assert reply.rcode == "NOERROR" and reply.addresses(), f"{node}: {reply}"
