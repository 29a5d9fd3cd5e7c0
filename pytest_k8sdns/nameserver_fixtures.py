"""The fixtures of check 7's "configurable pod DNS nameservers" (the e2e [Conformance] test): a DNS
server pod of the suite's own (the probe's `serve`), and dnsPolicy None pods whose only nameserver
is that pod's IP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.fixtures import _guarded, _image, _pair, _start
from pytest_k8sdns.kube.stream import ExecStream
from pytest_k8sdns.probe import build, schema
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.pods import ProbePod, ProbeSpec
from pytest_k8sdns.session import Run

#: the test name the server answers, its address (TEST-NET-1, RFC 5737: no other server gives it)
#: and the search domain the client pods' dnsConfig adds, under which the name's first label is it
TEST_NAME = "ns-test.k8sdns.example."
TEST_ADDRESS = "192.0.2.53"
TEST_SEARCH = "k8sdns.example"


class NameServerPod:
    """The probe's `serve` kept running in a pod: its address, and the queries it has answered."""

    def __init__(self, pod: ProbePod) -> None:
        self.pod = pod
        self.ip = pod.pod_ip
        self.name, self.address, self.search = TEST_NAME, TEST_ADDRESS, TEST_SEARCH
        self.queries: list[dict[str, Any]] = []  # the query lines read so far
        self.end: dict[str, Any] | None = None
        self._exec = ExecStream(pod.cluster, pod.namespace, pod.name,
                                build.probe_command("serve", {"name": self.name, "address": self.address}))

    def _read(self, timeout_s: float) -> list[dict[str, Any]]:
        lines = []
        for line in self._exec.lines(timeout_s):
            doc = schema.parse_serve_line(line, self.pod.where)
            event = doc["event"]
            if event == "query":
                self.queries.append(doc)
            elif event == "end":
                self.end = doc
            lines.append(doc)
        return lines

    def wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(doc["event"] == "start" for doc in self._read(1.0)):
                return
            if not self._exec.running:
                result = self._exec.close()
                raise PodError(f"probe serve in {self.pod.where} ended before it listened (exit {result.exit_code}): "
                               f"{result.stderr.strip()[-300:] or 'no stderr'}")
        raise PodError(f"probe serve in {self.pod.where} printed no start line within {timeout_s:g} s")

    def heard_from(self, client_ip: str, wait_s: float = 2.0) -> list[dict[str, Any]]:
        """The queries from `client_ip` read so far, waiting up to wait_s for one that asked the test name."""
        deadline = time.monotonic() + wait_s
        while True:
            heard = [q for q in self.queries if q["client"] == client_ip]
            if self.end is not None or time.monotonic() >= deadline or any(
                    q["qname"].lower() == self.name and q["outcome"] == "answer" for q in heard):
                return heard
            self._read(0.5)

    def stop(self) -> None:
        self._exec.send("stop\n")
        deadline = time.monotonic() + 10
        while self.end is None and self._exec.running and time.monotonic() < deadline:
            self._read(0.5)
        self._exec.close()


@pytest.fixture(scope="session")
def nameserver_pod(k8sdns_run: Run) -> Iterator[NameServerPod]:
    """Session. A glibc probe pod on the last chosen node running the probe's `serve`: authoritative
    for k8sdns.example, it answers TEST_NAME with TEST_ADDRESS on its pod IP, UDP and TCP :53."""
    run = k8sdns_run
    spec = ProbeSpec(key="nameserver", libc="glibc", image=_image(run.settings, "glibc"), node=run.placement.chosen[-1],
                     labels={"k8sdns.io/role": "nameserver"})
    started = _start(run, [spec])
    try:
        server: NameServerPod = _guarded(NameServerPod, started[spec.key])
        _guarded(server.wait_listening, 60.0)
        yield server
        server.stop()
    finally:
        probes.stop(run.cluster, run.namespace, started)


@pytest.fixture(scope="session")
def nameserver_clients(k8sdns_run: Run, nameserver_pod: NameServerPod) -> Iterator[dict[str, ProbePod]]:
    """Session. A probe pod of each libc on the first chosen node with dnsPolicy None and dnsConfig
    nameservers [the nameserver pod's IP], searches [TEST_SEARCH]: {libc: ProbePod}."""
    config = {"nameservers": [nameserver_pod.ip], "searches": [TEST_SEARCH]}
    yield from _pair(k8sdns_run, "ns-client", dns_policy="None", dns_config=config)
