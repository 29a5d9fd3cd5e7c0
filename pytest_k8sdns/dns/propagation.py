"""Propagation and negative caching (check 17), measured from every chosen node through each libc:
how long after a Service is created, or a headless pod becomes Ready, its name answers; and how long
a name asked before its Service existed keeps answering NXDOMAIN (the negative window).

The probes' monitor streams chase each name: the moment the object is ready the host tells every
stream, and each asks the name every `chase_every_s` until it answers once. Ready times are the
host's (a Service when its create returns; a headless pod when the host first sees its endpoint
ready in the Service's EndpointSlices, which is what the cluster DNS publishes, at most a poll of
0.2 s late); answer times are the probes' clocks, the same clock on kind and
NTP-synchronised nodes elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes.client import DiscoveryV1Api
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.dns.objects import service_manifest
from pytest_k8sdns.errors import K8sDnsError
from pytest_k8sdns.evidence.stats import percentile, retry_threshold
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.monitor.core import Monitor, ProbeStream
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.fleet import QUERIES_PER_LOOKUP
from pytest_k8sdns.probe.pods import ProbePod, ProbeSpec
from pytest_k8sdns.probe.protocol import EAI_AGAIN

KINDS = ("service", "headless-pod", "primed")
#: How often the host looks for headless pods turned Ready.
READY_POLL_S = 0.2
PORT = {"name": "http", "port": 80, "protocol": "TCP"}
#: The probe's longest chase interval: past it the budget is exceeded rather than a name asked rarer.
CHASE_EVERY_MAX_S = 10.0


@dataclasses.dataclass(frozen=True)
class Delay:
    """One object's name as one stream saw it."""

    kind: str  # KINDS
    name: str
    node: str
    libc: str
    ready_ns: int
    answered_ns: int | None  # the start of its first answered lookup; None: not within the time given
    failed_before: int  # lookups of it that failed first (NXDOMAIN while it propagated or was cached)
    #: which way the stream's pod asks ("nodelocal", "coredns"); "" when every pod asks one way
    path: str = ""
    #: of those failed lookups, the ones that timed out (lost queries, not a name still denied)
    timed_out_before: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.answered_ns is None else max(0.0, (self.answered_ns - self.ready_ns) / 1e9)


@dataclasses.dataclass(frozen=True)
class Propagation:
    delays: tuple[Delay, ...]
    path: str  # what answered the pods: NodeLocal DNSCache (and CoreDNS beside it) or the cluster DNS
    chase_every_s: float

    def of(self, kind: str) -> list[Delay]:
        return [d for d in self.delays if d.kind == kind]

    def streams(self) -> list[tuple[str, str]]:
        return sorted({(d.node, d.libc) for d in self.delays})


def quantile_s(delays: Sequence[Delay], q: float) -> float | None:
    """A percentile of the delays; an unanswered name counts as infinitely late."""
    if not delays:
        return None
    return percentile([d.seconds if d.seconds is not None else float("inf") for d in delays], q)


def late_by_timeout(rows: Sequence[tuple[int, int, bool, int]], ready_ns: int, bound_s: float, libc: str) -> bool:
    """A stream's chased lookups of one name (start unix ns, latency ns, ok, code) already show that
    its first answer cannot start within `bound_s` of ready, because of a lookup that timed out
    (EAI_AGAIN, or failed after the libc's retry time) and ended after that moment: the probe asks a
    name again only once its lookup has ended. Lost queries, not the check's own subject: a name
    that stays NXDOMAIN is waited for, so that its delay is measured."""
    limit = ready_ns + int(bound_s * 1e9)
    first = min((start for start, _, ok, _ in rows if ok), default=None)
    return (first is None or first > limit) and any(
        timed_out(latency, ok, code, libc) and start + latency > limit for start, latency, ok, code in rows)


def timed_out(latency_ns: int, ok: bool, code: int, libc: str) -> bool:
    """A failed lookup that lost queries: EAI_AGAIN, or a failure only after the libc's retry time."""
    return not ok and (code == EAI_AGAIN or latency_ns >= retry_threshold(libc) * 1e9)


