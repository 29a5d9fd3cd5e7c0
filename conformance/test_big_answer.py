"""Check 18: an answer larger than 512 bytes. The cluster's part: over UDP without EDNS the DNS
server truncates (TC) and gives the whole answer over TCP. The client's part: each libc's
getaddrinfo gets every address, asking again over TCP. A libc that cannot (musl before 1.2.4) is
reported as a finding for the workloads that use it; it fails the cluster only under
--k8sdns-strict-clients, since the cluster cannot fix a libc."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns import bigname
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict.expect import expect


@pytest.mark.k8sdns_check(18)
def test_big_answer_truncated_then_whole_over_tcp(big_name, probe_pods, cluster_nameserver, k8sdns_record):
    """Over UDP without EDNS the answer of 40 A records comes truncated (TC set); over TCP it holds
    every address."""
    pod = probe_pods["glibc"]
    udp = pod.query(cluster_nameserver, big_name.fqdn, rdtype="A", tcp=False).replies[0]
    tcp = pod.query(cluster_nameserver, big_name.fqdn, rdtype="A", tcp=True).replies[0]
    udp_addrs = {r.rdata for r in udp.answer if r.rdtype == "A"}
    tcp_addrs = {r.rdata for r in tcp.answer if r.rdtype == "A"}
    want = set(big_name.addresses)
    k8sdns_record("udp_truncated", "TC" in udp.flags)
    k8sdns_record("udp_addresses", len(udp_addrs), "")
    k8sdns_record("tcp_addresses", len(tcp_addrs), "")
    problems = []
    if not udp.ok:
        problems.append(f"UDP: {udp.error}")
    elif "TC" not in udp.flags and udp_addrs != want:
        problems.append(f"UDP gave {len(udp_addrs)} of {len(want)} addresses without the TC bit, so no client asks "
                        f"again over TCP")
    if not tcp.ok:
        problems.append(f"TCP: {tcp.error}")
    elif tcp_addrs != want:
        problems.append(f"TCP gave {len(tcp_addrs)} of {len(want)} addresses (rcode {tcp.rcode})")
    expect(not problems, f"{big_name.fqdn} A ({len(want)} records) from {cluster_nameserver}",
           "TC over UDP, every address over TCP", "; ".join(problems),
           "DNS over TCP must reach the cluster DNS (Service port 53/TCP, NetworkPolicies, NodeLocal's TCP listener)")


@pytest.mark.k8sdns_check(18)
@pytest.mark.parametrize("libc", LIBCS)
def test_big_answer_every_address(big_name, probe_pods, cluster_nameserver, k8sdns_settings, k8sdns_record, libc):
    """getaddrinfo of the big name gets all 40 addresses. When it gets fewer while the same pod gets
    them all over TCP, the libc did not ask again over TCP: a finding for the workloads on it (a
    failure under --k8sdns-strict-clients), not the cluster's fault."""
    pod = probe_pods[libc]
    found = pod.lookup([big_name.fqdn], count=1, family="inet")
    got = set(found.addresses[0] or ())
    want = set(big_name.addresses)
    info = pod.info()
    version = f"{info.libc} {info.libc_version or '(version unknown)'}"
    k8sdns_record("addresses", len(got), "")
    k8sdns_record("libc_version", version)
    if got == want:
        return
    said = (f"{libc} getaddrinfo({big_name.fqdn}) got {len(got & want)} of {len(want)} addresses"
            + (f" ({sorted(found.errors.values())[0]})" if found.errors else ""))
    tcp = pod.query(cluster_nameserver, big_name.fqdn, rdtype="A", tcp=True).replies[0]
    over_tcp = {r.rdata for r in tcp.answer if r.rdtype == "A"}
    k8sdns_record("tcp_addresses_from_this_pod", len(over_tcp), "")
    expect(over_tcp == want, f"{libc} getaddrinfo of a name with {len(want)} addresses", "every address",
           f"{said}, and this pod's own TCP query got {len(over_tcp)} ({tcp.error or tcp.rcode})",
           "DNS over TCP must reach the cluster DNS from the pods (Service port 53/TCP, NetworkPolicies)")
    fallback = bigname.falls_back_to_tcp(info.libc, info.libc_version)
    finding = (f"{said} while the same pod got all {len(want)} over TCP: {version} keeps what fits in a truncated "
               f"UDP answer and does not ask again over TCP"
               + (" (musl before 1.2.4)" if fallback is False else "")
               + "; workloads on this libc see only part of such a name's addresses. Fix: musl 1.2.4 or later in "
               "their images, or fewer addresses per name")
    k8sdns_record("client_finding", finding)
    # passed, with the finding in the results, the terminal's "k8sdns client findings" and the report
    expect(not k8sdns_settings.strict_clients, f"{libc} getaddrinfo of a name with {len(want)} addresses",
           "every address (--k8sdns-strict-clients)", finding, "")
