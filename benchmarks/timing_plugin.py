"""pytest plugin for the benchmarks (-p timing_plugin): where a session's time goes. Writes
{phase: seconds} to $K8SDNS_TIMINGS at the end.

  session start   connect, (kind: create the cluster, prepare it), make the namespace
  pod start       create the pods and wait until they are Ready
  probe copy      install the payload into the pods (in parallel)
  other setup     the rest of the fixtures (inspectors, Services and their endpoints, ...)
  measurement     the checks themselves (call phases)
  teardown        fixture teardown, and the end of the run (namespace or cluster deleted)
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from typing import Any

import pytest

from pytest_k8sdns import session
from pytest_k8sdns.kube import kind, pods
from pytest_k8sdns.probe import pods as probes

SPENT: dict[str, float] = defaultdict(float)
#: seconds per test (set-up, call and teardown: session fixtures that measure show in the first test that needs them)
ITEMS: dict[str, float] = defaultdict(float)
_LAST_READY = [0.0]


def _timed(phase: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[phase] += time.monotonic() - began
    return wrapper


def _wait_ready(*args: Any, **kwargs: Any) -> Any:
    try:
        return _ORIGINAL_WAIT(*args, **kwargs)
    finally:
        _LAST_READY[0] = time.monotonic()


def _start(*args: Any, **kwargs: Any) -> Any:
    began = time.monotonic()
    _LAST_READY[0] = began
    try:
        return _ORIGINAL_START(*args, **kwargs)
    finally:
        ended = time.monotonic()
        SPENT["pod start"] += _LAST_READY[0] - began
        SPENT["probe copy"] += ended - _LAST_READY[0]


_ORIGINAL_WAIT = pods.wait_ready
_ORIGINAL_START = probes.start
pods.wait_ready = _wait_ready
probes.start = _start
session.Run.start = _timed("session start", session.Run.start)
session.Run.stop = _timed("run stop", session.Run.stop)
kind.KindCluster.create = _timed("kind create", kind.KindCluster.create)
session.Run._prepare_kind = _timed("kind prepare", session.Run._prepare_kind)
kind.KindCluster.delete = _timed("kind delete", kind.KindCluster.delete)
_BEGAN = time.monotonic()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    SPENT[f"{report.when} phases"] += report.duration
    ITEMS[report.nodeid.split("::", 1)[-1]] += report.duration


def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get("K8SDNS_TIMINGS")
    if not path:
        return
    spent = dict(SPENT)
    spent["other setup"] = spent.get("setup phases", 0.0) - spent.get("pod start", 0.0) - spent.get("probe copy", 0.0)
    spent["measurement"] = spent.get("call phases", 0.0)
    spent["teardown"] = spent.get("teardown phases", 0.0) + spent.get("run stop", 0.0)
    spent["in pytest"] = time.monotonic() - _BEGAN
    doc: dict[str, Any] = {k: round(v, 3) for k, v in spent.items()}
    doc["items"] = {k: round(v, 3) for k, v in ITEMS.items()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