def chase_interval(names_at_once: int, streams: int, budget_qps: float) -> float:
    """How often each chased name is asked, so that all streams chasing together stay in budget."""
    return min(CHASE_EVERY_MAX_S, max(0.1, names_at_once * streams * QUERIES_PER_LOOKUP / budget_qps))


class _Objects:
    """The Services and pods one measurement made, deleted at its end (the namespace goes anyway)."""

    def __init__(self, cluster: Cluster, namespace: str, run_id: str) -> None:
        self.cluster, self.namespace, self.run_id = cluster, namespace, run_id
        self.services: list[str] = []
        self.pods: list[str] = []

    def service(self, name: str, *, headless: bool = False) -> None:
        c = self.cluster
        spec: dict[str, Any] = {"selector": {"app": name}, "ports": [PORT]}
        if headless:
            spec["clusterIP"] = "None"
        c.call("create", "services", self.namespace, c.core.create_namespaced_service, self.namespace,
               service_manifest(name, self.run_id, spec))
        self.services.append(name)

    def delete(self) -> None:
        c = self.cluster
        for name in self.services:
            with contextlib.suppress(K8sDnsError, ApiException):
                c.call("delete", "services", self.namespace, c.core.delete_namespaced_service, name, self.namespace)
        for name in self.pods:
            with contextlib.suppress(K8sDnsError, ApiException):
                c.call("delete", "pods", self.namespace, c.core.delete_namespaced_pod, name, self.namespace,
                       grace_period_seconds=0)


async def measure(cluster: Cluster, namespace: str, run_id: str, pods: Sequence[ProbePod], domain: str, *,
                  image: str, objects: int = 10, primed: int = 3, budget_qps: float = 500.0,
                  give_up_s: float = 15.0, primed_give_up_s: float = 65.0, pod_timeout_s: float = 180.0,
                  path: str = "cluster DNS", path_of: Mapping[str, str] | None = None,
                  p99_s: float | None = None, window_s: float | None = None) -> Propagation:
    """Primed names first (asked, then their Services created), then `objects` Services at once,
    then a headless Service with `objects` pods; every stream chases each name, and the waits for
    the three kinds' answers overlap (each kind is made without waiting for the one before to
    answer everywhere, so a slow stream is waited for once). A name not answering
    within `give_up_s` (`primed_give_up_s` for the primed ones) counts as never answering.
    `path_of` names, by pod name, which way each pod asks, when they ask different ways.
    With the bounds given (`p99_s` for Services and pods, `window_s` for the primed names' worst),
    a wait also ends once every stream has answered or has certainly broken its bound through timed
    out lookups (late_by_timeout): a stream on a lossy node is not waited for to its give-up."""
    token = secrets.token_hex(3)
    fqdn = (lambda name: f"{name}.{namespace}.svc.{domain}.")
    primed_names = [f"prop-p{i}-{token}" for i in range(primed)]
    every = chase_interval(primed + 2 * objects + 1, len(pods), budget_qps)  # every kind's names at once, at most
    monitor = Monitor(pods, names=[f"kubernetes.default.svc.{domain}."], qps=1.0, socket_qps=0.0,
                      chase=[fqdn(n) for n in primed_names], chase_every_s=every,
                      chase_give_up_s=primed_give_up_s + 30,  # counted from the start: priming included
                      max_duration_s=primed_give_up_s + 2 * give_up_s + pod_timeout_s + 600)
    made = _Objects(cluster, namespace, run_id)
    ready: dict[str, tuple[str, int]] = {}  # fqdn -> (kind, ready unix ns)

    # (names, give-up deadline, bound, late names the bound allows): one per kind, waited for together
    waits: list[tuple[list[str], float, float | None, int]] = []

    def settled(stream: ProbeStream, names: Sequence[str], bound_s: float | None, allowed: int) -> bool:
        if all(stream.answered(n) for n in names):
            return True
        return bound_s is not None and sum(
            late_by_timeout(stream.chased.get(n, []), ready[n][1], bound_s, stream.pod.libc) for n in names) > allowed

    await monitor.start()
    try:
        # every stream has been told NXDOMAIN for each primed name before its Service exists
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
                s.chased.get(fqdn(n)) for s in monitor.streams for n in primed_names):
            await asyncio.sleep(0.1)
        for name in primed_names:
            await asyncio.to_thread(made.service, name)
            ready[fqdn(name)] = ("primed", time.time_ns())
        waits.append(([fqdn(n) for n in primed_names], time.monotonic() + primed_give_up_s, window_s, 0))
        # the kinds overlap: a stream's slow answers of one kind are waited for while the next is made
        services = [fqdn(f"prop-s{i}-{token}") for i in range(objects)]
        for i, name in enumerate(services):
            await asyncio.to_thread(made.service, f"prop-s{i}-{token}")
            ready[name] = ("service", time.time_ns())
            await monitor.chase([name])
        waits.append((services, time.monotonic() + give_up_s, p99_s, _p99_hides(objects)))
        await _headless_pods(cluster, namespace, run_id, made, monitor, image, objects, token, domain, ready,
                             pod_timeout_s)
        waits.append(([n for n, (k, _) in ready.items() if k == "headless-pod"], time.monotonic() + give_up_s, p99_s,
                      _p99_hides(objects)))
        while any(time.monotonic() < until and not all(settled(s, names, bound, allowed) for s in monitor.streams)
                  for names, until, bound, allowed in waits):
            await asyncio.sleep(0.1)
    finally:
        await monitor.stop()
        await asyncio.to_thread(made.delete)
    delays = []
    for stream in monitor.streams:
        for name, (kind, at) in ready.items():
            rows = sorted(stream.chased.get(name, []))
            first = next((start for start, _, ok, _ in rows if ok), None)
            before = [(latency, ok, code) for start, latency, ok, code in rows
                      if not ok and (first is None or start < first)]
            delays.append(Delay(kind, name, stream.pod.node, stream.pod.libc, at, first, len(before),
                                (path_of or {}).get(stream.pod.name, ""),
                                sum(timed_out(*b, stream.pod.libc) for b in before)))
    return Propagation(tuple(delays), path, every)


