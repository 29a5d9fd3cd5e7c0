"""The root-cause summary of a run: lower-level causes first, each with the failed checks it affected."""

from __future__ import annotations

from pytest_k8sdns.report import summary
from pytest_k8sdns.verdict.rootcause import OWNER, lines, summarise

REPLICA = {"kind": "replica", "where": "coredns-a", "proto": "udp", "owner": OWNER,
           "text": "replica coredns-a (10.244.1.2 on worker, Ready) answered 0 of 40 UDP queries from 2 nodes"}


def check(nodeid: str, outcome: str, message: str = "", name: str = "") -> dict[str, object]:
    return {"nodeid": nodeid, "outcome": outcome, "message": message,
            "name": name or nodeid.split("::")[-1].split("[")[0]}


CHECKS = [
    check("test_replicas.py::test_every_replica_answers[udp]", "failed", REPLICA["text"]),
    check("test_records.py::test_service_a", "failed", "... spoiled by no reply ... root cause: replica coredns-a (...)"),
    check("test_records.py::test_service_srv", "failed", "SRV missing: expected port 80"),
    check("test_records.py::test_service_ptr", "passed"),
    check("test_latency.py::test_lookup_latency[glibc]", "failed", "worker: 3 of 9 failed. Root cause: replica coredns-a"),
]


def test_a_cause_lists_the_failed_checks_that_name_it_but_not_its_owner() -> None:
    found = summarise([REPLICA, REPLICA], CHECKS)  # measured over two protocols: said once
    assert len(found) == 1
    assert found[0]["affected"] == ["test_latency.py::test_lookup_latency[glibc]", "test_records.py::test_service_a"]


def test_a_name_is_matched_whole() -> None:
    other = {**REPLICA, "where": "coredns-a2"}
    assert summarise([other], CHECKS)[0]["affected"] == []


def test_crashed_dns_pods_come_first() -> None:
    pods = check("test_loop.py::test_dns_pods_ready", "failed", "coredns-a not Ready: CrashLoopBackOff")
    found = summarise([REPLICA], [pods, *CHECKS])
    assert [c["kind"] for c in found] == ["pods", "replica"]
    assert "CrashLoopBackOff" in found[0]["text"]


def test_no_cause_no_section() -> None:
    assert summarise([], CHECKS[2:4]) == []
    assert summary._root_causes({"root_causes": []}) == ""


def test_terminal_and_html_say_cause_then_checks() -> None:
    found = summarise([REPLICA], CHECKS)
    said = lines(found)
    assert said[0].startswith("replica coredns-a") and said[1].startswith("  affected 2 checks: ")
    page = summary._root_causes({"root_causes": found})
    assert page.index("Root cause") < page.index("replica coredns-a") < page.index("affected 2 checks")
