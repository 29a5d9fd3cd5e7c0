"""Every node against every cluster-DNS replica: the matrix of direct queries, and where in it the
failure is. A replica bad from every node is the replica; a node bad to every replica is the node
(its clients' path); what is left is one path between them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from pytest_k8sdns.evidence import stats
from pytest_k8sdns.evidence.latency import ms, shown
from pytest_k8sdns.evidence.measure import Measurement, Q
from pytest_k8sdns.probe.results import QueryResult

#: The column of the matrix that holds the answers through the cluster DNS Service itself.
SERVICE = "service"


@dataclasses.dataclass(frozen=True)
class Server:
    """A column of the matrix: one replica by pod IP, or the Service."""

    name: str  # the pod name, or SERVICE
    ip: str
    node: str = ""  # where the replica runs
    ready: bool = True

    @property
    def label(self) -> str:
        if self.name == SERVICE:
            return f"the Service {self.ip}"
        return f"replica {self.name} ({self.ip} on {self.node}, {'Ready' if self.ready else 'not Ready'})"


@dataclasses.dataclass(frozen=True)
class Cell:
    """The queries of one node to one server over one protocol."""

    node: str
    server: str
    sent: int
    answered: int
    rcodes: Mapping[str, int]
    answers: frozenset[str]  # the A addresses of the NOERROR replies, together
    latencies_ms: tuple[float, ...]

    @property
    def lost(self) -> int:
        return self.sent - self.answered

    @property
    def servfail(self) -> int:
        return self.rcodes.get("SERVFAIL", 0)

    def bad(self, max_error_rate: float) -> bool:
        failed = self.lost + self.servfail
        return failed > 0 and failed / max(self.sent, 1) > max_error_rate

    def shown(self) -> str:
        extra = f", {self.servfail} SERVFAIL" if self.servfail else ""
        return f"{self.answered} of {self.sent} answered{extra}"


def cell(node: str, server: str, result: QueryResult) -> Cell:
    answered = [r for r in result.replies if r.ok]
    rcodes: dict[str, int] = {}
    for reply in answered:
        rcodes[reply.rcode or ""] = rcodes.get(reply.rcode or "", 0) + 1
    answers = frozenset(a for r in answered if r.rcode == "NOERROR" for a in r.rdata("A"))
    return Cell(node, server, len(result.replies), len(answered), rcodes, answers,
                tuple(ms(r.latency_ns) or 0.0 for r in answered))


@dataclasses.dataclass(frozen=True)
class Cause:
    """One place the matrix blames: a replica, a node's clients, or one path between them."""

    kind: str  # "replica", "node", "path", "answer"
    where: str  # the replica's pod name, the node's name, or "node -> replica"
    text: str


