"""The probe's `serve` (check 7's DNS server pod) against each probe image's real libc, without a
cluster: the server runs in the probe container, whose resolv.conf names it with one search domain,
as the kubelet writes it for a dnsPolicy None pod with dnsConfig."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from probe_netns_support import DNS_IP, Container, probe_container

from pytest_k8sdns.nameserver_fixtures import TEST_ADDRESS, TEST_NAME, TEST_SEARCH
from pytest_k8sdns.probe import LookupResult, QueryResult, probe_command, schema
from pytest_k8sdns.probe.jsonschemas import SERVE_SCHEMAS


@pytest.fixture(params=["glibc", "musl"])
def served(request: pytest.FixtureRequest, probe_zipapp: Path, tmp_path: Path) -> Iterator[tuple[Container, subprocess.Popen[str]]]:
    """A probe container whose only nameserver is DNS_IP, and `serve` answering there."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"search {TEST_SEARCH}\nnameserver {DNS_IP}\n")
    with probe_container(request.param, probe_zipapp, resolv) as container:
        argv = probe_command("serve", {"name": TEST_NAME, "address": TEST_ADDRESS, "listen": DNS_IP})
        proc = subprocess.Popen(["docker", "exec", "-i", container.name, *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            start = json.loads(proc.stdout.readline() or "{}") if proc.stdout else {}
            assert start.get("event") == "start", (start, proc.stderr.read() if proc.stderr else "")
            yield container, proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_serve_answers_the_test_name_through_each_libc(served: tuple[Container, subprocess.Popen[str]]) -> None:
    container, proc = served
    started = time.monotonic()
    found = container.run("lookup", {"names": [TEST_NAME, TEST_NAME.split(".")[0], f"other.{TEST_SEARCH}."],
                                     "count": 3, "family": "inet"})
    assert isinstance(found, LookupResult)
    assert [list(a or ()) for a in found.addresses[:2]] == [[TEST_ADDRESS], [TEST_ADDRESS]], found
    assert found.addresses[2] is None, found  # NXDOMAIN, authoritative, at once
    assert time.monotonic() - started < 4, "a lookup waited for a timeout: the server did not answer"
    tcp = container.run("query", {"server": DNS_IP, "name": TEST_NAME, "rdtype": "A", "tcp": True})
    refused = container.run("query", {"server": DNS_IP, "name": "kubernetes.default.svc.cluster.local."})
    assert isinstance(tcp, QueryResult) and isinstance(refused, QueryResult)
    assert [r.rdata for r in tcp.replies[0].answer] == [TEST_ADDRESS] and "AA" in tcp.replies[0].flags
    assert refused.replies[0].rcode == "REFUSED"
    out, err = proc.communicate("stop\n", timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    for line in lines:
        assert not list(schema.jsonschema.Draft202012Validator(SERVE_SCHEMAS[line["event"]]).iter_errors(line)), line
    end = schema.load_document("serve", out.splitlines()[-1])
    print(container.image, end["queries"], end["outcomes"])
    assert end["stopped"] == "stdin" and end["queries"]["tcp"] == 1, (end, err)
    assert end["outcomes"]["answer"] >= 3 and end["outcomes"]["refused"] == 1, end
    asked = {(q["qname"].lower(), q["proto"]) for q in lines if q["event"] == "query"}
    assert {(TEST_NAME, "udp"), (TEST_NAME, "tcp")} <= asked, asked
