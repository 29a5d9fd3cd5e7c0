"""The node x replica matrix: cells from raw replies, and where it places the failures."""

from __future__ import annotations

from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.evidence.replicas import SERVICE, Cell, Matrix, Server, cell, matrix
from pytest_k8sdns.probe.results import DnsRecord, QueryReply, QueryResult

SVC = Server(SERVICE, "10.96.0.10")
A = Server("coredns-a", "10.244.1.2", "worker")
B = Server("coredns-b", "10.244.2.3", "worker2")
KUBERNETES = "kubernetes.default.svc.cluster.local."


def reply(*addresses: str, rcode: str | None = "NOERROR", ms: float = 1.0) -> QueryReply:
    if rcode is None:
        return QueryReply(int(5000 * 1e6), None, "timeout", ())
    answer = tuple(DnsRecord(KUBERNETES, 30, "IN", "A", a) for a in addresses)
    return QueryReply(int(ms * 1e6), rcode, None, ("qr", "aa", "rd"), answer)


def result(server: Server, *replies: QueryReply) -> QueryResult:
    return QueryResult(server.ip, 53, KUBERNETES, KUBERNETES, "A", False, 2.0, replies)


def c(node: str, server: str, sent: int = 10, answered: int | None = None, servfail: int = 0,
      answers: frozenset[str] = frozenset({"10.96.0.1"})) -> Cell:
    answered = sent if answered is None else answered
    rcodes = {"NOERROR": answered - servfail, **({"SERVFAIL": servfail} if servfail else {})}
    return Cell(node, server, sent, answered, rcodes, answers if answered > servfail else frozenset(),
                (1.0,) * answered)


def grid(bad: set[tuple[str, str]], nodes: tuple[str, ...] = ("worker", "worker2", "worker3"),
         servers: tuple[Server, ...] = (SVC, A, B)) -> Matrix:
    cells = tuple(c(n, s.name, answered=0 if (n, s.name) in bad else None) for n in nodes for s in servers)
    return Matrix("udp", servers, cells)


def test_a_cell_counts_lost_replies_servfail_and_the_noerror_answers() -> None:
    replies = (reply("10.96.0.1", ms=2.0), reply("10.96.0.1", "10.96.0.2", ms=4.0), reply(rcode=None),
               reply(rcode="SERVFAIL", ms=3.0), reply(rcode="NXDOMAIN", ms=1.5))
    got = cell("worker", A.name, result(A, *replies))
    assert (got.sent, got.answered, got.lost, got.servfail) == (5, 4, 1, 1)
    assert got.rcodes == {"NOERROR": 2, "SERVFAIL": 1, "NXDOMAIN": 1}
    assert got.answers == frozenset({"10.96.0.1", "10.96.0.2"})
    assert got.latencies_ms == (2.0, 4.0, 3.0, 1.5)
    assert got.shown() == "4 of 5 answered, 1 SERVFAIL"


def test_a_cell_is_bad_past_the_error_rate_only() -> None:
    assert not c("n", "r", sent=1000, answered=999).bad(0.001)
    assert c("n", "r", sent=1000, answered=998).bad(0.001)
    assert c("n", "r", sent=10, servfail=1).bad(0.0)
    assert not c("n", "r", sent=0, answered=0).bad(0.0)
    assert not c("n", "r").bad(0.0)


def test_a_healthy_matrix_blames_nothing() -> None:
    assert grid(set()).causes(0.001) == []


def test_a_replica_bad_from_every_node_is_named_as_the_replica() -> None:
    causes = grid({(n, A.name) for n in ("worker", "worker2", "worker3")}).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("replica", "coredns-a")]
    assert causes[0].text == ("replica coredns-a (10.244.1.2 on worker, Ready) answered 0 of 30 UDP queries from "
                              "3 nodes; the other 1 replica: answered 30 of 30")


def test_a_node_bad_to_every_replica_is_named_as_the_node() -> None:
    causes = grid({("worker2", A.name), ("worker2", B.name)}).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("node", "worker2")]
    assert causes[0].text == ("worker2: its clients' UDP queries to 2 replicas answered 0 of 20; "
                              "the other 2 nodes: answered 40 of 40")


def test_a_single_bad_cell_is_one_path() -> None:
    causes = grid({("worker3", B.name)}).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("path", "worker3 -> coredns-b")]
    assert causes[0].text == "from worker3 to replica coredns-b (10.244.2.3 on worker2, Ready): 0 of 10 answered UDP queries"


def test_a_bad_replica_and_a_bad_node_are_each_named_once_and_their_cells_not_again_as_paths() -> None:
    bad = {(n, A.name) for n in ("worker", "worker2", "worker3")} | {("worker3", B.name)}
    causes = grid(bad).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("replica", "coredns-a"), ("node", "worker3")]


def test_the_service_failing_where_every_replica_answers_is_the_services_own_cause() -> None:
    # stale kube-proxy rules for the DNS ClusterIP: the replicas answer, the Service does not
    causes = grid({(n, SERVICE) for n in ("worker", "worker2", "worker3")}).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("service", "the Service")]
    assert "the Service's endpoints or kube-proxy" in causes[0].text
    one = grid({("worker2", SERVICE)}).causes(0.001)
    assert [(x.kind, x.where) for x in one] == [("service", "worker2")]
    assert "kube-proxy's rules for the Service on worker2" in one[0].text


