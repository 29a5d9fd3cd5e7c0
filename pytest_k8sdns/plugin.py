"""pytest entry point: options and ini twins, markers, suite collection, report header, lifecycle."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdns import config as cfg
from pytest_k8sdns import xdist
from pytest_k8sdns.errors import K8sDnsError
from pytest_k8sdns.keys import GATE_KEY, IMAGES_KEY, RESULTS_KEY, RUN_KEY, SETTINGS_KEY
from pytest_k8sdns.kube import images
from pytest_k8sdns.report.html import HtmlExtras
from pytest_k8sdns.results import Results, write_document
from pytest_k8sdns.session import Run
from pytest_k8sdns.verdict import certification, rootcause
from pytest_k8sdns.verdict.expect import client_findings
from pytest_k8sdns.verdict.gate import Gate

pytest_plugins = ["pytest_k8sdns.fixtures", "pytest_k8sdns.monitor.fixtures", "pytest_k8sdns.dualstack_fixtures",
                  "pytest_k8sdns.nameserver_fixtures", "pytest_k8sdns.search_fixtures",
                  "pytest_k8sdns.capacity_fixtures"]



def _suite_dir() -> Path:
    """The packaged conformance suite: inside the wheel, or ../conformance in a checkout."""
    import pytest_k8sdns.conformance as suite

    return Path(suite.__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("k8sdns", "certify a Kubernetes cluster's DNS from inside pods")
    group.addoption("--k8sdns-context", metavar="NAME", help="run the packaged suite against this kubeconfig context (in-cluster: the pod's ServiceAccount)")
    group.addoption("--k8sdns-kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    group.addoption("--k8sdns-kind", action="store_true", default=None, help="create a throwaway kind cluster, test it, delete it")
    group.addoption("--k8sdns-keep-cluster", action="store_true", default=None, help="keep the kind cluster at the end")
    group.addoption("--k8sdns-kind-image", metavar="IMAGE", help="kind node image (default: kind's own)")
    group.addoption("--k8sdns-kind-config", metavar="FILE", help="kind cluster config (default: 2 nodes, fixtures/kind-2node.yaml)")
    group.addoption("--k8sdns-upstream-image", metavar="IMAGE",
                    help="image of the test upstream DNS server of kind clusters (default: the cluster's CoreDNS image)")
    group.addoption("--k8sdns-kind-nodelocal", action="store_true", default=None,
                    help="deploy NodeLocal DNSCache (fixtures/nodelocaldns.yaml) on the kind cluster before the run")
    group.addoption("--k8sdns-require-nodelocal", action="store_true", default=None,
                    help="fail, not skip, when no NodeLocal DNSCache is deployed")
    group.addoption("--k8sdns-disruptive", action="store_true", default=None,
                    help="check 16 also runs the built-in changes (CoreDNS rollout restart, a CoreDNS pod deleted, "
                         "a NodeLocal rollout) on the cluster under test; without it the plugin changes no cluster "
                         "it did not create")
    group.addoption("--k8sdns-namespace", metavar="NAME",
                    help="run in this existing namespace instead of making k8sdns-<run id> (least privilege: fixtures/rbac.yaml)")
    group.addoption("--k8sdns-results", metavar="FILE", help="write every measurement and outcome as JSON")
    group.addoption("--k8sdns-baseline", metavar="FILE",
                    help="upgrade gate: fail when p99 grew, retry signatures appeared or a passing check fails "
                         "compared with this earlier --k8sdns-results file")
    for opt in cfg.OPTIONS:
        if opt.name in cfg.FLAG_OPTIONS:  # a bare flag on the command line; its ini twin says true or false
            group.addoption(opt.flag, action="store_const", const="true", help=f"{opt.help} (ini: {opt.ini})")
        else:
            group.addoption(opt.flag, metavar=opt.name.upper(),
                            help=f"{opt.help} (default: {opt.default!r}; ini: {opt.ini})")
        parser.addini(opt.ini, f"{opt.help} (command line: {opt.flag})", default="")


@pytest.hookimpl(tryfirst=True)  # before pytest-html's, which reads --html
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "k8sdns_check(number): the REFERENCE.md section 2 check a test implements")
    config.addinivalue_line("markers", "k8sdns_libc(name): the libc flavour a test measures (glibc or musl)")
    config.addinivalue_line("markers", "k8sdns_last: run after every other test (it judges the whole run)")
    config.addinivalue_line("markers", "k8sdns_late: run after the other checks, before the k8sdns_last ones "
                                       "(it loads the cluster)")
    cli = {name[len("k8sdns_"):]: value for name, value in vars(config.option).items() if name.startswith("k8sdns_")}
    try:
        settings = cfg.resolve(cli, config.getini)
    except K8sDnsError as exc:
        raise pytest.UsageError(str(exc)) from None
    given = {k for k, v in cli.items() if v is not None} | {o.name for o in cfg.OPTIONS if config.getini(o.ini)}
    settings, image_choices = images.choose(settings, given)
    config.stash[SETTINGS_KEY] = settings
    config.stash[IMAGES_KEY] = image_choices
    xdist.refuse_what_workers_cannot_share(config, settings)
    gate = None
    try:
        if settings.baseline:
            gate = Gate(settings)
            config.stash[GATE_KEY] = gate
            config.pluginmanager.register(gate, "k8sdns-gate")
    except K8sDnsError as exc:
        raise pytest.UsageError(str(exc)) from None
    if settings.active and settings.profile == "certification":
        problem = certification.certification_usage_problem(config, _suite_dir())
        if problem:
            raise pytest.UsageError(problem)
        certification.certification_defaults(config)
        config.pluginmanager.register(
            certification.Certification(lambda: _facts(config), change_asked=bool(settings.during or settings.disruptive),
                                      capacity_asked=settings.capacity),
            "k8sdns-certification")
    results = Results()
    config.stash[RESULTS_KEY] = results
    config.pluginmanager.register(results, "k8sdns-results")
    config.pluginmanager.register(xdist.XdistEvidence(results, worker=hasattr(config, "workerinput")), "k8sdns-xdist")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlExtras(results, gate, settings.profile), "k8sdns-html")
    if settings.active and config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --k8sdns-context=prod` with no paths runs the packaged suite, from anywhere
        config.args = [str(_suite_dir())]


def pytest_sessionstart(session: pytest.Session) -> None:
    settings = session.config.stash[SETTINGS_KEY]
    if not settings.active or session.config.option.collectonly or xdist.distributing(session.config):
        return
    run = Run(settings)
    run.image_choices = session.config.stash.get(IMAGES_KEY, [])
    session.config.stash[RUN_KEY] = run
    _terminate_as_interrupt(session.config)
    if settings.kind:
        # printed before kind starts, so that whoever kills this run knows what to delete
        _say(session.config, f"k8sdns: creating kind cluster {run.kind_name}")
    try:
        run.start()
    except K8sDnsError as exc:
        run.stop()
        raise pytest.UsageError(str(exc)) from None
    except KeyboardInterrupt:
        run.stop()
        raise
    if session.config.pluginmanager.hasplugin("metadata"):
        from pytest_metadata.plugin import metadata_key

        session.config.stash[metadata_key].update(run.metadata())


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[SETTINGS_KEY].active:
        # checks that judge the whole run (restarts "during the run") go last; the sort is stable
        # and checks that load the cluster (capacity) just before them, so that no other check measures
        # a cluster still busy with their load
        items.sort(key=lambda item: 2 if item.get_closest_marker("k8sdns_last") else
                   1 if item.get_closest_marker("k8sdns_late") else 0)
        return
    suite = _suite_dir()
    if any(Path(str(item.path)).is_relative_to(suite) for item in items):
        raise pytest.UsageError("the conformance suite needs a cluster: pass --k8sdns-context=NAME or --k8sdns-kind")


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash.get(RUN_KEY, None)
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is not None and run is None and settings.active and xdist.distributing(config):
        return [f"k8sdns: context {settings.context}; each xdist worker connects and makes its own namespace",
                f"k8sdns: images glibc={settings.glibc_image} musl={settings.musl_image}",
                "k8sdns: thresholds " + ", ".join(f"{k}={v}" for k, v in settings.thresholds().items())]
    if run is None or settings is None:
        return []
    return run.header_lines()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    settings = config.stash[SETTINGS_KEY]
    results = config.stash[RESULTS_KEY]
    try:
        if run is not None:
            facts = run.facts_document()
            results.facts.update(facts)
            if hasattr(config, "workerinput"):
                # only the controller writes files; it learns each worker's facts from this
                config.workeroutput["k8sdns_facts"] = json.loads(json.dumps(facts, default=str))  # type: ignore[attr-defined]
                config.workeroutput["k8sdns_metadata"] = run.metadata()  # type: ignore[attr-defined]
                # the controller judges every worker's checks against every worker's causes
                config.workeroutput["k8sdns_causes"] = json.loads(json.dumps(_causes(run), default=str))  # type: ignore[attr-defined]
        controller = not hasattr(config, "workerinput")
        if controller and (run is not None or xdist.distributing(config)):
            doc = results.final = results.document(dataclasses.asdict(settings))
            # summarise drops repeats: two workers that both measured the matrix find the same places
            causes = [*(_causes(run) if run is not None else []), *results.worker_causes]
            doc["root_causes"] = rootcause.summarise(causes, doc["checks"])
            gate = config.stash.get(GATE_KEY, None)
            if gate is not None and not gate.judge(doc) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            if settings.results:
                write_document(settings.results, doc)
    finally:
        if run is not None:
            run.stop()


def _causes(run: Run) -> list[dict[str, Any]]:
    """The root causes the run's evidence found (the node x replica matrix, if a check measured it)."""
    return [dict(c) for found in run.findings for c in found()]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Root cause first: what the lower-level failures were, and which checks they affected."""
    doc = config.stash[RESULTS_KEY].final if RESULTS_KEY in config.stash else None
    found = (doc or {}).get("root_causes") or []
    if found:
        terminalreporter.section("k8sdns root cause", sep="=", red=True, bold=True)
        for line in rootcause.lines(found):
            terminalreporter.line(line, red=not line.startswith("  "))
    clients = client_findings(doc or {})
    if clients:
        # what the cluster cannot fix but its workloads should know (not failed: --k8sdns-strict-clients)
        terminalreporter.section("k8sdns client findings", sep="=", yellow=True, bold=True)
        for check, finding in clients:
            terminalreporter.line(f"{check}: {finding}", yellow=True)


def _terminate_as_interrupt(config: pytest.Config) -> None:
    """CI systems cancel a job with SIGTERM: take it as Ctrl-C, so the run still removes what it made."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(restore)


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
        reporter.flush()


def _facts(config: pytest.Config) -> dict[str, Any] | None:
    run = config.stash.get(RUN_KEY, None)
    return run.facts if run is not None else None


def pytest_unconfigure(config: pytest.Config) -> None:
    # the last chance to remove what the run created, also after Ctrl-C
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.stop()
