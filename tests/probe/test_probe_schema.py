"""Output validation and parsing, fed by the payload's own code with getaddrinfo stubbed (no DNS)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.probe import (
    LOOKUP_COLUMNS,
    PROBE_VERSION,
    InFlightLookup,
    LookupResult,
    LookupRow,
    ProbeInfo,
    Soa,
    Srv,
    parse_burst,
    parse_capture,
    parse_info,
    parse_lookup,
    parse_output,
    parse_query,
)
from pytest_k8sdns.probe.payload import query as payload_query
from pytest_k8sdns.probe.payload import wire
from pytest_k8sdns.probe.payload.__main__ import main as payload_main

FakeGai = Callable[..., list[tuple[Any, ...]]]


def fake_getaddrinfo(host: str, port: object, family: int = 0, type: int = 0, *rest: object) -> list[tuple[Any, ...]]:
    if host.startswith("missing"):
        raise socket.gaierror(-2, "Name or service not known")
    return [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 0)),
        (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("10.0.0.1", 0)),
    ]


def run_payload(capsys: pytest.CaptureFixture[str], command: str, args: dict[str, Any]) -> tuple[int, str]:
    code = payload_main([command, json.dumps(args)])
    return code, capsys.readouterr().out


@pytest.fixture
def stub_gai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)


def test_lookup_output_parses_into_rows(stub_gai: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_payload(capsys, "lookup", {"names": ["svc", "missing"], "count": 5, "concurrency": 2})
    assert code == 0
    doc = json.loads(out)
    assert doc["columns"] == list(LOOKUP_COLUMNS)
    result = parse_lookup(out)
    assert isinstance(result, LookupResult)
    assert len(result.rows) == 5 and result.totals.ok == 3 and result.totals.failed == 2
    assert sorted(row.name_index for row in result.rows) == [0, 0, 0, 1, 1]
    assert all(isinstance(row, LookupRow) and row.burst is None for row in result.rows)
    assert result.addresses == (("10.0.0.1",), None)
    assert result.errors == {-2: "gaierror: [Errno -2] Name or service not known"}
    assert {result.name_of(row) for row in result.rows if not row.ok} == {"missing"}


def test_burst_output_parses_with_burst_index(stub_gai: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_payload(capsys, "burst", {"names": ["a", "b", "c"], "bursts": 2, "parallel": 3, "interval_s": 0})
    assert code == 0
    result = parse_burst(out)
    assert [row.burst for row in result.rows] == [0, 0, 0, 1, 1, 1]
    assert result.bursts == 2 and result.parallel == 3
    assert result.addresses == (("10.0.0.1",),) * 3


def test_info_output_parses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_payload(capsys, "info", {})
    assert code == 0
    info = parse_info(out, where="pod p")
    assert isinstance(info, ProbeInfo) and info.libc in ("glibc", "musl")


def test_the_loop_adds_little_to_each_lookup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per-lookup cost of the payload's bookkeeping over a bare getaddrinfo loop, DNS stubbed out."""
    result = fake_getaddrinfo("x", None)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a: result)
    n = 50000
    gai = socket.getaddrinfo
    start = time.perf_counter_ns()
    for _ in range(n):
        gai("x", None, 0, 0)
    bare = (time.perf_counter_ns() - start) / n
    code, out = run_payload(capsys, "lookup", {"names": ["x"], "count": n})
    assert code == 0
    doc = json.loads(out)
    per_lookup = doc["totals"]["elapsed_ns"] / n
    print(f"payload {per_lookup:.0f} ns/lookup vs bare loop {bare:.0f} ns: overhead {per_lookup - bare:.0f} ns")
    assert per_lookup - bare < 20000


@pytest.mark.parametrize(
    ("command", "output", "message"),
    [
        ("info", "", r"probe info in pod p printed no JSON document \(got: 'nothing'\)"),
        ("info", "Traceback (most recent call last):\n", r"printed no JSON document \(got: 'Traceback"),
        (
            "lookup",
            '{"command":"lookup","probe_version":1,"error":"ArgError: missing argument \'names\'"}',
            r"probe lookup in pod p failed: ArgError: missing argument 'names'$",
        ),
        ("info", '{"command":"lookup","probe_version":1}', r"invalid output at \$"),
        ("query", '{"command":"query","probe_version":1,"server":"x","port":0}', r"invalid output at \$"),
    ],
)
def test_bad_output_raises_one_line_pod_error(command: str, output: str, message: str) -> None:
    with pytest.raises(PodError, match=message) as info:
        parse_output(command, output, where="pod p")
    assert "\n" not in str(info.value)


def _lookup_doc(rows: list[Any]) -> dict[str, Any]:
    return {
        "command": "lookup",
        "probe_version": PROBE_VERSION,
        "names": ["a"],
        "family": "any",
        "socktype": "any",
        "lookups": rows,
        "addresses": [["10.0.0.1"]],
        "errors": {},
        "totals": {"lookups": len(rows), "ok": len(rows), "failed": 0, "elapsed_ns": 10, "rate_per_s": 1.0},
        "columns": list(LOOKUP_COLUMNS),
        "qps": 0,
        "concurrency": 1,
        "count": 1,
        "duration_s": None,
        "stopped": "count",
        "stop_rule": None,
        "in_flight": [],
    }


