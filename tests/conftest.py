"""Shared test settings: pytester, and the rule that CI turns infrastructure skips into failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: Tiers that need real infrastructure (root, network namespaces, unbound, Docker, kind, images).
INFRA_TIERS = ("probe", "e2e")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--infra", choices=("auto", "require"), default="auto",
        help="auto: tests whose infrastructure is missing skip and say why; require (CI): they fail",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "infra: needs real infrastructure; a skip fails under --infra=require")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.path))
        if path.is_relative_to(here) and path.relative_to(here).parts[0] in INFRA_TIERS:
            item.add_marker(pytest.mark.infra)
    # the modules on e2e's session-scoped shared cluster run last, one after another, so that the
    # cluster is made once and deleted at once when they end (the session's teardown)
    items.sort(key=lambda item: bool(getattr(getattr(item, "module", None), "SHARED_CLUSTER", False)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.skipped and item.get_closest_marker("infra") and item.config.getoption("infra") == "require":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"required infrastructure is missing (--infra=require): {reason}"
    return report
