"""Dual-stack records and transport: a Service's AAAA and ip6.arpa PTR, and both libcs resolving
through an IPv6 nameserver. On a single-stack cluster (no Service gets an IPv6 ClusterIP) these
checks skip with that reason: the cluster has no IPv6 to check."""

from __future__ import annotations

import ipaddress

import pytest

from pytest_k8sdns.dns.dualstack import is_ipv6, same_addresses
from pytest_k8sdns.probe.fleet import ONE_SHOT_QPS
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict import answers
from pytest_k8sdns.verdict.expect import expect

#: check 19 (this suite's own): the certification profile lets it skip only on a single-stack cluster
pytestmark = pytest.mark.k8sdns_check(19)


def _ipv6(dual_stack) -> str:
    """The Service's IPv6 ClusterIP; skips the check on a single-stack cluster."""
    if dual_stack.single_stack:
        pytest.skip(dual_stack.single_stack)
    return str(dual_stack.ipv6)


def test_service_aaaa_raw(probe_pods, coredns, dual_stack, k8sdns_record, root_causes):
    """A dual-stack Service's AAAA is exactly its IPv6 ClusterIP, and its A its IPv4 one."""
    v6 = _ipv6(dual_stack)
    name = dual_stack.fqdn
    pod = probe_pods["glibc"]
    reply = pod.query(coredns.provider.cluster_ip, name, rdtype="AAAA").replies[0]
    got = sorted(reply.rdata("AAAA"))
    k8sdns_record("cluster_ips", list(dual_stack.cluster_ips))
    k8sdns_record("aaaa", got)
    answers.reply(reply, pod.node, f"{name} AAAA", same_addresses(got, [v6]), [v6], got or reply.rcode,
                  "a dual-stack Service must have exactly its IPv6 ClusterIP as AAAA (check the kubernetes plugin, "
                  "and any template or rewrite that drops AAAA)", root_causes)
    if dual_stack.ipv4 is not None:
        reply = pod.query(coredns.provider.cluster_ip, name, rdtype="A").replies[0]
        got = sorted(reply.rdata("A"))
        answers.reply(reply, pod.node, f"{name} A", got == [dual_stack.ipv4], [dual_stack.ipv4], got or reply.rcode,
                      "a dual-stack Service must keep its IPv4 ClusterIP as A", root_causes)


@pytest.mark.parametrize("libc", LIBCS)
def test_service_aaaa_libc(probe_fleet, dual_stack, k8sdns_record, root_causes, libc):
    """getaddrinfo(AF_INET6) of the dual-stack Service through each libc, on every node."""
    v6 = _ipv6(dual_stack)
    name = dual_stack.fqdn
    runs = probe_fleet.each(libc, lambda pod: pod.lookup([name], count=1, family="inet6"), qps_per_probe=ONE_SHOT_QPS)
    got = answers.lookups_everywhere(runs, libc, f"{libc} getaddrinfo({name}, AF_INET6)", [v6],
                                     lambda addrs: same_addresses(addrs, [v6]), "the cluster DNS must answer AAAA "
                                     "with the Service's IPv6 ClusterIP", root_causes, k8sdns_record)
    k8sdns_record("addresses", sorted({a for addrs in got.values() for a in addrs}))


def test_service_ptr_ipv6(probe_pods, coredns, dual_stack, k8sdns_record, root_causes):
    """The ip6.arpa name of the Service's IPv6 ClusterIP points back at the Service."""
    v6 = _ipv6(dual_stack)
    rev = ipaddress.ip_address(v6).reverse_pointer
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, rev, rdtype="PTR").replies[0]
    ptr = [target.rstrip(".") for target in reply.rdata("PTR")]
    k8sdns_record("ptr", ptr)
    answers.reply(reply, probe_pods["glibc"].node, f"PTR {rev}", dual_stack.fqdn in ptr, dual_stack.fqdn,
                  ptr or reply.rcode, "the kubernetes plugin must serve ip6.arpa for IPv6 Service IPs", root_causes)


def test_cluster_name_over_ipv6_raw(probe_pods, dual_stack, cluster_domain, kubernetes_service_ip, k8sdns_record):
    """kubernetes.default.svc.<domain> A asked over IPv6 of every IPv6 address of the cluster DNS:
    its Service's IPv6 ClusterIP, if it has one, and each of its pods'."""
    _ipv6(dual_stack)
    name = f"kubernetes.default.svc.{cluster_domain}"
    rdtype = "AAAA" if is_ipv6(kubernetes_service_ip) else "A"  # an IPv6-only cluster's is IPv6
    pod = probe_pods["glibc"]
    rows, bad = [], []
    for address, what in dual_stack.dns_ipv6:
        reply = pod.query(address, name, rdtype=rdtype, count=1).replies[0]
        got = list(reply.rdata(rdtype))
        rows.append([address, what, reply.rcode or reply.error, " ".join(got)])
        if reply.rcode != "NOERROR" or kubernetes_service_ip not in got:
            bad.append(f"{address} ({what}): {reply.rcode or reply.error} {got}")
    k8sdns_record.table(f"{rdtype} over IPv6 per cluster DNS address", ["address", "what", "rcode", "answer"], rows)
    expect(bool(dual_stack.dns_ipv6), f"IPv6 addresses of the cluster DNS {dual_stack.dns_service}",
           "its Service's IPv6 ClusterIP or its pods' IPv6 addresses", "none",
           "on a dual-stack cluster the DNS pods need an IPv6 address (and the Service ipFamilyPolicy PreferDualStack)")
    expect(not bad, f"{name} {rdtype} over IPv6 from {pod.node}", kubernetes_service_ip, "; ".join(bad),
           "the cluster DNS must answer on its IPv6 addresses: check the pods' IPv6 routes, ip6tables and `bind`")


@pytest.mark.parametrize("libc", LIBCS)
def test_cluster_name_over_ipv6_libc(ipv6_dns_pods, dual_stack, cluster_domain, kubernetes_service_ip, k8sdns_record,
                                     libc):
    """kubernetes.default.svc.<domain>. through each libc, with only the cluster DNS's IPv6 address
    as nameserver in the pod's resolv.conf (a rooted name: one query, so a lost one costs one
    timeout, not one per search domain)."""
    server = dual_stack.nameserver6
    expect(server is not None, f"IPv6 addresses of the cluster DNS {dual_stack.dns_service}",
           "its Service's IPv6 ClusterIP or its pods' IPv6 addresses", "none",
           "on a dual-stack cluster the DNS pods need an IPv6 address (and the Service ipFamilyPolicy PreferDualStack)")
    pod = ipv6_dns_pods[libc]
    conf = pod.info().resolv_conf or ""
    k8sdns_record("nameserver", str(server))
    k8sdns_record("resolv_conf", conf)
    name = f"kubernetes.default.svc.{cluster_domain}."
    result = pod.lookup([name], count=1, family="inet6" if is_ipv6(kubernetes_service_ip) else "inet")
    got = list(result.addresses[0] or ())
    expect(kubernetes_service_ip in got, f"{libc} getaddrinfo({name}) through nameserver {server} on "
           f"{pod.node}", kubernetes_service_ip, got or dict(result.errors),
           "both libcs must resolve through an IPv6 nameserver: check the IPv6 path from the pods to the cluster DNS")
