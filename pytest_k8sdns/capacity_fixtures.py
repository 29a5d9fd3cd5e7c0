"""Fixture of the capacity check (conformance/test_capacity.py, check 20): every query class ramped
once per session with --k8sdns-capacity, and the counters around the ramps."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from pytest_k8sdns.config import Settings
from pytest_k8sdns.dns import bigname
from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.evidence import capacity as evidence
from pytest_k8sdns.fixtures import _guarded
from pytest_k8sdns.probe.fleet import Fleet
from pytest_k8sdns.probe.pods import LIBCS, ProbePod
from pytest_k8sdns.session import Run
from pytest_k8sdns.verdict.capacity import CLASSES, CapacityBounds, Demand, rate_ramp

#: The ramp's first rate, all load pods together.
START_QPS = 100.0
#: NXDOMAIN names of the nxdomain class: distinct, so that each is a new question to the server.
NX_NAMES = 256
#: Ready endpoints of the headless class's Service: an 8-record answer, within 512 bytes.
HEADLESS_ADDRESSES = 8


def bounds(settings: Settings) -> CapacityBounds:
    return CapacityBounds(settings.capacity_max_loss, settings.capacity_p99_ms, settings.capacity_min_headroom)


def plan(settings: Settings) -> evidence.RampPlan:
    """The ramp every class runs; the pods stop once two steps in a row lose far past the bound."""
    rates = rate_ramp(min(START_QPS, settings.capacity_max_rate), settings.capacity_max_rate, settings.capacity_growth)
    return evidence.RampPlan(tuple(rates), settings.capacity_step_s, timeout_s=1.0,
                             stop_loss=min(1.0, max(0.2, 10 * settings.capacity_max_loss)),
                             sockets=settings.capacity_sockets)


def load_pods(fleet: Fleet, count: int) -> list[ProbePod]:
    """`count` probe pods spread over the chosen nodes: each node's glibc pod, then each's musl pod."""
    order = [fleet.pod(node, libc) for libc in LIBCS for node in fleet.nodes if (node, libc) in fleet.pods]
    return order[:count]


@dataclasses.dataclass(frozen=True)
class CapacityRun:
    server: str
    plan: evidence.RampPlan
    bounds: CapacityBounds
    demand: Demand
    multiplier: evidence.Multiplier
    classes: Mapping[str, evidence.ClassRun]


@pytest.fixture(scope="session")
def k8sdns_capacity(k8sdns_run: Run, probe_fleet: Fleet, coredns: CoreDNSInspector, cluster_domain: str,
                    external_name: tuple[str, str | None]) -> CapacityRun:
    """Session. With --k8sdns-capacity: the demand, the search-list multiplier, and each query
    class ramped against the cluster DNS Service (see evidence/capacity.py). Skips without it."""
    if not k8sdns_run.settings.capacity:
        pytest.skip("capacity is opt-in, since it loads the cluster DNS to its knee: pass --k8sdns-capacity")
    made: CapacityRun = _guarded(measure, k8sdns_run, probe_fleet, coredns, cluster_domain, external_name[0])
    return made


def measure(run: Run, probe_fleet: Fleet, coredns: CoreDNSInspector, cluster_domain: str,
            external_name: str) -> CapacityRun:
    settings = run.settings
    server = coredns.provider.cluster_ip
    pods = load_pods(probe_fleet, settings.capacity_pods)
    spare = [p for p in probe_fleet.pods.values() if p not in pods]
    dns_pods = {p.name: p.ip for p in coredns.pods() if p.ip}
    scrape = evidence.scraper((spare or pods)[0], dns_pods)
    demand = evidence.demand(scrape, settings.capacity_demand_qps)
    firsts = {libc: probe_fleet.first(libc) for libc in LIBCS if (probe_fleet.nodes[0], libc) in probe_fleet.pods}
    multiplier = evidence.multiplier(scrape, firsts, external_name.rstrip("."), demand.measured_qps)
    headless = bigname.create(run.cluster, run.namespace, run.run_id, cluster_domain, count=HEADLESS_ADDRESSES,
                              name="wide", timeout_s=settings.pod_timeout)
    qnames = {"internal": [f"kubernetes.default.svc.{cluster_domain}."],
              "external": [external_name.rstrip(".") + "."],
              "nxdomain": [f"k8sdns-nx-{i}.{run.namespace}.svc.{cluster_domain}." for i in range(NX_NAMES)],
              "headless": [headless.fqdn]}
    ramp_plan, judged_by = plan(settings), bounds(settings)
    classes = {name: evidence.ramp_class(name, pods, server, qnames[name], "A", ramp_plan, judged_by, scrape)
               for name in CLASSES}
    return CapacityRun(server, ramp_plan, judged_by, demand, multiplier, classes)
