"""The README's parity table as data: each official e2e DNS test (keyed by a substring of its name,
first match wins) and the checks of this suite that cover it, for scripts/e2e_parity.py."""

from __future__ import annotations

from typing import NamedTuple


class Parity(NamedTuple):
    key: str  # a substring of the e2e test's name (whitespace collapsed)
    checks: tuple[str, ...]  # test functions of the packaged suite; () when we have none
    note: str  # the README's difference column, in short


PARITY: tuple[Parity, ...] = (
    Parity("should provide DNS for the cluster [Provider:GCE]", ("test_upstream_name",),
           "~ one outside name, not GCE metadata"),
    Parity("should provide DNS for the cluster", ("test_cluster_name_raw", "test_cluster_name_libc"),
           "= exact ClusterIP; A only"),
    Parity("partial qualified names for the cluster", ("test_partial_names", "test_queries_per_lookup"),
           "= each libc's search list; its /etc/hosts half is a gap"),
    Parity("/etc/hosts entries for the cluster", ("test_pod_own_names",), "gap in the README table"),
    Parity("should provide DNS for services",
           ("test_service_a", "test_service_srv", "test_service_ptr", "test_headless_a", "test_headless_srv"),
           "~ exact content, ready endpoints only"),
    Parity("hostNetwork pods with dnsPolicy: ClusterFirstWithHostNet", ("test_host_network_pods",),
           "= ; each libc; needs --k8sdns-host-network off the plugin's kind clusters"),  # before the next: same words
    Parity("partial qualified names for services", ("test_partial_names", "test_srv_through_search_list"),
           "~ a ClusterIP Service; SRV through the search list"),
    Parity("DNS for pods for Hostname", ("test_pod_hostname_subdomain", "test_pod_own_names"),
           "~ resolved from other pods"),
    Parity("DNS for pods for Subdomain", ("test_pod_hostname_subdomain", "test_headless_a"), "="),
    Parity("DNS for ExternalName services", ("test_external_name_cname", "test_external_name_change"),
           "~ the CNAME; its change if the check exists"),
    Parity("configurable pod DNS nameservers", ("test_dns_config_nameserver_pod",),
           "= a DNS server pod the suite starts, through each libc"),
    Parity("configurable pod resolv.conf", ("test_dns_config_applied", "test_dns_config_nameserver_pod",
                                            "test_queries_per_lookup"),
           "= an in-pod capturing forwarder and the suite's DNS server pod"),
    Parity("more than 6 DNS search paths", ("test_long_search_list",),
           "= ; each libc: musl ignores the 351-byte line (a client finding)"),
    Parity("search path containing an underscore", ("test_search_path_underscore_and_dot",),
           "= each libc, dnsPolicy None"),
    Parity("service name that starts with a digit", (), "gap (feature-gated)"),
    Parity("spec.Hostname field is", (), "gap (not DNS)"),
    Parity("change stubDomain", (), "gap: edits the CoreDNS ConfigMap"),
    Parity("forward PTR records lookup", ("test_service_ptr",), "gap: PTR of an outside address"),
    Parity("forward externalname lookup", ("test_external_name_cname",), "~ the CNAME, not its target"),
)


def parity_of(e2e_name: str) -> Parity | None:
    """The first entry whose key is in the e2e test's name (whitespace collapsed), or None."""
    name = " ".join(e2e_name.split())
    return next((p for p in PARITY if p.key in name), None)


def mapped_checks() -> list[str]:
    """Every check of ours that the table names, once, in table order."""
    return list(dict.fromkeys(c for p in PARITY for c in p.checks))