@dataclasses.dataclass(frozen=True)
class Matrix:
    proto: str
    servers: tuple[Server, ...]
    cells: tuple[Cell, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.node for c in self.cells))

    @property
    def replicas(self) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if s.name != SERVICE)

    def at(self, node: str, server: str) -> Cell | None:
        return next((c for c in self.cells if c.node == node and c.server == server), None)

    def column(self, server: str) -> list[Cell]:
        return [c for c in self.cells if c.server == server]

    def row(self, node: str, replicas_only: bool = True) -> list[Cell]:
        return [c for c in self.cells if c.node == node and (c.server != SERVICE or not replicas_only)]

    def expected_answer(self) -> frozenset[str]:
        """The Service's answer as most nodes got it."""
        seen = [c.answers for c in self.column(SERVICE) if c.answers]
        return max(seen, key=seen.count) if seen else frozenset()

    def causes(self, max_error_rate: float) -> list[Cause]:
        """Where the failures are, replicas first, then nodes, then single paths; answers that
        differ from the Service's last."""
        out: list[Cause] = []
        explained: set[tuple[str, str]] = set()
        replicas, nodes = self.replicas, self.nodes
        bad_column = {s.name: bool(self.column(s.name)) and all(c.bad(max_error_rate) for c in self.column(s.name))
                      for s in replicas}
        bad_row = {n: bool(self.row(n)) and all(c.bad(max_error_rate) for c in self.row(n)) for n in nodes}
        everything = bool(replicas) and all(bad_column.values())
        if everything:
            # nothing answers anyone: neither one replica nor one node, but the cluster DNS as a whole
            cells = [c for s in replicas for c in self.column(s.name)]
            out.append(Cause("all", "every replica", f"no replica answers: {_sum(cells)} {self.proto.upper()} queries "
                                                     f"from {_count(len(nodes), 'node')} to "
                                                     f"{_count(len(replicas), 'replica')}"))
            explained |= {(c.node, c.server) for c in cells}
        for server in replicas:
            column = self.column(server.name)
            others_fine = any(not bad_column[s.name] for s in replicas if s.name != server.name)
            if everything or not bad_column[server.name] or not others_fine:
                continue  # "all" said it already, or no other replica answers either
            others = [c for s in replicas if s.name != server.name for c in self.column(s.name)]
            rest = f"; the other {_count(len(replicas) - 1, 'replica')}: {_sum(others)}" if others else ""
            out.append(Cause("replica", server.name, f"{server.label} {_sum(column)} {self.proto.upper()} queries "
                                                     f"from {_count(len(column), 'node')}{rest}"))
            explained |= {(c.node, c.server) for c in column}
        for node in nodes:
            row = [c for c in self.row(node) if (c.node, c.server) not in explained]
            others_fine = any(not bad_row[n] for n in nodes if n != node)
            if not row or not all(c.bad(max_error_rate) for c in row):
                continue
            if not others_fine:
                continue  # every node is as bad: the path causes below say it without guessing
            others = [c for n in nodes if n != node for c in self.row(n)]
            rest = f"; the other {_count(len(nodes) - 1, 'node')}: {_sum(others)}" if others else ""
            out.append(Cause("node", node, f"{node}: its clients' {self.proto.upper()} queries to "
                                           f"{_count(len(row), 'replica')} {_sum(row)}{rest}"))
            explained |= {(c.node, c.server) for c in row}
        for c in self.cells:
            if c.server != SERVICE and (c.node, c.server) not in explained and c.bad(max_error_rate):
                server = next(s for s in self.servers if s.name == c.server)
                out.append(Cause("path", f"{c.node} -> {c.server}", f"from {c.node} to {server.label}: {c.shown()} "
                                                                     f"{self.proto.upper()} queries"))
        out += self._service_causes(max_error_rate)
        want = self.expected_answer()
        for c in self.cells:
            if self._differs(c, want):
                server = next(s for s in self.servers if s.name == c.server)
                out.append(Cause("answer", c.server, f"{server.label} answered {sorted(c.answers)} from {c.node}; "
                                                     f"the Service answers {sorted(want)}"))
        return out

    def _service_causes(self, max_error_rate: float) -> list[Cause]:
        """The Service IP failing where every replica answers directly: the Service's own path (its
        endpoints, or kube-proxy's rules on the node), which no replica or node cause explains."""
        bad = [c for c in self.column(SERVICE) if c.bad(max_error_rate)
               and not any(r.bad(max_error_rate) for r in self.row(c.node))]
        if not bad:
            return []
        service = next(s for s in self.servers if s.name == SERVICE)
        replicas = [r for c in bad for r in self.row(c.node)]
        if len(bad) == len(self.nodes) and len(bad) > 1:
            return [Cause("service", "the Service", f"{service.label} {_sum(bad)} {self.proto.upper()} queries from "
                                                    f"{_count(len(bad), 'node')}, while its replicas asked directly "
                                                    f"{_sum(replicas)}: the Service's endpoints or kube-proxy")]
        return [Cause("service", c.node, f"{c.node}: {service.label} {_sum([c])} {self.proto.upper()} queries, while "
                                         f"its replicas asked directly {_sum(self.row(c.node))}: kube-proxy's rules "
                                         f"for the Service on {c.node}") for c in bad]

    def failing_nodes(self, max_error_rate: float) -> list[str]:
        """Nodes with a bad cell: their part of the check failed (a silent replica fails every node)."""
        want = self.expected_answer()
        return [n for n in self.nodes if any(c.bad(max_error_rate) or self._differs(c, want) for c in self.row(n, False))]

    @staticmethod
    def _differs(c: Cell, want: frozenset[str]) -> bool:
        return bool(c.server != SERVICE and c.answers and want and c.answers != want)

    def measurements(self) -> list[Measurement]:
        """Per replica: answered share and latency; per node: lost queries."""
        out: list[Measurement] = []
        for server in self.servers:
            column = self.column(server.name)
            latencies = [x for c in column for x in c.latencies_ms]
            entity = {"replica": server.name, "proto": self.proto}
            key = f"{server.name}/{self.proto}"
            out.append(Measurement(f"answered[{key}]", sum(c.answered for c in column), "", Q.REPLICA_ANSWERED, entity))
            out.append(Measurement(f"sent[{key}]", sum(c.sent for c in column), "", Q.REPLICA_SENT, entity))
            if latencies:
                out.append(Measurement(f"p50_ms[{key}]", shown(stats.percentile(latencies, 50)), "ms",
                                       Q.REPLICA_P50, entity))
                out.append(Measurement(f"p99_ms[{key}]", shown(stats.percentile(latencies, 99)), "ms",
                                       Q.REPLICA_P99, entity))
        for node in self.nodes:
            row = self.row(node, replicas_only=False)
            out.append(Measurement(f"lost[{node}/{self.proto}]", sum(c.lost for c in row), "", Q.NODE_LOST,
                                   {"node": node, "proto": self.proto}))
        return out

    def table(self) -> tuple[list[str], list[list[object]]]:
        """node x server: answered of sent, for the report."""
        header = ["node", *(s.name for s in self.servers)]
        rows: list[list[object]] = []
        for node in self.nodes:
            row: list[object] = [node]
            for s in self.servers:
                c = self.at(node, s.name)
                row.append(f"{c.answered}/{c.sent}" if c else "")
            rows.append(row)
        return header, rows


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _sum(cells: Sequence[Cell]) -> str:
    answered, sent = sum(c.answered for c in cells), sum(c.sent for c in cells)
    servfail = sum(c.servfail for c in cells)
    return f"answered {answered} of {sent}" + (f" ({servfail} SERVFAIL)" if servfail else "")


def matrix(proto: str, servers: Sequence[Server], results: Mapping[tuple[str, str], QueryResult]) -> Matrix:
    """From {(node, server name): QueryResult}."""
    cells = tuple(cell(node, server, r) for (node, server), r in results.items())
    return Matrix(proto, tuple(servers), cells)
