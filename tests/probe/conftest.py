"""Fixtures that run the real probe payload in a private network namespace against real unbound.

Needs root and iproute2's `ip` (and unbound); without them the tests skip and say why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from probe_netns_support import (
    DNS_IP,
    NSSWITCH,
    Netns,
    ProbeRunner,
    Unbound,
    answered,
    need_root_and_ip,
    need_unbound,
    pod_resolv_conf,
    run,
    start_unbound,
    unique_name,
)

from pytest_k8sdns.probe import build_zipapp


@pytest.fixture(scope="session")
def probe_zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real zipapp from build_zipapp(), written to a file."""
    path = tmp_path_factory.mktemp("probe") / "probe.pyz"
    path.write_bytes(build_zipapp())
    return path


@pytest.fixture(scope="session")
def netns() -> Iterator[Netns]:
    """A fresh loopback-only network namespace, deleted with its /etc/netns files at the end."""
    need_root_and_ip()
    ns = Netns(unique_name("k8sdns-probe"))
    made = run(["ip", "netns", "add", ns.name])
    assert made.returncode == 0, f"ip netns add {ns.name} failed: {made.stderr.strip()}"
    try:
        up = run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
        assert up.returncode == 0, f"ip -n {ns.name} link set lo up failed: {up.stderr.strip()}"
        ns.etc.mkdir(parents=True, exist_ok=True)
        (ns.etc / "nsswitch.conf").write_text(NSSWITCH)
        ns.set_resolv_conf(pod_resolv_conf())
        yield ns
    finally:
        run(["ip", "netns", "del", ns.name])
        shutil.rmtree(ns.etc, ignore_errors=True)


@pytest.fixture(scope="session")
def unbound(netns: Netns, tmp_path_factory: pytest.TempPathFactory, probe_zipapp: Path) -> Iterator[Unbound]:
    """unbound on DNS_IP:53 inside the namespace, serving the test zones and nothing else."""
    need_unbound()
    runner = ProbeRunner(netns, probe_zipapp)
    server = start_unbound(
        netns.argv,
        tmp_path_factory.mktemp("unbound"),
        lambda: answered(
            runner.raw("query", {"server": DNS_IP, "name": "kubernetes.default.svc.cluster.local", "timeout": 0.5})
        ),
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def probe(netns: Netns, probe_zipapp: Path, unbound: Unbound) -> ProbeRunner:
    """The payload runner, with unbound answering on DNS_IP inside the namespace."""
    return ProbeRunner(netns, probe_zipapp)
