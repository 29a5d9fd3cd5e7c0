"""IPv6 in the loop analysis (a node's `nameserver ::1` is a loopback upstream however it is spelt)
and the dual-stack objects' pure parts (which address is the IPv6 one, the IPv6 resolver pods)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_k8sdns.dns.corefile import Finding, analyse
from pytest_k8sdns.dns.dualstack import DualStack, is_ipv6, same_addresses
from pytest_k8sdns.dns.resolvconf import is_loopback, same_ip

KUBEADM = (Path(__file__).resolve().parents[2] / "fixtures" / "corefiles" / "kubeadm.Corefile").read_text()


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in findings]


@pytest.mark.parametrize("address", [
    "::1", "0:0:0:0:0:0:0:1", "0000::0001", "::1%lo", "::ffff:127.0.0.1", "::ffff:127.0.0.53", "::ffff:7f00:35",
    "::", "0.0.0.0", "::ffff:0.0.0.0",
])
def test_ipv6_and_unspecified_loopbacks(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", [
    "fd00:10:96::a", "2001:db8::1", "fe80::1%eth0", "::ffff:10.96.0.10", "::127.0.0.1", "::2", "ip6-localhost",
])
def test_ipv6_addresses_that_are_not_loopback(address: str) -> None:
    # ::127.0.0.1 is an (obsolete) IPv4-compatible address: Linux routes it as any IPv6 address
    assert not is_loopback(address)


@pytest.mark.parametrize("node", [
    "nameserver ::1\n", "nameserver 0:0:0:0:0:0:0:1\n", "nameserver ::ffff:127.0.0.53\n",
    "nameserver ::1%lo\nnameserver 10.0.0.2\n", "nameserver ::\n", "nameserver 10.0.0.2\nnameserver ::1\n",
])
def test_node_ipv6_loopback_nameserver_is_a_loop_through_resolv_conf(node: str) -> None:
    findings = analyse(KUBEADM, node_resolv_conf=node)
    assert codes(findings) == [("loopback-upstream", "error"), ("forward-resolv-conf", "error")]
    assert "loopback nameserver" in findings[0].message


@pytest.mark.parametrize("node", ["nameserver fd00::53\n", "nameserver 2001:db8::53\nnameserver 10.0.0.2\n"])
def test_node_ipv6_upstream_is_no_loop(node: str) -> None:
    assert codes(analyse(KUBEADM, node_resolv_conf=node)) == [("forward-resolv-conf", "warning")]


@pytest.mark.parametrize("target", ["[::1]:53", "dns://[::1]:53", "::ffff:127.0.0.1", "[0:0::1]:53", "ip6-localhost",
                                    "[::]:53"])
def test_forward_to_an_ipv6_loopback_of_the_same_port_is_a_loop(target: str) -> None:
    assert codes(analyse(f".:53 {{\n  forward . {target}\n  cache 30\n  loop\n}}\n")) == [("loopback-upstream", "error")]


@pytest.mark.parametrize(("bind", "target", "loop"), [
    ("::1", "[0:0::1]:53", True),
    ("127.0.0.1", "::ffff:127.0.0.1", True),
    ("::", "127.0.0.1", True),  # Go listens on both families for a wildcard bind
    ("::1", "127.0.0.1", False),  # a block bound to ::1 alone does not hear 127.0.0.1
])
def test_bind_addresses_are_compared_as_addresses(bind: str, target: str, loop: bool) -> None:
    text = f".:53 {{\n  bind {bind}\n  forward . {target}\n  cache 30\n  loop\n}}\n"
    found = codes(analyse(text))
    assert (("loopback-upstream", "error") in found) is loop, found


def test_forward_to_the_cluster_dns_ipv6_address_however_spelt_is_a_loop() -> None:
    text = ".:53 {\n  forward . fd00:10:96:0::a\n  cache 30\n  loop\n}\n"
    assert codes(analyse(text, cluster_dns_ip="fd00:10:96::a")) == [("loopback-upstream", "error")]


def test_same_ip() -> None:
    assert same_ip("::1", "0:0:0:0:0:0:0:1") and same_ip("[::1]", "::1") and same_ip("::ffff:10.0.0.1", "10.0.0.1")
    assert not same_ip("::1", "127.0.0.1") and same_ip("lo", "lo") and not same_ip("lo", "eth0")


def _made(ips: tuple[str, ...], dns: tuple[tuple[str, str], ...] = ()) -> DualStack:
    return DualStack(namespace="k8sdns-x", domain="cluster.local", service="web6", cluster_ips=ips,
                     dns_service="kube-system/kube-dns", dns_ipv6=dns)


def test_dual_stack_service_families() -> None:
    made = _made(("10.96.4.2", "fd00:10:96::4:2"), (("fd00:10:96::a", "Service kube-system/kube-dns"),
                                                      ("fd00:10:244:1::3", "pod kube-system/coredns-a")))
    assert (made.ipv4, made.ipv6, made.single_stack, made.nameserver6) == \
        ("10.96.4.2", "fd00:10:96::4:2", None, "fd00:10:96::a")
    assert made.fqdn == "web6.k8sdns-x.svc.cluster.local"
    six = _made(("fd00:10:96::4:2",))  # an IPv6-only cluster: its Service has IPv6 only, and is checked
    assert six.ipv4 is None and six.single_stack is None and six.nameserver6 is None


def test_single_stack_reason_names_the_service_and_its_only_address() -> None:
    assert _made(("10.96.4.2",)).single_stack == ("single-stack cluster: Service k8sdns-x/web6 (ipFamilyPolicy "
                                                  "PreferDualStack) got only 10.96.4.2, no IPv6 ClusterIP")


def test_ipv6_resolver_pods_have_only_the_ipv6_nameserver_and_the_cluster_first_search_list() -> None:
    made = _made(("10.96.4.2", "fd00:10:96::4:2"), (("fd00:10:96::a", "Service kube-system/kube-dns"),))
    specs = made.resolver_specs({"glibc": "g:1", "musl": "m:1"}, "node-a")
    assert [(s.libc, s.image, s.node, s.dns_policy) for s in specs] == [("glibc", "g:1", "node-a", "None"),
                                                                         ("musl", "m:1", "node-a", "None")]
    assert specs[0].dns_config == {
        "nameservers": ["fd00:10:96::a"],
        "searches": ["k8sdns-x.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        "options": [{"name": "ndots", "value": "5"}]}


def test_address_helpers() -> None:
    assert is_ipv6("fd00::1") and is_ipv6("fe80::1%eth0") and not is_ipv6("10.0.0.1") and not is_ipv6("web")
    assert same_addresses(["fd00:10:96:0:0::a"], ["fd00:10:96::a"])
    assert not same_addresses(["fd00:10:96::a", "fd00:10:96::b"], ["fd00:10:96::a"])
