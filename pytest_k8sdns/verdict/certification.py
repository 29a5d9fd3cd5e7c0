"""The certification profile: which command lines may certify, its defaults, and the pytest plugin
that turns skips into failures."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdns.config import CERTIFICATION_HTML

#: NodeLocal DNSCache is check 14; certification lets its checks skip only where none is deployed
NODELOCAL_CHECK = 14
#: DNS during a change is check 16; it skips when no change was asked for (--k8sdns-during,
#: --k8sdns-disruptive), and its NodeLocal rollout where none is deployed
CHANGE_CHECK = 16
#: Dual-stack is check 19; it skips on a single-stack cluster (no Service gets an IPv6 ClusterIP)
DUALSTACK_CHECK = 19
#: Capacity is check 20; it skips unless asked for (--k8sdns-capacity): it loads the DNS it measures
CAPACITY_CHECK = 20


def certification_usage_problem(config: pytest.Config, suite: Path) -> str | None:
    """Why this command line cannot certify, in one line; None when it can."""
    deselected = [flag for flag, value in (("-k", config.option.keyword), ("-m", config.option.markexpr),
                                           ("--deselect", getattr(config.option, "deselect", None))) if value]
    if deselected:
        return (f"the certification profile runs every check; drop {' and '.join(deselected)} "
                "(or use --k8sdns-profile=default)")
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        given = {Path(a.split("::", 1)[0]).resolve() for a in config.args}
        if suite.resolve() not in given:
            return (f"the certification profile runs the whole packaged suite ({suite}); give no test paths, "
                    "or include that directory")
    if not config.pluginmanager.hasplugin("html"):
        return "the certification profile writes an HTML report, but pytest-html is disabled (-p no:html)"
    return None


def certification_defaults(config: pytest.Config) -> None:
    """The HTML report is always written, as one self-contained file (before pytest-html configures)."""
    if not config.getoption("htmlpath", None):
        config.option.htmlpath = CERTIFICATION_HTML
    config.option.self_contained_html = True


class Certification:
    """Registered under --k8sdns-profile=certification: a skip becomes a failure, except the
    NodeLocal checks on a cluster without NodeLocal DNSCache (required when present), check 16
    when no change was asked for, check 19 (dual-stack) on a single-stack cluster, and check 20
    (capacity) when --k8sdns-capacity was not given."""

    def __init__(self, facts: Any, change_asked: bool = False, capacity_asked: bool = False) -> None:
        self._facts = facts  # callable returning the run's facts, or None before the run started
        self._change_asked = change_asked
        self._capacity_asked = capacity_asked

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report: pytest.TestReport = yield
        if not report.skipped or hasattr(report, "wasxfail"):
            return report
        marker = item.get_closest_marker("k8sdns_check")
        facts = self._facts() or {}
        number = marker.args[0] if marker and marker.args else None
        no_nodelocal = facts.get("nodelocal") == "absent"
        if number == NODELOCAL_CHECK and no_nodelocal:
            return report
        if number == DUALSTACK_CHECK and str(facts.get("ip_families", "")).startswith("single-stack"):
            return report
        if number == CAPACITY_CHECK and not self._capacity_asked:
            return report
        params = getattr(getattr(item, "callspec", None), "params", {})
        if number == CHANGE_CHECK and (not self._change_asked or (no_nodelocal and params.get("k8sdns_change") ==
                                                                  "nodelocal-rollout")):
            return report
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"the certification profile refuses skips: {reason}"
        return report
