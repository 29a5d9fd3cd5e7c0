"""Checks 2-6 and 8: the records the Kubernetes DNS specification promises, from inside pods."""

from __future__ import annotations

import ipaddress

import pytest

from pytest_k8sdns.evidence.latency import ms
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict.expect import expect

pytestmark = pytest.mark.k8sdns_check(4)


@pytest.mark.k8sdns_check(2)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cluster_name_raw(probe_pods, coredns, cluster_domain, kubernetes_service_ip, k8sdns_record, tcp):
    """kubernetes.default.svc.<domain> A, asked of the cluster DNS Service over UDP and TCP."""
    name = f"kubernetes.default.svc.{cluster_domain}"
    svc = kubernetes_service_ip
    result = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="A", tcp=tcp, count=1)
    reply = result.replies[0]
    k8sdns_record("rcode", reply.rcode)
    k8sdns_record("latency_ms", ms(reply.latency_ns), "ms")
    expect(reply.rcode == "NOERROR" and svc in reply.addresses(), f"{name} A over {'TCP' if tcp else 'UDP'}",
           f"NOERROR with {svc}", f"{reply.rcode or reply.error} {list(reply.addresses())}",
           "check the kubernetes plugin of the cluster DNS and that it answers on TCP too")


@pytest.mark.k8sdns_check(2)
@pytest.mark.parametrize("libc", LIBCS)
def test_cluster_name_libc(probe_pods, cluster_domain, kubernetes_service_ip, k8sdns_record, libc):
    """The same name through each libc's getaddrinfo and the pod's own resolv.conf."""
    name = f"kubernetes.default.svc.{cluster_domain}"
    svc = kubernetes_service_ip
    result = probe_pods[libc].lookup([name], count=1, family="inet")
    got = result.addresses[0] or ()
    k8sdns_record("addresses", list(got))
    expect(svc in got, f"{libc} getaddrinfo({name})", svc, list(got) or result.errors,
           "check the pod's resolv.conf nameserver and the cluster DNS")


PARTIAL = ["kubernetes.default", "web", "web.{ns}", "web.{ns}.svc"]


@pytest.mark.k8sdns_check(3)
@pytest.mark.parametrize("libc", LIBCS)
@pytest.mark.parametrize("template", PARTIAL)
def test_partial_names(probe_pods, dns_objects, kubernetes_service_ip, k8sdns_record, libc, template):
    """Partial names resolve through the search list (ndots:5), in glibc and in musl pods."""
    name = template.format(ns=dns_objects.namespace)
    if name == "kubernetes.default":
        want = kubernetes_service_ip
    else:
        want = dns_objects.service_ip
    result = probe_pods[libc].lookup([name], count=1, family="inet")
    got = list(result.addresses[0] or ())
    k8sdns_record("addresses", got)
    expect(want in got, f"{libc} getaddrinfo({name}) through the search list", want, got or dict(result.errors),
           "the pod's search list or ndots is wrong, or this libc drops it (a musl search line over 255 bytes is ignored)")


def test_service_a(probe_pods, coredns, dns_objects, k8sdns_record):
    name = dns_objects.fqdn(dns_objects.service)
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="A").replies[0]
    got = sorted(reply.rdata("A"))
    expect(got == [dns_objects.service_ip], f"{name} A", [dns_objects.service_ip], got or reply.rcode, "the ClusterIP Service must have exactly its ClusterIP as A")


def test_service_srv(probe_pods, coredns, dns_objects, k8sdns_record):
    """A named port gives _<port>._<proto>.<svc>.<ns>.svc.<domain> SRV pointing at the Service."""
    svc = dns_objects.fqdn(dns_objects.service)
    name = f"_http._tcp.{svc}"
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="SRV").replies[0]
    k8sdns_record("srv", list(reply.rdata("SRV")))
    expect(any(r.port == 80 and r.target.rstrip(".") == svc for r in reply.srv()), f"{name} SRV",
           f"port 80 target {svc}.", list(reply.rdata("SRV")) or reply.rcode, "named ports must publish SRV records (kubernetes/dns specification 2.3.1)")


