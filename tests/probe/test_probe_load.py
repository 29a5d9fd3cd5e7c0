"""The probe's `load` (the capacity ramp) against real unbound in a private network namespace:
every query counted once, in the step that sent it; a silent server's queries all lost; and the
musl image's static Python, which has no _ssl or _ctypes, runs it too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from probe_netns_support import DNS_IP, ProbeRunner, probe_container, silent_nameserver

from pytest_k8sdns.nameserver_fixtures import TEST_NAME
from pytest_k8sdns.probe import LoadResult, LoadStep, probe_command

FQDN = "kubernetes.default.svc.cluster.local."


def _ramp(probe: ProbeRunner, **args: object) -> LoadResult:
    result = probe.run("load", {"server": DNS_IP, "names": [FQDN], "step_s": 0.5, "timeout_s": 0.5, **args})
    assert isinstance(result, LoadResult)
    return result


def test_every_query_of_each_step_is_answered_and_counted_once(probe: ProbeRunner) -> None:
    result = _ramp(probe, rates=[200, 400, 800])
    assert [s.rate for s in result.steps] == [200, 400, 800] and result.stopped == "done"
    for step in result.steps:
        # paced to the rate: step_s × rate queries, neither bursts ahead nor falls behind
        assert step.sent == int(step.rate * 0.5), step
        assert step.answered == step.sent and step.rcodes == {"NOERROR": step.sent}, step
        assert step.loss == 0 and sum(step.histogram) == step.answered
        p99 = step.quantile_ns(0.99)
        assert p99 is not None and p99 < 50_000_000, f"p99 {p99} ns from unbound on loopback"
    merged = LoadStep.merged(result.steps)
    assert merged.sent == 700 and merged.rate == 1400


def test_nxdomain_and_empty_answers_are_told_apart(probe: ProbeRunner) -> None:
    names = [f"k8sdns-nx-{i}.default.svc.cluster.local." for i in range(50)]
    nx = _ramp(probe, names=names, rates=[200])
    assert nx.steps[0].rcodes == {"NXDOMAIN": 100} and nx.names == 50
    empty = _ramp(probe, qtype="AAAA", rates=[100])  # the Service has an A record only
    assert empty.steps[0].empty == 50 and empty.steps[0].rcodes == {"NOERROR": 50}


def test_a_silent_server_loses_every_query_and_the_ramp_stops(probe: ProbeRunner) -> None:
    with silent_nameserver(probe.netns) as silent:
        result = _ramp(probe, server=silent, rates=[100, 100, 100, 100, 100, 100], stop_loss=0.5)
    assert result.stopped == "loss", result
    assert 3 <= len(result.steps) < 6  # it stops two steps after the first lossy one settles
    assert all(s.timeouts == s.sent == 50 and s.answered == 0 for s in result.steps)
    assert result.steps[0].quantile_ns(0.5) is None


@pytest.mark.parametrize("flavour", ["glibc", "musl"])
def test_each_probe_image_runs_the_ramp(flavour: str, probe_zipapp: Path, tmp_path: Path) -> None:
    """In each image's own interpreter, against `serve` in the same container (no netns needed)."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {DNS_IP}\n")
    with probe_container(flavour, probe_zipapp, resolv) as container:
        argv = probe_command("serve", {"name": TEST_NAME, "address": "192.0.2.10", "listen": DNS_IP})
        server = subprocess.Popen(["docker", "exec", "-i", container.name, *argv], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and json.loads(server.stdout.readline()).get("event") == "start"
            result = container.run("load", {"server": DNS_IP, "names": [TEST_NAME], "rates": [300, 600],
                                            "step_s": 0.5, "timeout_s": 0.5})
        finally:
            server.communicate("stop\n", timeout=10)  # also closes its pipes
    assert isinstance(result, LoadResult)
    assert [s.answered for s in result.steps] == [150, 300], result.steps
