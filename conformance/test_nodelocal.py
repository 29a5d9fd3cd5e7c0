"""Check 14: a NodeLocal DNSCache that really answers, on every node, and caches."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns import corefile, nodelocal
from pytest_k8sdns.evidence import nodelocal as evidence
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.verdict.expect import expect

pytestmark = pytest.mark.k8sdns_check(14)


@pytest.fixture(scope="module")
def cache(nodelocal, k8sdns_settings):
    """The NodeLocal inspector; skips the module when there is none (unless it is required)."""
    if nodelocal is None:
        if k8sdns_settings.require_nodelocal:
            pytest.fail("no NodeLocal DNSCache: no DaemonSet labelled k8s-app=node-local-dns in kube-system, "
                        "and --k8sdns-require-nodelocal was given", pytrace=False)
        pytest.skip("no NodeLocal DNSCache deployed (no DaemonSet k8s-app=node-local-dns in kube-system); "
                    "pass --k8sdns-require-nodelocal to make this a failure")
    return nodelocal


def test_daemonset_on_every_node(cache, k8sdns_run, k8sdns_record):
    nodes = {n.name for n in k8sdns_run.nodes}
    ready = {p.node for p in cache.pods() if p.ready}
    k8sdns_record("nodes", sorted(nodes))
    k8sdns_record("ready_on", sorted(ready))
    expect(nodes <= ready, "NodeLocal pods Ready per node", sorted(nodes), sorted(ready),
           f"nodes without a ready cache: {sorted(nodes - ready)}; read the node-local-dns pod there")


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_answers_on_every_node(cache, node_probe_pods, cluster_domain, k8sdns_record, tcp):
    name = f"kubernetes.default.svc.{cluster_domain}"
    answers = [evidence.answer(pod, cache.local_ip, name, tcp=tcp) for _, pod in sorted(node_probe_pods.items())]
    for a in answers:
        k8sdns_record.add(*a.measurements())
    k8sdns_record.table(f"{cache.local_ip}:53 over {'TCP' if tcp else 'UDP'}", ["node", "rcode", "ms"],
                        [[a.node, a.rcode, a.latency_ms] for a in answers])
    bad = [f"{a.node}: {a.rcode}" for a in answers if not a.ok]
    expect(not bad, f"NodeLocal answers at {cache.local_ip}:53/{'tcp' if tcp else 'udp'}", "NOERROR on every node",
           "; ".join(bad), "the cache on those nodes is down or its nodelocaldns interface/iptables rules are missing")


def test_health_and_setup_errors(cache, node_probe_pods, k8sdns_record):
    seen = [evidence.health(pod, cache.local_ip) for _, pod in sorted(node_probe_pods.items())]
    for h in seen:
        k8sdns_record.add(*h.measurements())
    k8sdns_record.table("NodeLocal health", ["node", "/health", "setup errors"],
                        [[h.node, h.health, h.setup_errors] for h in seen])
    bad = [f"{h.node}: health {h.health}, setup errors {h.setup_errors}" for h in seen if not h.ok]
    expect(not bad, "NodeLocal /health and coredns_nodecache_setup_errors_total", "200 and 0 on every node",
           "; ".join(bad), "node-cache could not set up its interface or iptables rules: read its log")


def test_caches(cache, node_probe_pods, cluster_domain, k8sdns_record):
    """A repeated query raises coredns_cache_hits_total on every node's cache."""
    name = f"kubernetes.default.svc.{cluster_domain}"
    seen = [evidence.cache_hits(pod, cache.local_ip, name) for _, pod in sorted(node_probe_pods.items())]
    for c in seen:
        k8sdns_record.add(*c.measurements())
    k8sdns_record.table("cache hits after 3 identical queries", ["node", "new hits"],
                        [[c.node, c.unreadable if c.new_hits is None else c.new_hits] for c in seen])
    bad = [f"{c.node}: cache metrics {c.unreadable}" if c.new_hits is None else f"{c.node}: {c.new_hits:g} new cache hits"
           for c in seen if c.new_hits is None or c.new_hits < 1]
    expect(not bad, "NodeLocal cache hits", ">= 1 per node", "; ".join(bad), "the cache plugin is missing from its Corefile")


def test_cluster_zone_forwards_over_tcp(cache, cluster_domain, k8sdns_record):
    text = cache.corefile()
    if text is None:
        pytest.skip("the NodeLocal Corefile ConfigMap was not found")
    findings = [f for f in corefile.analyse(text, cluster_domain=cluster_domain) if f.code == "nodelocal-no-force-tcp"]
    k8sdns_record("findings", [f.message for f in findings])
    expect(not [f for f in findings if f.severity == "error"], "NodeLocal cluster-zone forward",
           "force_tcp", "; ".join(f.message for f in findings), "add force_tcp to the cluster zone's forward block")


def test_new_service_visible_within_denial_ttl(cache, node_probe_pods, k8sdns_cluster, k8sdns_namespace,
                                               cluster_domain, k8sdns_record):
    """A Service asked for just before it exists (each node's cache then holds an NXDOMAIN) answers
    at the cache on every node within the denial TTL (5 s in nodelocaldns.yaml) of its creation."""
    bound = 5
    k8sdns_record("denial_ttl_s", nodelocal.denial_ttl(cache.corefile(), cluster_domain), "s")
    fqdn, seen = nodelocal.time_new_service(k8sdns_cluster, k8sdns_namespace, node_probe_pods, cache.local_ip,
                                            cluster_domain, give_up_s=6 * bound)
    k8sdns_record.table(f"{fqdn} at {cache.local_ip}:53, asked before and after its creation",
                        ["node", "before", "negative TTL", "last miss (s)", "visible by (s)", "since the NXDOMAIN (s)",
                         "polls"],
                        [[v.node, v.primed, v.negative_ttl, v.last_miss, v.seconds, v.since_prime, v.polls]
                         for v in seen])
    for v in seen:
        node = {"node": v.node}
        k8sdns_record(f"visible_s[{v.node}]", v.seconds, "s", quantity=Q.NODELOCAL_NEW_SERVICE_VISIBLE, entity=node)
        k8sdns_record(f"last_miss_s[{v.node}]", v.last_miss, "s", quantity=Q.NODELOCAL_NEW_SERVICE_LAST_MISS, entity=node)
        k8sdns_record(f"negative_ttl_s[{v.node}]", v.negative_ttl, "s", quantity=Q.NODELOCAL_NEGATIVE_TTL, entity=node)
    # a poll is an exec into the pod: the query went out somewhere inside it, so only a miss that
    # began after the bound proves the Service was still invisible then
    late = [f"{v.node}: {'not within 30 s' if v.seconds is None else f'still NXDOMAIN at {v.last_miss:.1f} s'} "
            f"(before: {v.primed}, negative TTL {v.negative_ttl}, last {v.last})"
            for v in seen if v.seconds is None or (v.last_miss or 0) > bound]
    expect(not late, "new Service visible at NodeLocal", f"<= {bound} s after its creation on every node (the denial TTL)",
           "; ".join(late), "lower the cluster zone's `denial` TTL in the NodeLocal Corefile; CoreDNS's own `cache` "
           "(unless it has `disable denial <domain>`) and kubernetes `ttl` can hold the NXDOMAIN longer")
