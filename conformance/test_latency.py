"""Checks 9-11: client tail latency per libc, the retry signature, and server-side latency."""

from __future__ import annotations

import pytest

from pytest_k8sdns.evidence.latency import burst_retries, lookup_latency, server_latency, shown
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict.expect import expect


def _names(domain: str, namespace: str) -> list[str]:
    # absolute names that exist: the cost of DNS itself, not of the search list (see test_ndots)
    return [f"kubernetes.default.svc.{domain}.", f"web.{namespace}.svc.{domain}."]


@pytest.mark.k8sdns_check(9)
@pytest.mark.parametrize("libc", LIBCS)
def test_lookup_latency(probe_pods, dns_objects, cluster_domain, k8sdns_settings, k8sdns_record, libc):
    """Paced libc lookups: p50, p99 and the error rate stay within bounds."""
    s = k8sdns_settings
    result = probe_pods[libc].lookup(_names(cluster_domain, dns_objects.namespace), count=s.samples, qps=s.qps,
                                     concurrency=2, family="any")
    ev = lookup_latency(result, libc)
    k8sdns_record.add(*ev.measurements())
    k8sdns_record.series("latency_ms", ev.samples_ms, "ms", quantity=Q.LOOKUP_LATENCY, entity=ev.entity)
    expect(ev.error_rate <= s.max_error_rate, f"{libc} lookup error rate", f"<= {s.max_error_rate}",
           f"{ev.error_rate:.4f} ({ev.errors}/{ev.count}, {dict(ev.error_kinds)})",
           "look at CoreDNS errors and restarts (test_loop) and at packet loss to its pods")
    expect(ev.p50_ms is not None and ev.p50_ms <= s.p50_ms, f"{libc} lookup p50",
           f"<= {s.p50_ms} ms", f"{shown(ev.p50_ms)} ms", "the cluster DNS is slow for every query: check its CPU and upstream")
    expect(ev.p99_ms is not None and ev.p99_ms <= s.p99_ms, f"{libc} lookup p99",
           f"<= {s.p99_ms} ms", f"{shown(ev.p99_ms)} ms with {ev.retry_signatures} lookups at the retry signature",
           "a slow tail: look for lost packets (conntrack -S insert_failed) and CoreDNS saturation")


@pytest.mark.k8sdns_check(11)
@pytest.mark.parametrize("variant", [*LIBCS, "glibc-single-request-reopen"])
def test_retry_signature(request, probe_pods, dns_objects, cluster_domain, k8sdns_settings, k8sdns_record, variant):
    """Bursts of parallel A+AAAA lookups: none may take the libc's retry time (a lost packet).
    glibc with single-request-reopen is counted on its own."""
    s = k8sdns_settings
    libc, _, option = variant.partition("-")
    pod = request.getfixturevalue("reopen_pod") if option else probe_pods[libc]
    result = pod.burst(_names(cluster_domain, dns_objects.namespace), bursts=s.bursts,
                       parallel=s.burst_size, interval_s=0.05)
    ev = burst_retries(result, libc, option or None)
    k8sdns_record.add(*ev.measurements())
    expect(ev.retry_signatures <= s.max_retry_signatures, f"{variant} lookups at the retry signature (>= {ev.threshold_s} s)",
           f"<= {s.max_retry_signatures}", f"{ev.retry_signatures} of {ev.lookups}",
           "packets are lost: check conntrack -S (insert_failed) on the nodes; single-request-reopen "
           "(glibc) or NodeLocal DNSCache avoid the race")


#: Queries the server-latency check sends first, so that its histogram holds more than the few
#: requests a freshly started CoreDNS has seen (two samples make a p99 a coin toss)
SERVER_LOAD = 50


@pytest.mark.k8sdns_check(10)
def test_server_latency(coredns, probe_pods, cluster_domain, k8sdns_settings, k8sdns_record):
    """The cluster DNS's own request-duration histogram (:9153) stays within the p99 bound."""
    probe_pods["glibc"].query(coredns.provider.cluster_ip, f"kubernetes.default.svc.{cluster_domain}", rdtype="A",
                              count=SERVER_LOAD)
    scrapes = {pod.name: probe_pods["glibc"].http_status(f"http://{pod.ip}:9153/metrics") for pod in coredns.pods()}
    ev = server_latency(scrapes)
    for pod, status in ev.unreadable.items():
        expect(False, f"metrics of {pod}", "HTTP 200 on :9153/metrics", status, "enable the prometheus plugin on :9153")
    k8sdns_record.add(*ev.measurements())
    expect(ev.p99_ms is not None and ev.p99_ms <= k8sdns_settings.p99_ms,
           "server-side p99 of coredns_dns_request_duration_seconds", f"<= {k8sdns_settings.p99_ms} ms",
           f"{shown(ev.p99_ms)} ms", "the DNS server itself is slow: check its upstream and CPU")
