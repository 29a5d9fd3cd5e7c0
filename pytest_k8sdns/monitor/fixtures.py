"""The monitor's pytest layer: `k8sdns_monitor` (a factory for gates written in pytest) and
`k8sdns_change` (check 16's change: --k8sdns-during, or a built-in scenario with --k8sdns-disruptive)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Awaitable, Iterator

import pytest
import yaml

from pytest_k8sdns.config import Settings
from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.dns.nodelocal import NodeLocalInspector
from pytest_k8sdns.errors import K8sDnsError
from pytest_k8sdns.evidence import change as change_evidence
from pytest_k8sdns.evidence.recorder import Recorder
from pytest_k8sdns.keys import SETTINGS_KEY
from pytest_k8sdns.monitor import change, scenarios
from pytest_k8sdns.monitor.core import Monitor
from pytest_k8sdns.monitor.timeline import Timeline
from pytest_k8sdns.probe.fleet import QUERIES_PER_LOOKUP, Fleet
from pytest_k8sdns.session import Run
from pytest_k8sdns.verdict.disruption import (
    ChangeBounds,
    ChangeOutcome,
    ChangeVerdict,
    judge,
)

#: Nodes the monitor streams from at most (two long-lived execs each): the first of the placement's
#: order, which takes one node of every zone and pool first.
MAX_MONITOR_NODES = 32
#: The long-lived socket asks at this share of the libc rate (it is one client per node, not two).
SOCKET_SHARE = 1.0
NONE = "none"


def bounds(settings: Settings) -> ChangeBounds:
    return ChangeBounds(settings.change_max_failed, settings.change_max_gap_s, settings.change_p99_ms,
                        settings.socket_recovery_s)


def monitor_rate(settings: Settings, budget_qps: float, nodes: int) -> float:
    """Each stream's libc lookup rate: --k8sdns-monitor-qps, lowered so that all streams together
    (two libc streams and one socket per node) stay within the session's query budget."""
    per_node = (2 * QUERIES_PER_LOOKUP + SOCKET_SHARE) * max(1, nodes)
    return min(settings.monitor_qps, budget_qps / per_node)


def make_monitor(run: Run, fleet: Fleet, domain: str, *, qps: float | None = None,
                 names: list[str] | None = None) -> Monitor:
    nodes = fleet.nodes[:MAX_MONITOR_NODES]
    budgeted = monitor_rate(run.settings, fleet.budget_qps, len(nodes))
    rate = min(qps, budgeted) if qps else budgeted  # a gate's own rate still fits --k8sdns-max-qps
    pods = [fleet.pod(node, libc) for node in nodes for libc in ("glibc", "musl")]
    return Monitor(pods, names=names or [f"kubernetes.default.svc.{domain}."], qps=rate,
                   socket_qps=rate * SOCKET_SHARE, max_duration_s=run.settings.during_timeout_s + 600,
                   bounds=bounds(run.settings))


@dataclasses.dataclass
class Watched:
    """A change and what the monitor saw during it."""

    timeline: Timeline
    outcome: ChangeOutcome
    verdict: ChangeVerdict


class MonitorFactory:
    """k8sdns_monitor(): a Monitor over the probe fleet; `with` or `async with` it around a change.
    Every monitor it made has its timeline recorded for the test when the test ends."""

    def __init__(self, run: Run, fleet: Fleet, domain: str, recorder: Recorder | None = None) -> None:
        self.run, self.fleet, self.domain, self.recorder = run, fleet, domain, recorder
        self.made: list[Monitor] = []

    def __call__(self, *, qps: float | None = None, names: list[str] | None = None) -> Monitor:
        monitor = make_monitor(self.run, self.fleet, self.domain, qps=qps, names=names)
        monitor.on_stop = self.record  # in the test's call, so the HTML report shows it too
        self.made.append(monitor)
        return monitor

    def record(self, monitor: Monitor) -> None:
        if self.recorder is not None and monitor.timeline is not None:
            change_evidence.record(self.recorder, monitor.timeline, monitor.verdict(), None)


@pytest.fixture()
def k8sdns_monitor(k8sdns_run: Run, probe_fleet: Fleet, cluster_domain: str,
                   k8sdns_record: Recorder) -> Iterator[MonitorFactory]:
    """Function. A factory of disruption monitors over the probe fleet, for gates written in pytest:
    `with k8sdns_monitor() as m: upgrade()`, then `m.verdict()` (a ChangeVerdict by the
    --k8sdns-change-* bounds) and `m.timeline`. A monitor's timeline goes to the report and the
    results file when it stops (of several in one test, the last one's)."""
    yield MonitorFactory(k8sdns_run, probe_fleet, cluster_domain, k8sdns_record)


