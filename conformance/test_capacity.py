"""Check 20: capacity, with --k8sdns-capacity (opt-in: it loads the DNS it measures). Probe pods on
several nodes ramp raw queries against the cluster DNS Service, per query class (internal,
external, NXDOMAIN, a headless multi-record answer), the way resperf ramps, until a step loses more
than --k8sdns-capacity-max-loss or its p99 passes --k8sdns-capacity-p99-ms: that is the knee. It
runs after the other checks, so none of them measures a cluster still busy with its load."""

from __future__ import annotations

import pytest

from pytest_k8sdns.evidence import capacity as evidence
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.report.plots import ramp_png
from pytest_k8sdns.verdict.capacity import CLASSES, judge
from pytest_k8sdns.verdict.expect import expect

pytestmark = [pytest.mark.k8sdns_check(20), pytest.mark.k8sdns_late]

#: What to do, by what broke the knee: answers that queue (CPU), or queries that vanish (drops).
ADVICE = {
    "latency": "answers queued for CPU: look for a CPU limit that throttles CoreDNS (kubectl -n kube-system get "
               "deploy coredns -o jsonpath='{..resources}'), raise it, or add replicas (cluster-proportional-autoscaler)",
    "loss": "queries were dropped with answers still fast: add CoreDNS replicas, deploy NodeLocal DNSCache, and "
            "look at conntrack (nf_conntrack_count against nf_conntrack_max) and the upstream's packet limits",
}


@pytest.mark.parametrize("query_class", CLASSES)
def test_capacity(query_class, k8sdns_capacity, k8sdns_record):
    """The knee of this query class is at least --k8sdns-capacity-min-headroom times the demand
    (the measured rate of coredns_dns_requests_total, or --k8sdns-capacity-demand-qps if higher);
    the figures at that target rate, the search-list multiplier and CoreDNS's CPU at the knee are
    recorded."""
    cap = k8sdns_capacity
    run = cap.classes[query_class]
    c = run.capacity
    verdict = judge(c, cap.demand, cap.bounds)
    target = cap.demand.qps * cap.bounds.min_headroom
    doc = evidence.document(run, cap.server, cap.demand, cap.multiplier, verdict, target)
    k8sdns_record.capacity(doc)
    entity = {"class": query_class}
    k8sdns_record("knee_qps", doc["knee_qps"], "1/s", quantity=Q.CAPACITY_KNEE, entity=entity)
    k8sdns_record("peak_qps", doc["peak_qps"], "1/s", quantity=Q.CAPACITY_PEAK, entity=entity)
    k8sdns_record("headroom", verdict.headroom, "", quantity=Q.CAPACITY_HEADROOM, entity=entity)
    k8sdns_record("demand_qps", cap.demand.measured_qps, "1/s", quantity=Q.CAPACITY_DEMAND)
    for libc, x in cap.multiplier.per_libc.items():
        k8sdns_record(f"queries_per_lookup[{libc}]", x, "", quantity=Q.CAPACITY_MULTIPLIER, entity={"libc": libc})
    for pod, cores in doc["cpu_at_knee"].items():  # type: ignore[union-attr]
        k8sdns_record(f"cpu_at_knee[{pod}]", cores, "cores", quantity=Q.CAPACITY_CPU, entity={**entity, "pod": pod})
    k8sdns_record.table(f"{query_class} ramp ({c.qname}, {c.pods} load pods)",
                        ["asked qps", "sent qps", "answered qps", "lost or wrong %", "p50 ms", "p99 ms", "held", "why not"],
                        [[s.asked_qps, round(s.sent_qps), round(s.answered_qps), round(100 * s.bad_share, 3), s.p50_ms,
                          s.p99_ms, s.held, s.why] for s in c.steps])
    k8sdns_record.plot(f"capacity ramp: {query_class}",
                       ramp_png([s.asked_qps for s in c.steps], [s.p50_ms for s in c.steps], [s.p99_ms for s in c.steps],
                                [100 * s.bad_share for s in c.steps], c.knee, cap.bounds.p99_ms,
                                100 * cap.bounds.max_loss, f"{query_class}: {c.qname} against {cap.server}"))
    queued = c.broke is not None and (c.broke.p99_ms or 0) > cap.bounds.p99_ms
    expect(verdict.ok, f"capacity of {query_class} names",
           f"a knee of at least x{cap.bounds.min_headroom:g} the demand ({target:.0f} qps)", verdict.message,
           ADVICE["latency" if queued else "loss"])