def test_a_silent_replica_explains_the_services_losses() -> None:
    bad = {(n, A.name) for n in ("worker", "worker2", "worker3")} | {(n, SERVICE) for n in ("worker", "worker2")}
    assert [x.kind for x in grid(bad).causes(0.001)] == ["replica"]


def test_one_node_and_one_replica_is_no_replica_answers_not_a_guess() -> None:
    causes = grid({("worker", A.name)}, nodes=("worker",), servers=(SVC, A)).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("all", "every replica")]


def test_a_not_ready_replica_says_so() -> None:
    sick = Server("coredns-a", "10.244.1.2", "worker", ready=False)
    causes = grid({(n, A.name) for n in ("worker", "worker2", "worker3")}, servers=(SVC, sick, B)).causes(0.001)
    assert "(10.244.1.2 on worker, not Ready)" in causes[0].text


def test_an_answer_that_differs_from_the_services_is_named() -> None:
    stale = frozenset({"10.96.0.99"})
    cells = (c("worker", SERVICE), c("worker", A.name), c("worker", B.name, answers=stale),
             c("worker2", SERVICE), c("worker2", A.name), c("worker2", B.name, answers=stale))
    causes = Matrix("udp", (SVC, A, B), cells).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("answer", "coredns-b")] * 2
    assert causes[0].text == ("replica coredns-b (10.244.2.3 on worker2, Ready) answered ['10.96.0.99'] from worker; "
                              "the Service answers ['10.96.0.1']")


def test_the_expected_answer_is_the_one_most_nodes_got_through_the_service() -> None:
    odd = frozenset({"10.96.0.7"})
    cells = (c("n1", SERVICE, answers=odd), c("n2", SERVICE), c("n3", SERVICE), c("n4", SERVICE, answered=0))
    assert Matrix("udp", (SVC,), cells).expected_answer() == frozenset({"10.96.0.1"})
    assert Matrix("udp", (SVC,), ()).expected_answer() == frozenset()


def test_one_node_bad_to_every_replica_is_said_once_not_per_replica() -> None:
    # one node sees no replica answer: which of the two is at fault cannot be told, so it is said once
    causes = grid({("worker", A.name), ("worker", B.name)}, nodes=("worker",)).causes(0.001)
    assert [(x.kind, x.where) for x in causes] == [("all", "every replica")]
    assert "from 1 node to 2 replicas" in causes[0].text


def test_measurements_per_replica_and_lost_per_node() -> None:
    m = matrix("udp", (SVC, A), {
        ("worker", SERVICE): result(SVC, reply("10.96.0.1", ms=1.0), reply(rcode=None)),
        ("worker", A.name): result(A, reply("10.96.0.1", ms=2.0), reply("10.96.0.1", ms=4.0)),
        ("worker2", A.name): result(A, reply(rcode=None), reply(rcode=None)),
    })
    got = {x.name: x for x in m.measurements()}
    assert list(got) == ["answered[service/udp]", "sent[service/udp]", "p50_ms[service/udp]", "p99_ms[service/udp]",
                         "answered[coredns-a/udp]", "sent[coredns-a/udp]", "p50_ms[coredns-a/udp]",
                         "p99_ms[coredns-a/udp]", "lost[worker/udp]", "lost[worker2/udp]"]
    assert (got["answered[coredns-a/udp]"].value, got["sent[coredns-a/udp]"].value) == (2, 4)
    assert (got["p50_ms[coredns-a/udp]"].value, got["p99_ms[coredns-a/udp]"].value) == (2.0, 4.0)
    assert got["answered[coredns-a/udp]"].quantity == Q.REPLICA_ANSWERED
    assert got["p99_ms[coredns-a/udp]"].unit == "ms"
    assert got["answered[coredns-a/udp]"].entity == {"replica": "coredns-a", "proto": "udp"}
    assert (got["lost[worker/udp]"].value, got["lost[worker2/udp]"].value) == (1, 2)  # the Service's loss counts too
    assert got["lost[worker2/udp]"].entity == {"node": "worker2", "proto": "udp"}
    assert got["lost[worker2/udp]"].quantity == Q.NODE_LOST


def test_a_replica_with_no_answers_has_no_latency_figures() -> None:
    m = matrix("tcp", (A,), {("worker", A.name): result(A, reply(rcode=None))})
    assert [x.name for x in m.measurements()] == ["answered[coredns-a/tcp]", "sent[coredns-a/tcp]", "lost[worker/tcp]"]


def test_the_table_is_node_by_server_with_blanks_where_nothing_was_asked() -> None:
    m = Matrix("udp", (SVC, A, B), (c("worker", SERVICE), c("worker", A.name, answered=7), c("worker2", B.name)))
    assert m.table() == (["node", "service", "coredns-a", "coredns-b"],
                         [["worker", "10/10", "7/10", ""], ["worker2", "", "", "10/10"]])