def _p99_hides(count: int) -> int:
    """Names over the bound a nearest-rank p99 of `count` of them leaves unseen."""
    return count - math.ceil(0.99 * count)


async def _headless_pods(cluster: Cluster, namespace: str, run_id: str, made: _Objects, monitor: Monitor, image: str,
                         count: int, token: str, domain: str, ready: dict[str, tuple[str, int]],
                         timeout_s: float) -> None:
    """A headless Service and `count` pods under it (hostname h<i>, subdomain the Service): each
    pod's name is chased from the moment the host sees its endpoint ready."""
    service = f"prop-hl-{token}"
    await asyncio.to_thread(made.service, service, headless=True)
    specs = [ProbeSpec(key=f"prop-{token}-{i}", libc="glibc", image=image, labels={"app": service},
                       hostname=f"h{i}", subdomain=service) for i in range(count)]
    c = cluster
    for spec in specs:
        await asyncio.to_thread(c.call, "create", "pods", namespace, c.core.create_namespaced_pod, namespace,
                                probes.manifest(spec, run_id))
        made.pods.append(spec.pod_name)
    pending = {spec.pod_name: f"{spec.hostname}.{service}.{namespace}.svc.{domain}." for spec in specs}
    slices = DiscoveryV1Api(c.api_client)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise K8sDnsError(f"pods {', '.join(sorted(pending))} of headless Service {namespace}/{service} not ready "
                              f"endpoints after {timeout_s:.0f} s; raise --k8sdns-pod-timeout if the cluster starts pods "
                              f"slowly")
        listed = await asyncio.to_thread(c.call, "list", "endpointslices", namespace,
                                         slices.list_namespaced_endpoint_slice, namespace,
                                         label_selector=f"kubernetes.io/service-name={service}")
        now = time.time_ns()
        endpoints = [e for sl in listed.items for e in sl.endpoints or []]
        turned = [pending.pop(e.target_ref.name) for e in endpoints
                  if e.target_ref is not None and e.target_ref.name in pending and e.conditions and e.conditions.ready]
        for name in turned:
            ready[name] = ("headless-pod", now)
        if turned:
            await monitor.chase(turned)
        await asyncio.sleep(READY_POLL_S)
