"""evidence/capacity.py's pure parts: counters from a metrics body, rates between scrapes, the CPU
at the knee, and the results document (valid against results.schema.json)."""

from __future__ import annotations

from test_capacity_verdict import BOUNDS, step

from pytest_k8sdns.evidence.capacity import (
    ClassRun,
    Multiplier,
    Scrape,
    counter_sums,
    document,
    rate,
)
from pytest_k8sdns.probe.load import LoadResult
from pytest_k8sdns.results import Results, validate
from pytest_k8sdns.verdict.capacity import Demand, judge, judge_class

METRICS = """# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.
# TYPE coredns_dns_requests_total counter
coredns_dns_requests_total{family="1",proto="udp",server="dns://:53",type="A",view="",zone="."} 1200
coredns_dns_requests_total{family="1",proto="tcp",server="dns://:53",type="A",view="",zone="."} 34
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
"""


def test_counters_are_summed_over_their_labels() -> None:
    assert counter_sums(METRICS) == (1234.0, 12.5)
    assert counter_sums("# nothing\n") == (None, None)


def test_rates_are_per_pod_per_second_and_a_restart_counts_from_zero() -> None:
    a = Scrape(100.0, {"p1": 1000.0, "p2": 500.0, "gone": 7.0}, {})
    b = Scrape(102.0, {"p1": 1400.0, "p2": 40.0, "new": 9.0}, {})
    assert rate(a, b, "requests") == {"p1": 200.0, "p2": 20.0}  # p2 restarted: 40 since
    assert rate(b, a, "requests") == {}


def _result(steps: list) -> LoadResult:
    return LoadResult(server="10.96.0.10", port=53, qtype="A", names=1, step_s=1.0, timeout_s=1.0, sockets=8,
                      steps=tuple(steps), late=0, stopped="done", elapsed_s=float(len(steps)))


def test_the_cpu_at_the_knee_is_read_between_the_scrapes_around_that_step() -> None:
    steps = [step(1000), step(2000), step(4000, lost=400)]
    cap = judge_class("internal", "k", [steps], 1.0, BOUNDS)
    # the knee is step 1 (started at 0, so it ends at t=2): the scrapes at 1.5 and 2.5 bracket it
    scrapes = (Scrape(0.5, {}, {"dns-a": 1.0}), Scrape(1.5, {}, {"dns-a": 1.2}), Scrape(2.5, {}, {"dns-a": 1.9}),
               Scrape(3.5, {}, {"dns-a": 2.0}))
    run = ClassRun(cap, {"load-0": _result(steps)}, 0.0, scrapes)
    assert run.cpu_at_knee() == {"dns-a": 0.7}


def test_the_document_holds_the_ramp_and_is_valid_in_a_results_file() -> None:
    steps = [step(100, rcode="NXDOMAIN"), step(200, rcode="NXDOMAIN"), step(400, lost=100, rcode="NXDOMAIN")]
    cap = judge_class("nxdomain", "k8sdns-nx-0.ns.svc.cluster.local", [steps], 1.0, BOUNDS)
    demand = Demand(measured_qps=2.5, planned_qps=50.0)
    verdict = judge(cap, demand, BOUNDS)
    run = ClassRun(cap, {"load-0": _result(steps)}, 0.0, ())
    doc = document(run, "10.96.0.10", demand, Multiplier("api.example.test", 20, {"glibc": 8.0, "musl": None}),
                   verdict, target_qps=100.0)
    assert doc["knee_qps"] == 200 and doc["broke_at_qps"] == 400 and doc["headroom"] == 4.0
    assert doc["target"]["asked_qps"] == 100 and len(doc["steps"]) == 3  # type: ignore[index]
    results = Results()
    results.capacity("conformance/test_capacity.py::test_capacity[nxdomain]", doc)
    # (the run-wide parts, cluster facts and settings, are not this test's)
    assert [e for e in validate(results.document({})) if e.startswith("$.checks")] == []
    bad = {**doc, "steps": [{"asked_qps": 1}]}
    results.capacity("conformance/test_capacity.py::test_capacity[nxdomain]", bad)
    assert any(e.startswith("$.checks[0].capacity.steps[0]") for e in validate(results.document({})))
