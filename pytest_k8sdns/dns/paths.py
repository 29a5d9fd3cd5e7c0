"""Every path from a node to the cluster DNS: direct queries from each node's probe to each
cluster-DNS pod by its IP, and to the Service, over UDP and TCP. Measured once per protocol and
kept, because the checks that are spoiled by a transport failure ask it for the root cause."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.evidence.replicas import SERVICE, Cause, Matrix, Server, matrix
from pytest_k8sdns.probe.fleet import Fleet, within_budget
from pytest_k8sdns.probe.pods import ProbePod
from pytest_k8sdns.probe.results import QueryResult
from pytest_k8sdns.verdict.rootcause import OWNER

#: Direct queries per node and server: 20 see a 30 % loss with certainty 1 - 0.7^20 (99.9 %).
QUERIES = {"udp": 20, "tcp": 10}
#: A reply slower than this counts as lost: ten times the default p99 bound.
TIMEOUT_S = 1.0
#: Queries per second of one probe to one server.
RATE = 50.0


class DnsPaths:
    """The node x replica matrices of one run, measured on first use."""

    def __init__(self, fleet: Fleet, coredns: CoreDNSInspector, name: str, max_error_rate: float) -> None:
        self.fleet = fleet
        self.coredns = coredns
        self.name = name
        self.max_error_rate = max_error_rate
        self._matrices: dict[str, Matrix] = {}
        self._lock = threading.Lock()

    def servers(self) -> list[Server]:
        # Ready replicas only: a replica that is not Ready is out of the Service (test_dns_pods_ready
        # owns it); one that is Ready must answer
        replicas = [Server(p.name, p.ip, p.node, p.ready) for p in self.coredns.pods() if p.ip and p.ready]
        return [Server(SERVICE, self.coredns.provider.cluster_ip), *sorted(replicas, key=lambda s: s.name)]

    def matrix(self, proto: str) -> Matrix:
        with self._lock:
            if proto not in self._matrices:
                self._matrices[proto] = self._measure(proto)
            return self._matrices[proto]

    def _measure(self, proto: str) -> Matrix:
        servers = self.servers()
        count = QUERIES[proto]
        interval_s = within_budget(1 / RATE, len(servers), self.fleet.budget_qps)  # all servers at once

        def from_node(pod: ProbePod) -> dict[str, QueryResult]:
            # every server at once, an exec each: a lossy path's timeouts are waited out side by side
            with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="k8sdns-paths") as pool:
                futures = {s.name: pool.submit(pod.query, s.ip, self.name, rdtype="A", tcp=proto == "tcp",
                                               count=count, timeout=TIMEOUT_S, interval_s=interval_s) for s in servers}
                return {name: future.result() for name, future in futures.items()}

        per_node = self.fleet.each("glibc", from_node, qps_per_probe=len(servers) / interval_s,
                                   execs_per_probe=len(servers))
        return matrix(proto, servers, {(node, s): r for node, by_server in per_node.items() for s, r in by_server.items()})

    def found(self) -> list[dict[str, str]]:
        """The causes of the matrices measured so far (none is measured here), for the run's summary."""
        with self._lock:
            matrices = list(self._matrices.values())
        return [{"kind": c.kind, "where": c.where, "text": c.text, "proto": m.proto, "owner": OWNER}
                for m in matrices for c in m.causes(self.max_error_rate)]

    def causes(self, protos: Sequence[str] = ("udp", "tcp")) -> list[Cause]:
        """Where the transport to the cluster DNS fails, over both protocols."""
        return [c for proto in protos for c in self.matrix(proto).causes(self.max_error_rate)]
