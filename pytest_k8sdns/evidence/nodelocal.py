"""Per-node evidence of a NodeLocal DNSCache, gathered through a probe pod on each node: does the
cache answer, is it healthy, does it cache. Each figure names its node."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from pytest_k8sdns.evidence import stats
from pytest_k8sdns.evidence.latency import ms
from pytest_k8sdns.evidence.measure import Measurement, Q
from pytest_k8sdns.probe.results import QueryResult

#: Ports of node-cache: its health check, its setup metrics, and CoreDNS's own metrics.
HEALTH_PORT = 8080
SETUP_METRICS_PORT = 9353
METRICS_PORT = 9253


class _Pod(Protocol):
    node: str

    def http_status(self, url: str, timeout_s: float = 10) -> tuple[int | str, str]: ...

    def query(self, server: str, name: str, **args: object) -> QueryResult: ...


def metric_sum(body: str, name: str, **labels: str) -> float:
    """The sum of one metric's samples in a Prometheus text body, over samples with these labels."""
    return sum(s.value for s in stats.parse_prometheus(body).get(name, [])
               if all(s.labels.get(k) == v for k, v in labels.items()))


@dataclasses.dataclass(frozen=True)
class Answer:
    node: str
    rcode: str  # the rcode, or why there was no reply
    latency_ms: float | None
    addresses: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.rcode == "NOERROR" and bool(self.addresses)

    def measurements(self) -> list[Measurement]:
        e = {"node": self.node}
        return [Measurement(f"rcode[{self.node}]", self.rcode, "", Q.NODELOCAL_RCODE, e),
                Measurement(f"latency_ms[{self.node}]", self.latency_ms, "ms", Q.NODELOCAL_LATENCY, e)]


def answer(pod: _Pod, local_ip: str, name: str, *, tcp: bool) -> Answer:
    """One A query of `name` to the cache on the pod's node."""
    reply = pod.query(local_ip, name, rdtype="A", tcp=tcp, timeout=2.0).replies[0]
    return Answer(pod.node, reply.rcode or reply.error or "?", ms(reply.latency_ns), tuple(reply.addresses()))


@dataclasses.dataclass(frozen=True)
class Health:
    node: str
    health: int | str  # the HTTP status of /health, or "unreachable: why"
    setup_errors: float | str  # coredns_nodecache_setup_errors_total, or why it could not be read

    @property
    def ok(self) -> bool:
        return self.health == 200 and self.setup_errors == 0

    def measurements(self) -> list[Measurement]:
        e = {"node": self.node}
        return [Measurement(f"health[{self.node}]", self.health, "", Q.NODELOCAL_HEALTH, e),
                Measurement(f"setup_errors[{self.node}]", self.setup_errors, "", Q.NODELOCAL_SETUP_ERRORS, e)]


def health(pod: _Pod, local_ip: str) -> Health:
    """/health and the setup-error counter of the cache on the pod's node."""
    status, _ = pod.http_status(f"http://{local_ip}:{HEALTH_PORT}/health", timeout_s=3)
    metrics, body = pod.http_status(f"http://{local_ip}:{SETUP_METRICS_PORT}/metrics", timeout_s=3)
    errors: float | str = metric_sum(body, "coredns_nodecache_setup_errors_total") if metrics == 200 else f"metrics {metrics}"
    return Health(pod.node, status, errors)


@dataclasses.dataclass(frozen=True)
class CacheHits:
    node: str
    new_hits: float | None  # None: the cache's metrics could not be read
    unreadable: int | str | None = None  # the HTTP status (or reason) when they could not

    def measurements(self) -> list[Measurement]:
        if self.new_hits is None:
            return []
        return [Measurement(f"new_hits[{self.node}]", self.new_hits, "", Q.NODELOCAL_CACHE_HITS, {"node": self.node})]


def cache_hits(pod: _Pod, local_ip: str, name: str, repeats: int = 3) -> CacheHits:
    """How much coredns_cache_hits_total of the cache on the pod's node grows over `repeats`
    identical queries."""
    status, before = pod.http_status(f"http://{local_ip}:{METRICS_PORT}/metrics", timeout_s=3)
    if status != 200:
        return CacheHits(pod.node, None, status)
    pod.query(local_ip, name, rdtype="A", count=repeats)
    _, after = pod.http_status(f"http://{local_ip}:{METRICS_PORT}/metrics", timeout_s=3)
    return CacheHits(pod.node, metric_sum(after, "coredns_cache_hits_total") - metric_sum(before, "coredns_cache_hits_total"))