def changes_asked(settings: Settings) -> list[str]:
    """The changes check 16 watches, in order: the user's command, then the built-in scenarios
    (those that change more than the DNS workloads only on a kind cluster the plugin creates)."""
    asked = ["during"] if settings.during else []
    if settings.disruptive:
        asked += [s.name for s in scenarios.SCENARIOS.values() if settings.kind or not s.created_only]
    return asked


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "k8sdns_change" in metafunc.fixturenames:
        settings = metafunc.config.stash[SETTINGS_KEY]
        metafunc.parametrize("k8sdns_change", changes_asked(settings) or [NONE], indirect=True)


@contextlib.contextmanager
def _command_env(run: Run) -> Iterator[dict[str, str]]:
    """What a --k8sdns-during command is told: a kubeconfig of its own whose current context is the
    cluster under test (so a bare `kubectl` acts on that cluster, not on the file's own current
    context), K8SDNS_CONTEXT and K8SDNS_NAMESPACE. The copy is private (0600) and deleted after.
    In a pod (--k8sdns-context=in-cluster) there is no kubeconfig: the command inherits the pod's
    ServiceAccount, as kubectl in a pod does."""
    if not run.cluster.kubeconfig:
        yield {"K8SDNS_CONTEXT": run.cluster.context, "K8SDNS_NAMESPACE": run.namespace}
        return
    with open(run.cluster.kubeconfig, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    doc["current-context"] = run.cluster.context
    with tempfile.TemporaryDirectory(prefix="k8sdns-during-") as tmp:
        path = os.path.join(tmp, "kubeconfig")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as fh:
            yaml.safe_dump(doc, fh)
        yield {"KUBECONFIG": path, "K8SDNS_CONTEXT": run.cluster.context, "K8SDNS_NAMESPACE": run.namespace}


@pytest.fixture()
def _k8sdns_command_env(k8sdns_run: Run) -> Iterator[dict[str, str]]:
    """Function. The environment of a --k8sdns-during command (see _command_env)."""
    with _command_env(k8sdns_run) as env:
        yield env


@pytest.fixture()
def k8sdns_change(request: pytest.FixtureRequest, k8sdns_run: Run, probe_fleet: Fleet, cluster_domain: str,
                  k8sdns_record: Recorder) -> Watched:
    """Function, parametrized: a change run under the monitor, and the verdict on it."""
    name: str = request.param
    settings = k8sdns_run.settings
    if name == NONE:
        pytest.skip("no change to watch: pass --k8sdns-during=COMMAND, or --k8sdns-disruptive for the built-in "
                    "scenarios")
    run_change: change.Change
    refused: list[scenarios.NotApplicable] = []  # a scenario that found it had nothing to change
    if name == "during":
        env: dict[str, str] = request.getfixturevalue("_k8sdns_command_env")

        def run_change() -> Awaitable[ChangeOutcome]:
            return change.run_command(settings.during, env=env, timeout_s=settings.during_timeout_s)
    else:
        scenario = scenarios.SCENARIOS[name]
        coredns: CoreDNSInspector = request.getfixturevalue("coredns")
        nodelocal: NodeLocalInspector | None = request.getfixturevalue("nodelocal")
        cluster = k8sdns_run.cluster
        context = scenarios.Context(cluster, coredns, nodelocal, created=cluster.created)
        try:
            scenario.check(context)  # before the monitor starts: a skip then costs nothing
        except scenarios.NotApplicable as exc:
            pytest.skip(str(exc))

        def act() -> str:
            try:
                return scenario.run(context)
            except scenarios.NotApplicable as exc:  # found out only once it looked closer
                refused.append(exc)
                raise

        def run_change() -> Awaitable[ChangeOutcome]:
            return change.run_blocking(name, act)
    monitor = make_monitor(k8sdns_run, probe_fleet, cluster_domain)
    try:
        timeline, outcome = asyncio.run(change.observe(monitor, run_change, settings.settle_s))
    except K8sDnsError as exc:
        pytest.fail(str(exc), pytrace=False)
    if refused:
        pytest.skip(str(refused[0]))
    verdict = judge(timeline, bounds(settings), outcome)
    change_evidence.record(k8sdns_record, timeline, verdict, outcome)
    return Watched(timeline, outcome, verdict)


__all__ = ["k8sdns_monitor", "k8sdns_change", "MonitorFactory", "Watched", "changes_asked"]