@pytest.mark.parametrize("entry", [[0, 1], [1, 1, 2], [0, -1, 2], [0, 1, 2.5], [0, 1, 2, 0], "x"])
def test_bad_in_flight_lookups_are_caught(entry: Any) -> None:
    doc = {**_lookup_doc([[0, 0, 1, 1, 0, 1]]), "in_flight": [[0, 5, 6], entry]}
    with pytest.raises(PodError, match=r"invalid in-flight lookup at \$\.in_flight\[1\]"):
        parse_output("lookup", json.dumps(doc))
    assert parse_lookup(json.dumps({**doc, "in_flight": [[0, 5, 6]]})).in_flight == (InFlightLookup(0, 5, 6),)


@pytest.mark.parametrize(
    "row", [[0, 1, 2, 1, 0], [1, 1, 2, 1, 0, 1], [0, 1, 2, 2, 0, 1], [0, 1, -5, 1, 0, 1], [0, 1.5, 2, 1, 0, 1], "row"]
)
def test_bad_rows_are_caught(row: Any) -> None:
    with pytest.raises(PodError, match=r"invalid row at \$\.lookups\[1\]"):
        parse_output("lookup", json.dumps(_lookup_doc([[0, 0, 1, 1, 0, 1], row])))


def test_good_hand_written_lookup_doc() -> None:
    result = parse_lookup(json.dumps(_lookup_doc([[0, 0, 1500, 1, 0, 1]])))
    assert result.rows == (LookupRow(0, 0, 1500, True, 0, 1),)
    assert result.rows[0].latency_s == 1.5e-6


def test_query_and_record_docs_parse() -> None:
    query = {
        "command": "query",
        "probe_version": PROBE_VERSION,
        "server": "10.96.0.10",
        "port": 53,
        "name": "a",
        "qname": "a",
        "rdtype": "A",
        "tcp": False,
        "timeout": 2.0,
        "replies": [
            {
                "latency_ns": 5,
                "rcode": "NOERROR",
                "error": None,
                "flags": ["QR"],
                "answer": [
                    {"name": "a.", "ttl": 5, "class": "IN", "type": "A", "rdata": "10.0.0.1"},
                    {"name": "a.", "ttl": 5, "class": "IN", "type": "TXT", "rdata": '"x"', "fields": {"strings": ["x"]}},
                ],
                "authority": [],
                "additional": [],
            }
        ],
        "totals": {"queries": 1, "ok": 1, "failed": 0},
    }
    parsed = parse_query(json.dumps(query))
    assert parsed.replies[0].addresses() == ("10.0.0.1",) and parsed.replies[0].ok
    assert parsed.replies[0].answers == ("a. 5 IN A 10.0.0.1", 'a. 5 IN TXT "x"')
    assert parsed.replies[0].rdata("TXT") == ['"x"'] and parsed.replies[0].records("TXT")[0].fields == {
        "strings": ("x",)
    }
    record: dict[str, Any] = {
        "command": "capture",
        "probe_version": PROBE_VERSION,
        "listen": "127.0.0.1",
        "upstream": ["10.96.0.10"],
        "port": 53,
        "family": "any",
        "resolv_conf": "nameserver 127.0.0.1\n",
        "warnings": [],
        "parser": "dnspython",
        "columns": ["qname", "qtype", "proto"],
        "lookups": [
            {
                "name": "a",
                "ok": True,
                "error_code": 0,
                "error": None,
                "addresses": ["10.0.0.1"],
                "latency_ns": 9,
                "queries": [["a.x.", "A", "udp"], ["a.x.", "AAAA", "udp"], ["a.", "A", "tcp"]],
                "rcodes": ["NXDOMAIN", "NXDOMAIN", None],
                "late_queries": 0,
            }
        ],
        "unattributed": [],
        "dropped": 0,
        "unanswered": 0,
        "resent": 0,
    }
    rec = parse_capture(json.dumps(record))
    assert rec.lookups[0].qnames == ("a.x.", "a.")
    assert [q.rcode for q in rec.lookups[0].queries] == ["NXDOMAIN", "NXDOMAIN", None]
    record["lookups"][0]["queries"][0] = ["a.x.", "A", "sctp"]
    with pytest.raises(PodError, match=r"invalid output at \$\.lookups\[0\]\.queries\[0\]"):
        parse_capture(json.dumps(record))


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("api.example.test.default.svc.cluster.local.", "A"),
        ("x.", "AAAA"),
        ("_http._tcp.svc.ns.svc.cluster.local.", "SRV"),
        ("1.0.96.10.in-addr.arpa.", "PTR"),
        ("a.", "TYPE999"),
        ("UPPER.Case.", "HINFO"),
    ],
)
def test_builtin_question_parser_agrees_with_dnspython(name: str, rdtype: str) -> None:
    wire_bytes = dns.message.make_query(name, rdtype, use_edns=0).to_wire()
    assert wire.question_builtin(wire_bytes) == (name, rdtype)
    reader = wire.Reader()
    assert reader.name == "dnspython" and reader.question(wire_bytes) == (name, rdtype)


