"""The real payload, run with the host's glibc Python in a private netns against real unbound."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from probe_netns_support import (
    API_A,
    API_AAAA,
    DNS_IP,
    EAI_NONAME,
    KUBERNETES_IP,
    RECORDER_IP,
    SEARCH_ONLY_IP,
    ProbeRunner,
    expected_qnames,
    forwarder_resolv_conf,
    lossy_nameserver,
    old_pythons,
    pod_resolv_conf,
)

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.probe import (
    CaptureResult,
    HttpResult,
    LookupResult,
    ProbeInfo,
    QueryResult,
    parse_output,
)


def capture(probe: ProbeRunner, names: list[str], resolv_conf: str, **args: object) -> CaptureResult:
    result = probe.run("capture", {"upstream": [DNS_IP], "names": names, **args}, resolv_conf=resolv_conf)
    assert isinstance(result, CaptureResult)
    assert result.warnings == ()
    assert result.dropped == 0
    return result


def a_aaaa(qnames: Collection[str], proto: str = "udp") -> list[list[str]]:
    return [[qname, qtype, proto] for qname in qnames for qtype in ("A", "AAAA")]


# ---- info ---------------------------------------------------------------------------------------


def test_info_reports_glibc_and_the_pod_resolv_conf(probe: ProbeRunner) -> None:
    text = pod_resolv_conf()
    info = probe.run("info", resolv_conf=text)
    assert isinstance(info, ProbeInfo)
    assert info.libc == "glibc"
    assert info.libc_version and info.libc_version[0].isdigit()
    assert info.resolv_conf == text
    assert info.pid > 1
    assert info.dnspython


# ---- lookup -------------------------------------------------------------------------------------


def test_lookup_resolves_partial_names_through_the_search_list(probe: ProbeRunner) -> None:
    names = ["kubernetes.default", "onlysearch", "kubernetes.default.svc.cluster.local.", "no-such-svc"]
    result = probe.run("lookup", {"names": names, "count": 8})
    assert isinstance(result, LookupResult)
    assert result.names == tuple(names)
    assert [row.name_index for row in result.rows] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert result.addresses == ((KUBERNETES_IP,), (SEARCH_ONLY_IP,), (KUBERNETES_IP,), None)
    ok = [row for row in result.rows if row.ok]
    assert [row.n_addrs for row in ok] == [1] * 6
    failed = [row for row in result.rows if not row.ok]
    assert [(row.name_index, row.error_code) for row in failed] == [(3, EAI_NONAME), (3, EAI_NONAME)]
    assert EAI_NONAME in result.errors
    assert result.totals.lookups == 8 and result.totals.ok == 6 and result.totals.failed == 2
    assert result.stopped == "count"
    starts = [row.start_offset_ns for row in result.rows]
    assert starts == sorted(starts) and all(row.latency_ns > 0 for row in result.rows)


def test_lookup_paced_to_qps_for_a_duration(probe: ProbeRunner) -> None:
    qps, duration = 40.0, 0.5
    result = probe.run(
        "lookup", {"names": ["kubernetes.default.svc.cluster.local."], "qps": qps, "duration_s": duration}
    )
    assert isinstance(result, LookupResult)
    assert result.stopped == "duration"
    assert len(result.rows) == int(qps * duration)
    period_ns = 1e9 / qps
    for i, row in enumerate(result.rows):
        # never early; late only by scheduling noise
        assert i * period_ns - 1e6 <= row.start_offset_ns <= i * period_ns + 15e6, (i, row)


def test_lookup_in_threads_by_family(probe: ProbeRunner) -> None:
    name = "api.example.test."
    v4 = probe.run("lookup", {"names": [name], "count": 200, "concurrency": 4, "family": "inet", "socktype": "stream"})
    v6 = probe.run("lookup", {"names": [name], "count": 20, "concurrency": 2, "family": "inet6"})
    both = probe.run("lookup", {"names": [name], "count": 20})
    assert isinstance(v4, LookupResult) and isinstance(v6, LookupResult) and isinstance(both, LookupResult)
    assert v4.totals.ok == 200 and v4.concurrency == 4 and v4.socktype == "stream"
    assert v4.addresses == ((API_A,),) and v6.addresses == ((API_AAAA,),)
    assert both.addresses == (tuple(sorted([API_A, API_AAAA])),)
    assert {row.n_addrs for row in both.rows} == {2}


def test_lookup_sustains_over_1000_per_second_on_a_cached_name(probe: ProbeRunner) -> None:
    name = "kubernetes.default.svc.cluster.local."
    rates = {}
    for concurrency in (1, 4):
        result = probe.run("lookup", {"names": [name], "duration_s": 1.0, "concurrency": concurrency})
        assert isinstance(result, LookupResult)
        assert result.totals.failed == 0
        rates[concurrency] = result.totals.rate_per_s
    print(f"lookup rate on a cached FQDN: {rates}")
    assert min(rates.values()) > 1000, rates


# ---- burst --------------------------------------------------------------------------------------


def test_burst_releases_parallel_lookups_together(probe: ProbeRunner) -> None:
    names = ["kubernetes.default", "api.example.test"]
    result = probe.run("burst", {"names": names, "bursts": 3, "parallel": 4, "interval_s": 0.1})
    assert isinstance(result, LookupResult)
    assert len(result.rows) == 12 and result.totals.failed == 0
    assert [row.burst for row in result.rows] == [0] * 4 + [1] * 4 + [2] * 4
    for b in range(3):
        rows = [row for row in result.rows if row.burst == b]
        assert sorted(row.name_index for row in rows) == [0, 0, 1, 1]
        starts = [row.start_offset_ns for row in rows]
        assert min(starts) >= b * 100e6 - 1e6
        assert max(starts) - min(starts) < 50e6, starts  # released together by the barrier
    assert result.addresses == ((KUBERNETES_IP,), tuple(sorted([API_A, API_AAAA])))


# ---- query --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_query_returns_the_a_record(probe: ProbeRunner, tcp: bool) -> None:
    name = "kubernetes.default.svc.cluster.local"
    result = probe.run("query", {"server": DNS_IP, "name": name, "tcp": tcp, "count": 3})
    assert isinstance(result, QueryResult)
    assert result.tcp is tcp and result.rdtype == "A" and len(result.replies) == 3
    for reply in result.replies:
        assert reply.ok and reply.rcode == "NOERROR"
        assert {"QR", "AA", "RD"} <= set(reply.flags)
        assert reply.addresses() == (KUBERNETES_IP,)
        assert reply.answers == (f"{name}. 30 IN A {KUBERNETES_IP}",)
        assert reply.ttls == (30,)
        assert reply.latency_ns > 0


def test_query_srv_ptr_and_nxdomain(probe: ProbeRunner) -> None:
    srv = probe.run(
        "query", {"server": DNS_IP, "name": "_https._tcp.kubernetes.default.svc.cluster.local", "rdtype": "SRV"}
    )
    ptr = probe.run("query", {"server": DNS_IP, "name": KUBERNETES_IP, "rdtype": "PTR"})
    nx = probe.run("query", {"server": DNS_IP, "name": "nope.default.svc.cluster.local", "tcp": True})
    assert isinstance(srv, QueryResult) and isinstance(ptr, QueryResult) and isinstance(nx, QueryResult)
    assert srv.replies[0].answers[0].endswith("SRV 0 100 443 kubernetes.default.svc.cluster.local.")
    assert ptr.qname == "1.0.96.10.in-addr.arpa."
    assert ptr.replies[0].answers[0].endswith("PTR kubernetes.default.svc.cluster.local.")
    assert nx.replies[0].rcode == "NXDOMAIN" and nx.replies[0].answers == ()
    # the same replies through the structured records
    (record,) = srv.replies[0].srv()
    assert (record.priority, record.weight, record.port) == (0, 100, 443)
    assert record.target == "kubernetes.default.svc.cluster.local." and record.ttl == 30
    assert ptr.replies[0].rdata("PTR") == ["kubernetes.default.svc.cluster.local."]
    soa = nx.replies[0].soa()
    assert soa is not None and (soa.name, soa.mname, soa.minimum) == ("cluster.local.", "ns.dns.cluster.local.", 5)
    assert nx.replies[0].negative_ttl() == 5


def test_query_without_a_server_reports_each_failure(probe: ProbeRunner) -> None:
    silent = "127.0.0.9"  # nothing listens there inside the namespace
    udp = probe.run("query", {"server": silent, "name": "x.example.test", "timeout": 0.2, "count": 2})
    tcp = probe.run("query", {"server": silent, "name": "x.example.test", "timeout": 0.2, "tcp": True})
    assert isinstance(udp, QueryResult) and isinstance(tcp, QueryResult)
    assert [reply.error for reply in udp.replies] == ["timeout after 0.2s"] * 2
    assert all(reply.rcode is None for reply in udp.replies)
    assert tcp.replies[0].error is not None and "Connection" in tcp.replies[0].error


# ---- capture ------------------------------------------------------------------------------------


def test_capture_ndots5_costs_eight_queries_for_an_external_name(probe: ProbeRunner) -> None:
    conf = forwarder_resolv_conf(ndots=5)
    qnames = expected_qnames(
        "glibc",
        conf,
        "api.example.test",
        [
            "api.example.test.default.svc.cluster.local.",
            "api.example.test.svc.cluster.local.",
            "api.example.test.cluster.local.",
            "api.example.test.",
        ],
    )
    result = capture(probe, ["api.example.test"], conf)
    assert result.resolv_conf == conf and result.parser == "dnspython"
    (lookup,) = result.lookups
    assert lookup.ok and lookup.addresses == tuple(sorted([API_A, API_AAAA]))
    assert [[q.qname, q.qtype, q.proto] for q in lookup.queries] == a_aaaa(qnames)
    assert len(lookup.queries) == 8
    assert [q.rcode for q in lookup.queries] == ["NXDOMAIN"] * 6 + ["NOERROR"] * 2
    assert lookup.late_queries == 0 and result.unattributed == ()


def test_capture_resends_a_lost_query_so_the_libc_never_retries(probe: ProbeRunner) -> None:
    """Through an upstream that loses every query once: with resend_s the forwarder sends it again
    and the libc sees one answer per query, in its own order and within its 5 s first timeout;
    without, the libc waits out its timeout and sends the lost names again."""
    conf = forwarder_resolv_conf(ndots=5)
    names = ["api.example.test", "kubernetes.default"]
    with lossy_nameserver(probe.netns) as lossy:
        shielded = probe.run("capture", {"upstream": [lossy], "names": names, "resend_s": 0.2}, resolv_conf=conf)
        assert isinstance(shielded, CaptureResult)
        for lookup in shielded.lookups:
            assert lookup.ok and lookup.latency_ns < 2e9, lookup
            assert len(lookup.qnames) == len(set(lookup.qnames)), lookup.qnames  # no name asked twice
        assert [len(lookup.queries) for lookup in shielded.lookups] == [8, 4]
        assert shielded.resent == 12 and shielded.unanswered == 0
        bare = probe.run("capture", {"upstream": [lossy], "names": names[1:], "timeout": 1.0},
                         resolv_conf=forwarder_resolv_conf(ndots=5, extra_options="timeout:1"))
        assert isinstance(bare, CaptureResult) and bare.resent == 0
        (lookup,) = bare.lookups
        assert lookup.latency_ns >= 1e9 and len(lookup.queries) > 4, lookup  # the libc's own retries


def test_capture_ndots2_tries_a_dotted_name_as_is_first(probe: ProbeRunner) -> None:
    conf = forwarder_resolv_conf(ndots=2)
    qnames = expected_qnames("glibc", conf, "api.example.test", ["api.example.test."])
    result = capture(probe, ["api.example.test"], conf)
    (lookup,) = result.lookups
    assert lookup.ok
    assert [[q.qname, q.qtype, q.proto] for q in lookup.queries] == a_aaaa(qnames)
    assert len(lookup.queries) < 8


def test_capture_attributes_queries_to_each_name_in_turn(probe: ProbeRunner) -> None:
    conf = forwarder_resolv_conf(ndots=5)
    names = ["onlysearch", "api.example.test.", "kubernetes.default", "no-such-svc"]
    explicit = {
        "onlysearch": ["onlysearch.default.svc.cluster.local."],
        "api.example.test.": ["api.example.test."],
        "kubernetes.default": [
            "kubernetes.default.default.svc.cluster.local.",
            "kubernetes.default.svc.cluster.local.",
        ],
        "no-such-svc": [
            "no-such-svc.default.svc.cluster.local.",
            "no-such-svc.svc.cluster.local.",
            "no-such-svc.cluster.local.",
            "no-such-svc.",
        ],
    }
    result = capture(probe, names, conf, quiet_s=0.05)
    assert [lookup.name for lookup in result.lookups] == names
    for lookup in result.lookups:
        qnames = expected_qnames("glibc", conf, lookup.name, explicit[lookup.name])
        assert [[q.qname, q.qtype, q.proto] for q in lookup.queries] == a_aaaa(qnames), lookup.name
        assert lookup.qnames == tuple(qnames)
    failed = result.lookups[-1]
    assert not failed.ok and failed.error_code == EAI_NONAME and failed.addresses == ()


def test_capture_relays_tcp_when_the_libc_uses_it(probe: ProbeRunner) -> None:
    conf = forwarder_resolv_conf(ndots=5, extra_options="use-vc")
    result = capture(probe, ["kubernetes.default"], conf)
    (lookup,) = result.lookups
    assert lookup.ok and lookup.addresses == (KUBERNETES_IP,)
    assert {q.proto for q in lookup.queries} == {"tcp"}
    assert [q.qname for q in lookup.queries][-1] == "kubernetes.default.svc.cluster.local."


def test_capture_single_request_serialises_a_and_aaaa(probe: ProbeRunner) -> None:
    conf = forwarder_resolv_conf(ndots=5, extra_options="single-request")
    result = capture(probe, ["api.example.test."], conf)
    (lookup,) = result.lookups
    assert [[q.qname, q.qtype] for q in lookup.queries] == [["api.example.test.", "A"], ["api.example.test.", "AAAA"]]


def test_capture_warns_when_resolv_conf_bypasses_the_forwarder(probe: ProbeRunner) -> None:
    result = probe.run("capture", {"upstream": [DNS_IP], "names": ["kubernetes.default"]}, resolv_conf=pod_resolv_conf())
    assert isinstance(result, CaptureResult)
    assert len(result.warnings) == 1 and RECORDER_IP in result.warnings[0]
    assert result.lookups[0].ok and result.lookups[0].queries == ()


def test_capture_names_the_fix_when_port_53_is_taken(probe: ProbeRunner) -> None:
    # unbound holds DNS_IP:53, so the forwarder cannot listen there.
    proc = probe.raw("capture", {"upstream": ["127.0.0.9"], "listen": DNS_IP, "names": ["x"]})
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    with pytest.raises(PodError, match=r"cannot listen on 127\.0\.53\.1:53 .*ip_unprivileged_port_start=0"):
        parse_output("capture", proc.stdout, where="pod p")


# ---- errors and older interpreters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("lookup", {}, "missing argument 'names'"),
        ("lookup", {"names": ["a"], "qps": -1}, "'qps'=-1.0 is outside"),
        ("lookup", {"names": ["a"], "family": "ipx"}, "valid: any, inet, inet6"),
        ("burst", {"names": ["a"], "parallel": "4"}, "'parallel' must be int"),
        ("query", {"server": "dns.example", "name": "a"}, "not an IP address"),
        ("query", {"server": DNS_IP, "name": "a", "rdtype": "BOGUS"}, "not a DNS record type"),
        ("capture", {"upstream": [RECORDER_IP], "names": ["a"]}, "would loop"),
    ],
)
def test_bad_arguments_give_an_error_document(
    probe: ProbeRunner, command: str, args: dict[str, object], message: str
) -> None:
    proc = probe.raw(command, args)
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["command"] == command and message in doc["error"]
    assert len(proc.stdout.strip().splitlines()) == 1
    with pytest.raises(PodError, match="failed: ArgError"):
        parse_output(command, proc.stdout)


@pytest.mark.parametrize(
    "python",
    old_pythons() or [pytest.param("python3.8", marks=pytest.mark.skip(reason="no Python 3.8 on this machine"))],
)
def test_payload_runs_on_python_3_8(probe: ProbeRunner, python: str) -> None:
    """info, lookup, burst and record need only the stdlib (record falls back to its own parser)."""
    info = probe.run("info", python=python)
    assert isinstance(info, ProbeInfo) and info.python.startswith("3.8") and info.libc == "glibc"
    lookup = probe.run("lookup", {"names": ["kubernetes.default"], "count": 3, "concurrency": 2}, python=python)
    assert isinstance(lookup, LookupResult) and lookup.totals.ok == 3
    burst = probe.run("burst", {"names": ["onlysearch"], "bursts": 2, "parallel": 2, "interval_s": 0.01}, python=python)
    assert isinstance(burst, LookupResult) and burst.totals.ok == 4
    conf = forwarder_resolv_conf()
    result = probe.run("capture", {"upstream": [DNS_IP], "names": ["api.example.test"]}, resolv_conf=conf, python=python)
    assert isinstance(result, CaptureResult)
    assert result.parser in ("builtin", "dnspython")
    assert len(result.lookups[0].queries) == 8
    assert result.lookups[0].queries[-1].qname == "api.example.test."


# ---- http ---------------------------------------------------------------------------------------


@pytest.fixture
def metrics_server(probe: ProbeRunner, tmp_path: Path) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1:9153 inside the namespace, serving /metrics."""
    (tmp_path / "metrics").write_text('coredns_dns_requests_total{server="dns://:53"} 7\n')
    argv = probe.netns.argv(
        [sys.executable, "-I", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path), "9153"]
    )
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while probe.raw("http", {"url": "http://127.0.0.1:9153/metrics", "timeout": 0.5}).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "http.server did not start in the netns"
            time.sleep(0.1)
        yield "http://127.0.0.1:9153"
    finally:
        proc.terminate()
        proc.wait(10)


def test_http_gets_a_metrics_page(probe: ProbeRunner, metrics_server: str) -> None:
    result = probe.run("http", {"url": metrics_server + "/metrics"})
    assert isinstance(result, HttpResult)
    assert result.status == 200 and not result.truncated
    assert result.body == 'coredns_dns_requests_total{server="dns://:53"} 7\n'
    assert "content-length" in result.headers
    short = probe.run("http", {"url": metrics_server + "/metrics", "max_bytes": 10})
    assert isinstance(short, HttpResult) and short.truncated and short.body == "coredns_dn"
    missing = probe.run("http", {"url": metrics_server + "/nope"})
    assert isinstance(missing, HttpResult) and missing.status == 404


def test_http_refuses_other_schemes_and_reports_refusal(probe: ProbeRunner) -> None:
    bad = probe.raw("http", {"url": "https://127.0.0.1/"})
    assert bad.returncode == 2 and "must be an http:// URL" in json.loads(bad.stdout)["error"]
    refused = probe.raw("http", {"url": "http://127.0.0.1:9/metrics", "timeout": 1})
    with pytest.raises(PodError, match="probe http in pod p failed: ConnectionRefusedError"):
        parse_output("http", refused.stdout, where="pod p")
