"""Checks 1, 7 and 12: resolv.conf shape, dnsConfig, and the queries each libc sends per lookup."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns import resolvconf, resolver
from pytest_k8sdns.dns.coredns import NODELOCAL_IP
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.verdict.rootcause import spoiled_message

#: short, dotted, dotted-but-divergent (exists only under a search domain), external, absolute
NAMES = ["web", "kubernetes.default", "web.{ns}.svc", "{external}", "kubernetes.default.svc.{domain}."]


@pytest.mark.k8sdns_check(1)
@pytest.mark.parametrize("libc", LIBCS)
def test_resolv_conf_shape(probe_pods, coredns, k8sdns_namespace, cluster_domain, k8sdns_record, libc):
    """A ClusterFirst pod gets the cluster DNS as nameserver, the namespace search list and ndots:5."""
    text = probe_pods[libc].info().resolv_conf or ""
    conf = resolvconf.parse_resolv_conf(text, libc)
    k8sdns_record("resolv_conf", text)
    allowed = [coredns.provider.cluster_ip, NODELOCAL_IP]
    expect(bool(conf.nameservers) and conf.nameservers[0] in allowed, f"{libc} pod nameserver", allowed,
           conf.nameservers, "kubelet --cluster-dns must name the cluster DNS Service (or NodeLocal's 169.254.20.10)")
    want = [f"{k8sdns_namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
    expect(list(conf.search[:3]) == want, f"{libc} pod search list as {libc} reads it", want, list(conf.search),
           "a search line of 255 bytes or more is ignored by musl: shorten the node's search domains")
    expect(conf.ndots == 5, f"{libc} pod ndots", 5, conf.ndots, "kubelet writes options ndots:5 for ClusterFirst pods")


@pytest.mark.k8sdns_check(7)
@pytest.mark.parametrize("ndots", [5, 2])
@pytest.mark.parametrize("libc", LIBCS)
def test_dns_config_applied(capture_pods, cluster_resolv_conf, k8sdns_record, libc, ndots):
    """dnsPolicy None with dnsConfig: the nameserver, search list and ndots given appear in the pod."""
    text = capture_pods[(libc, ndots)].info().resolv_conf or ""
    conf = resolvconf.parse_resolv_conf(text, libc)
    want_search = resolvconf.parse_resolv_conf(cluster_resolv_conf).search
    k8sdns_record("resolv_conf", text)
    expect(conf.nameservers == ["127.0.0.1"] and conf.search == want_search and conf.ndots == ndots,
           f"{libc} dnsConfig pod resolv.conf", f"nameserver 127.0.0.1, search {want_search}, ndots {ndots}",
           f"nameserver {conf.nameservers}, search {conf.search}, ndots {conf.ndots}",
           "kubelet must write dnsConfig for dnsPolicy None pods as given")


@pytest.mark.k8sdns_check(12)
@pytest.mark.parametrize("ndots", [5, 2])
@pytest.mark.parametrize("libc", LIBCS)
def test_queries_per_lookup(capture_pods, coredns, k8sdns_namespace, cluster_domain, external_name, k8sdns_record,
                            root_causes, libc, ndots):
    """The names each lookup sends, in order, match the libc's documented search rules."""
    pod = capture_pods[(libc, ndots)]
    names = [n.format(ns=k8sdns_namespace, domain=cluster_domain, external=external_name[0]) for n in NAMES]
    text = pod.info().resolv_conf or ""
    result = pod.capture([coredns.provider.cluster_ip], names)
    rows, wrong, spoiled = [], [], []
    for lookup in result.lookups:
        existing = {q.qname for q in lookup.queries if q.rcode == "NOERROR"}
        predicted = resolver.expected_queries(libc, text, lookup.name, existing)
        seen = list(lookup.qnames)
        types = sorted({q.qtype for q in lookup.queries})
        rows.append([lookup.name, len(lookup.queries), " ".join(seen), " ".join(predicted), "ok" if lookup.ok else lookup.error])
        lost = [q.qname for q in lookup.queries if q.rcode in (None, "SERVFAIL")]
        if seen != predicted and lost:
            # a query of the sequence got no answer (or SERVFAIL): the libc retried or moved on, so the
            # sequence says nothing about its search rules
            spoiled.append(f"{lookup.name}: {len(lost)} queries without an answer ({', '.join(lost[:3])})")
        elif seen != predicted:
            wrong.append(f"{lookup.name}: sent {seen}, rules say {predicted}")
        elif seen and types != ["A", "AAAA"]:
            wrong.append(f"{lookup.name}: query types {types}, expected A and AAAA per name")
    k8sdns_record.table(f"{libc} ndots:{ndots} queries per lookup",
                        ["name", "queries", "names sent", "names predicted", "outcome"], rows)
    for row in rows:
        k8sdns_record(f"queries[{row[0]}]", row[1], quantity=Q.QUERIES_PER_LOOKUP,
                      entity={"libc": libc, "ndots": ndots, "name": row[0]})
    k8sdns_record("divergences", resolver.divergences(text, names))
    what = f"{libc} queries per lookup under ndots:{ndots}"
    if spoiled and not wrong:
        pytest.fail(spoiled_message(what, f"on {pod.node} ({'; '.join(spoiled)})", "unanswered queries", root_causes()),
                    pytrace=False)
    expect(not wrong, what, "the libc's search rules",
           "; ".join(wrong) + (f"; spoiled by unanswered queries: {'; '.join(spoiled)}" if spoiled else ""),
           f"this {libc} does not follow its documented search-list behaviour")