@pytest.mark.parametrize("rcode", [dns.rcode.NOERROR, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN, dns.rcode.REFUSED])
def test_builtin_rcode_agrees_with_dnspython(rcode: dns.rcode.Rcode) -> None:
    reply = dns.message.make_response(dns.message.make_query("a.example.", "A"))
    reply.set_rcode(rcode)
    wire_bytes = reply.to_wire()
    assert wire.rcode_builtin(wire_bytes) == wire.Reader().rcode(wire_bytes) == dns.rcode.to_text(rcode)


def _reply_doc(text: str, section: str = "answer") -> dict[str, Any]:
    """A query document with one reply whose `section` holds the records of zone text, made by the
    payload's own code from dnspython's reading of it."""
    rrsets = []
    for line in text.strip().splitlines():
        name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
        rrsets.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata))
    dns_module = payload_query.dnspython()
    sections = {"answer": [], "authority": [], "additional": []}
    sections[section] = payload_query.records(dns_module, rrsets)
    reply = {"latency_ns": 1, "rcode": "NOERROR", "error": None, "flags": ["QR"], **sections}
    return {
        "command": "query", "probe_version": PROBE_VERSION, "server": "10.96.0.10", "port": 53, "name": "n",
        "qname": "n.", "rdtype": "A", "tcp": False, "timeout": 1.0, "replies": [reply],
        "totals": {"queries": 1, "ok": 1, "failed": 0},
    }  # fmt: skip


def test_structured_records_answer_without_splitting_text() -> None:
    doc = _reply_doc(
        """
        web.ns.svc.cluster.local. 30 IN A 10.96.5.5
        web.ns.svc.cluster.local. 30 IN A 10.96.5.6
        _http._tcp.web.ns.svc.cluster.local. 30 IN SRV 0 100 80 web.ns.svc.cluster.local.
        5.5.96.10.in-addr.arpa. 30 IN PTR web.ns.svc.cluster.local.
        dns-version.cluster.local. 30 IN TXT "1.1.0"
        ext.ns.svc.cluster.local. 30 IN CNAME api.example.test.
        """
    )
    (reply,) = parse_query(json.dumps(doc)).replies
    assert reply.rdata("A") == ["10.96.5.5", "10.96.5.6"] and reply.addresses() == ("10.96.5.5", "10.96.5.6")
    assert reply.srv() == [Srv("_http._tcp.web.ns.svc.cluster.local.", 30, 0, 100, 80, "web.ns.svc.cluster.local.")]
    assert reply.rdata("SRV") == ["0 100 80 web.ns.svc.cluster.local."]
    assert reply.rdata("ptr") == ["web.ns.svc.cluster.local."]
    assert reply.rdata("TXT") == ['"1.1.0"'] and reply.records("TXT")[0].fields == {"strings": ("1.1.0",)}
    assert reply.rdata("CNAME") == ["api.example.test."]
    assert reply.answers[0] == "web.ns.svc.cluster.local. 30 IN A 10.96.5.5" and set(reply.ttls) == {30}
    assert reply.soa() is None and reply.negative_ttl() is None and reply.records(section="authority") == []


def test_negative_answer_gives_its_soa_and_denial_ttl() -> None:
    doc = _reply_doc(
        "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 30",
        section="authority",
    )
    (reply,) = parse_query(json.dumps(doc)).replies
    assert reply.soa() == Soa(
        "cluster.local.", 5, "ns.dns.cluster.local.", "hostmaster.cluster.local.", 1700000000, 7200, 1800, 86400, 30
    )
    assert reply.negative_ttl() == 5 and reply.answers == () and reply.rdata("A") == []


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({"name": "a.", "ttl": 5, "class": "IN", "type": "SRV", "rdata": "0 1 80 t."}, r"answer\[0\]"),
        (
            {"name": "a.", "ttl": 5, "class": "IN", "type": "SRV", "rdata": "0 1 80 t.",
             "fields": {"priority": 0, "weight": 1, "port": "80", "target": "t."}},
            r"answer\[0\]\.fields\.port",
        ),
        ({"name": "a.", "ttl": -1, "class": "IN", "type": "A", "rdata": "10.0.0.1"}, r"answer\[0\]\.ttl"),
    ],
)  # fmt: skip
def test_bad_records_are_caught(record: dict[str, Any], where: str) -> None:
    doc = _reply_doc("a. 5 IN A 10.0.0.1")
    doc["replies"][0]["answer"] = [record]
    with pytest.raises(PodError, match=r"invalid output at \$\.replies\[0\]\." + where):
        parse_query(json.dumps(doc))
