"""The loop analysis with every address of the cluster DNS Service: a dual-stack kube-dns has two
ClusterIPs (spec.clusterIPs), and a forward to either one comes back to these CoreDNS pods. Also the
address family a libc lookup of the kubernetes Service asks for (IPv6-only clusters)."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns.corefile import Finding, analyse
from pytest_k8sdns.dns.corefile.loops import dns_addresses
from pytest_k8sdns.dns.dualstack import lookup_family

DUAL = ("10.96.0.10", "fd00:10:96::a")


def errors(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.server_block) for f in findings if f.severity == "error"]


def corefile(target: str) -> str:
    return (".:53 {\n  kubernetes cluster.local in-addr.arpa ip6.arpa\n  forward . 192.0.2.53\n  cache 30\n  loop\n}\n"
            f"corp.example:53 {{\n  forward . {target}\n  cache 30\n  loop\n}}\n")


def test_a_forward_to_the_ipv6_kube_dns_address_is_the_loop() -> None:
    found = analyse(corefile("fd00:10:96::a"), cluster_dns_ip=DUAL)
    assert errors(found) == [("loopback-upstream", "corp.example:53")]
    assert "fd00:10:96::a" in next(f.message for f in found if f.code == "loopback-upstream")


def test_a_forward_to_the_ipv4_kube_dns_address_is_the_loop_too() -> None:
    assert errors(analyse(corefile("10.96.0.10"), cluster_dns_ip=DUAL)) == [("loopback-upstream", "corp.example:53")]


def test_with_only_the_ipv4_address_known_the_ipv6_forward_is_not_seen() -> None:
    # what the analysis said before it took every ClusterIP: the IPv6 loop went unnoticed
    assert errors(analyse(corefile("[fd00:10:96:0::a]:53"), cluster_dns_ip="10.96.0.10")) == []
    assert errors(analyse(corefile("[fd00:10:96:0::a]:53"), cluster_dns_ip=DUAL)) == [
        ("loopback-upstream", "corp.example:53")]


def test_a_stub_domain_elsewhere_is_no_loop_with_both_addresses() -> None:
    assert errors(analyse(corefile("10.150.0.1"), cluster_dns_ip=DUAL)) == []


@pytest.mark.parametrize(("given", "want"), [
    (None, ()), ("10.96.0.10", ("10.96.0.10",)), (DUAL, DUAL), (list(DUAL), DUAL), ((), ()),
])
def test_dns_addresses(given: object, want: tuple[str, ...]) -> None:
    assert dns_addresses(given) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(("address", "family"), [
    ("10.96.0.1", "inet"), ("fd00:10:96::1", "inet6"), ("2001:db8::1", "inet6"),
])
def test_lookup_family_follows_the_kubernetes_service_address(address: str, family: str) -> None:
    assert lookup_family(address) == family
