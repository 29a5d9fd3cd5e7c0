"""pytest-xdist: what a distributed run refuses, and how each worker's evidence and cluster facts reach
the controller, which alone writes the results file, JUnit and HTML."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_k8sdns.config import Settings
from pytest_k8sdns.results import Results


def distributing(config: pytest.Config) -> bool:
    """True in the xdist controller of a distributed session: the workers run the checks."""
    return (not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"
            and bool(getattr(config.option, "tx", None)) and not config.option.collectonly)


def refuse_what_workers_cannot_share(config: pytest.Config, settings: Settings) -> None:
    if not distributing(config):
        return
    if settings.kind:
        raise pytest.UsageError(
            "--k8sdns-kind makes one cluster per pytest session and xdist runs a session per worker; make the "
            "cluster once (python -m pytest_k8sdns.devcluster up) and pass its --k8sdns-context, or use -n 0")
    if settings.during or settings.disruptive:
        raise pytest.UsageError(
            "--k8sdns-during and --k8sdns-disruptive change the cluster while checks run, and under xdist other "
            "workers' checks would measure the change too; use -n 0")
    if settings.capacity:
        raise pytest.UsageError(
            "--k8sdns-capacity loads the cluster DNS to its knee, and under xdist other workers' checks would run "
            "under that load and their queries would count in the ramp; use -n 0")
    if settings.namespace:
        raise pytest.UsageError(
            f"--k8sdns-namespace={settings.namespace} holds one run at a time and xdist runs one per worker; use -n 0, "
            f"or drop --k8sdns-namespace so that each worker makes its own namespace")


class XdistEvidence:
    """Carries what each check recorded from an xdist worker to the controller, which writes the files."""

    STORES = ("measurements", "series", "timelines", "capacities")

    def __init__(self, results: Results, *, worker: bool) -> None:
        self.results = results
        self.worker = worker

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if self.worker:
            evidence = {name: store[item.nodeid] for name in self.STORES
                        if item.nodeid in (store := getattr(self.results, name, {}))}
            if evidence:
                report.k8sdns_evidence = evidence  # serialized with the report
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        evidence = getattr(report, "k8sdns_evidence", None)
        if evidence and not self.worker:
            for name, values in evidence.items():
                store = getattr(self.results, name, None)
                if store is not None:
                    store.setdefault(report.nodeid, {}).update(values)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: keep the cluster facts a worker sent, the namespace each worker used, and
        the root causes its run found (each worker measures the node x replica matrix on its own)."""
        facts = getattr(node, "workeroutput", {}).get("k8sdns_facts")
        if facts:
            results = self.results
            namespaces = {**results.facts.get("worker_namespaces", {}), node.workerinput["workerid"]: facts["namespace"]}
            results.facts.update(facts, worker_namespaces=dict(sorted(namespaces.items())))
        self.results.worker_causes += getattr(node, "workeroutput", {}).get("k8sdns_causes") or []
        metadata = getattr(node, "workeroutput", {}).get("k8sdns_metadata")
        if metadata and node.config.pluginmanager.hasplugin("metadata"):
            from pytest_metadata.plugin import metadata_key

            # the HTML report's environment table: the controller has no run of its own
            node.config.stash[metadata_key].update(metadata)