def test_service_ptr(probe_pods, coredns, dns_objects, k8sdns_record):
    svc = dns_objects.fqdn(dns_objects.service)
    rev = ipaddress.ip_address(dns_objects.service_ip).reverse_pointer
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, rev, rdtype="PTR").replies[0]
    ptr = [target.rstrip(".") for target in reply.rdata("PTR")]
    k8sdns_record("ptr", ptr)
    expect(svc in ptr, f"PTR {rev}", svc, ptr or reply.rcode,
           "the kubernetes plugin must serve in-addr.arpa for Service IPs")


def test_headless_a(probe_pods, coredns, dns_objects, k8sdns_record):
    """A headless Service has one A record per ready endpoint, none for its not-ready endpoint."""
    name = dns_objects.fqdn(dns_objects.headless)
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="A").replies[0]
    got = sorted(reply.rdata("A"))
    k8sdns_record("a_records", got)
    k8sdns_record("not_ready_endpoints", list(dns_objects.not_ready_ips))
    published = sorted(set(got) & set(dns_objects.not_ready_ips))
    expect(got == list(dns_objects.headless_ips), f"{name} A", f"the ready endpoints {list(dns_objects.headless_ips)}",
           f"{got or reply.rcode}" + (f", including not-ready {published}" if published else ""),
           "headless Services answer with exactly the ready endpoints' addresses (publishNotReadyAddresses is false)")


def test_dns_version(probe_pods, coredns, cluster_domain, k8sdns_record):
    name = f"dns-version.{cluster_domain}"
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="TXT").replies[0]
    txt = list(reply.rdata("TXT"))
    k8sdns_record("txt", txt)
    expect(bool(txt), f"{name} TXT", "the schema version, e.g. \"1.1.0\"", txt or reply.rcode,
           "the kubernetes plugin publishes dns-version; a missing record means another provider or zone")


@pytest.mark.k8sdns_check(5)
@pytest.mark.parametrize("libc", LIBCS)
def test_pod_hostname_subdomain(probe_pods, dns_objects, k8sdns_record, libc):
    """<hostname>.<subdomain>.<ns>.svc.<domain> names a pod behind a headless Service."""
    name = f"{dns_objects.hostname}.{dns_objects.fqdn(dns_objects.headless)}"
    result = probe_pods[libc].lookup([name], count=1, family="inet")
    got = list(result.addresses[0] or ())
    k8sdns_record("addresses", got)
    expect(got == [dns_objects.hostname_ip], f"{libc} getaddrinfo({name})", [dns_objects.hostname_ip],
           got or dict(result.errors), "pods with hostname and subdomain need a headless Service of that name")


@pytest.mark.k8sdns_check(6)
def test_external_name_cname(probe_pods, coredns, dns_objects, k8sdns_record):
    name = dns_objects.fqdn(dns_objects.external)
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="CNAME").replies[0]
    targets = [target.rstrip(".") for target in reply.rdata("CNAME")]
    k8sdns_record("cname", targets)
    expect(dns_objects.external_target in targets, f"{name} CNAME", dns_objects.external_target,
           targets or reply.rcode, "ExternalName Services must be a CNAME to spec.externalName")


@pytest.mark.k8sdns_check(8)
@pytest.mark.parametrize("libc", LIBCS)
def test_upstream_name(probe_pods, external_name, k8sdns_record, libc):
    """A name outside the cluster resolves through the cluster DNS's upstream."""
    name, want = external_name
    result = probe_pods[libc].lookup([name], count=1, family="inet")
    got = list(result.addresses[0] or ())
    k8sdns_record("addresses", got)
    expect(bool(got) and (want is None or want in got), f"{libc} getaddrinfo({name})", want or "an address",
           got or dict(result.errors), "check the cluster DNS's forward target and that the upstream answers")
