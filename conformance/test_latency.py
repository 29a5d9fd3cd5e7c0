"""Checks 9-11: client tail latency per libc, the retry signature, and server-side latency."""

from __future__ import annotations

import pytest

from pytest_k8sdns.evidence.latency import (
    burst_retries,
    lookup_latency,
    search_tax,
    server_latency,
    shown,
)
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.probe.fleet import QUERIES_PER_LOOKUP, paced_qps, within_budget
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict import stops
from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.verdict.pernode import judge, record_node_verdicts


def _names(domain: str, namespace: str) -> list[str]:
    # absolute names that exist: the cost of DNS itself, not of the search list (see test_ndots)
    return [f"kubernetes.default.svc.{domain}.", f"web.{namespace}.svc.{domain}."]


@pytest.mark.k8sdns_check(9)
@pytest.mark.parametrize("libc", LIBCS)
def test_lookup_latency(probe_fleet, dns_objects, cluster_domain, k8sdns_settings, k8sdns_record, root_causes, libc):
    """Paced libc lookups from every chosen node: each node's p50, p99, error count and retry
    signatures stay within bounds. A node whose failure is certain stops sampling early."""
    s = k8sdns_settings
    qps = paced_qps(s.qps, QUERIES_PER_LOOKUP, s.max_qps)
    rules = stops.latency_rules(s, libc)
    runs = probe_fleet.each(libc, lambda pod: pod.lookup(_names(cluster_domain, dns_objects.namespace), count=s.samples,
                                                         qps=qps, concurrency=2, family="any", stop_rules=rules),
                            qps_per_probe=qps * QUERIES_PER_LOOKUP)
    per_node = {node: lookup_latency(run, libc, {"libc": libc, "node": node}) for node, run in runs.items()}
    pooled = lookup_latency(list(runs.values()), libc)
    k8sdns_record.add(*pooled.measurements())
    for node, ev in per_node.items():
        k8sdns_record.add(*ev.measurements(node))
    k8sdns_record.series("latency_ms", pooled.samples_ms, "ms", quantity=Q.LOOKUP_LATENCY, entity=pooled.entity)
    verdict = judge(per_node, stops.latency_bounds(s, libc))
    record_node_verdicts(k8sdns_record, verdict, per_node, {"libc": libc})
    stopped = stops.stopped_early(runs, s.samples)
    expect(verdict.ok, f"{libc} lookups per node ({len(per_node)} nodes)", stops.latency_expected(s, libc),
           verdict.message + stopped + stops.root_cause(verdict, root_causes), stops.latency_fix(verdict.broken))


@pytest.mark.k8sdns_check(11)
@pytest.mark.parametrize("variant", [*LIBCS, "glibc-single-request-reopen"])
def test_retry_signature(request, probe_fleet, dns_objects, cluster_domain, k8sdns_settings, k8sdns_record, root_causes,
                         variant):
    """Bursts of parallel A+AAAA lookups from every chosen node: none may take the libc's retry
    time (a lost packet). glibc with single-request-reopen is counted on its own (one node)."""
    s = k8sdns_settings
    libc, _, option = variant.partition("-")
    names = _names(cluster_domain, dns_objects.namespace)
    interval_s = within_budget(0.05, s.burst_size * QUERIES_PER_LOOKUP, probe_fleet.budget_qps)
    rules = stops.retry_rules(s, libc)

    def bursts(pod):
        return pod.burst(names, bursts=s.bursts, parallel=s.burst_size, interval_s=interval_s, stop_rules=rules)

    if option:
        pod = request.getfixturevalue("reopen_pod")
        runs = {pod.node: bursts(pod)}
    else:
        runs = probe_fleet.each(libc, bursts, qps_per_probe=s.burst_size * QUERIES_PER_LOOKUP / interval_s)
    per_node = {node: burst_retries(run, libc, option or None, node) for node, run in runs.items()}
    pooled = burst_retries(list(runs.values()), libc, option or None)
    k8sdns_record.add(*pooled.measurements())
    for node, ev in per_node.items():
        k8sdns_record.add(*ev.measurements(node))
    verdict = judge(per_node, [stops.retry_bound(s, libc)])
    record_node_verdicts(k8sdns_record, verdict, per_node, {"libc": libc, **({"option": option} if option else {})})
    expect(verdict.ok, f"{variant} lookups at the retry signature (>= {pooled.threshold_s} s) per node",
           f"<= {s.max_retry_signatures} on each node",
           verdict.message + stops.stopped_early(runs, None) + stops.root_cause(verdict, root_causes),
           "packets are lost: check conntrack -S (insert_failed) on the nodes; single-request-reopen "
           "(glibc) or NodeLocal DNSCache avoid the race")


#: Queries one lookup of an external name sends at ndots:5: three search candidates and the name, A and AAAA.
EXTERNAL_QUERIES = 8


@pytest.mark.k8sdns_check(9)
@pytest.mark.parametrize("libc", LIBCS)
def test_external_latency(external_names, probe_fleet, ndots2_fleet, k8sdns_settings, k8sdns_record, root_causes,
                          libc):
    """The search tax: a name outside the cluster timed from every chosen node at the pods' ndots
    (5: the search list first) and at ndots:2 (the name first). The p99 at the pods' ndots is bounded;
    the tax is the ratio of the two."""
    s = k8sdns_settings
    qps = paced_qps(s.qps, EXTERNAL_QUERIES, s.max_qps)
    rules = stops.latency_rules(s, libc, samples=s.external_samples, p99_ms=s.external_p99_ms)
    index = {node: i for i, node in enumerate(probe_fleet.nodes)}

    def timed(fleet, ndots):
        def one(pod):
            names = external_names(f"{libc}-{ndots}-{index[pod.node]}")
            return pod.lookup(names, count=s.external_samples, qps=qps, concurrency=2, family="any", stop_rules=rules)
        return fleet.each(libc, one, qps_per_probe=qps * EXTERNAL_QUERIES)

    at5, at2 = timed(probe_fleet, 5), timed(ndots2_fleet, 2)
    per_node = {node: lookup_latency(run, libc, {"libc": libc, "node": node}) for node, run in at5.items()}
    without = {node: lookup_latency(run, libc, {"libc": libc, "node": node}) for node, run in at2.items()}
    taxes = search_tax(per_node, without, libc)
    k8sdns_record.add(*taxes.measurements())
    k8sdns_record.table("search tax per node", *taxes.table())
    verdict = judge(per_node, stops.latency_bounds(s, libc, samples=s.external_samples, p99_ms=s.external_p99_ms,
                                                   p50=False))
    record_node_verdicts(k8sdns_record, verdict, per_node, {"libc": libc})
    expect(verdict.ok, f"{libc} lookups of a name outside the cluster at ndots 5, per node ({len(per_node)} nodes)",
           f"on each node p99 <= {s.external_p99_ms} ms, at most {stops.allowed_errors(s, s.external_samples)} failed "
           f"of {s.external_samples}, none at the retry signature",
           verdict.message + stops.stopped_early(at5, s.external_samples) + f"; search tax {taxes.said(verdict.failing)}"
           + stops.root_cause(verdict, root_causes),
           "names outside the cluster are slow: check the upstream the cluster DNS forwards to and its cache; "
           "ndots:5 sends the search list first (a trailing dot or ndots:2 in the pod's dnsConfig avoids it)")


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
