"""The end-to-end tier's shared clusters: `kind_session`, one `pytest --k8sdns-kind` run on a fresh
kind cluster whose exit code, results file, JUnit XML and HTML report several test files check; and
`plugin_run`, a kind cluster made by the plugin's own Run for one test module."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from test_kind_session import (
    GLIBC_IMAGE,
    HERE,
    MUSL_IMAGE,
    NODE_IMAGE,
    _need_kind_and_images,
)

from pytest_k8sdns.config import Settings
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube.kind import docker_leftovers
from pytest_k8sdns.plugin import _suite_dir
from pytest_k8sdns.session import Run, new_run_id


@pytest.fixture(scope="module")
def plugin_run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """A kind cluster made by the plugin's own Run (so faults may touch it) for the requesting test
    module, named after its RUN_PREFIX, and deleted when the module ends, also on failure."""
    _need_kind_and_images()
    prefix = getattr(request.module, "RUN_PREFIX", "e2e")
    config = getattr(request.module, "KIND_CONFIG", None)  # a fixtures/ file name; default 2 nodes
    run = Run(Settings(kind=True, kind_image=NODE_IMAGE, glibc_image=GLIBC_IMAGE, musl_image=MUSL_IMAGE,
                       kind_config=str(fixture_path(config)) if config else None),
              run_id=f"{prefix}-{new_run_id()}")
    try:
        run.start()
        yield run
    finally:
        run.stop()


@pytest.fixture(scope="session")
def kind_session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One inner pytest session on a fresh kind cluster, with check 16's built-in changes (those for
    clusters the plugin created too): its exit code, output, results file, and the paths of its
    JUnit XML (xunit1, so it holds each check's figures) and self-contained HTML."""
    _need_kind_and_images()
    before = set(docker_leftovers())
    out = tmp_path_factory.mktemp("kind-session")
    results = out / "results.json"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
            "--k8sdns-kind", f"--k8sdns-kind-image={NODE_IMAGE}", "--k8sdns-disruptive", "--k8sdns-settle-s=5",
            f"--k8sdns-glibc-image={GLIBC_IMAGE}", f"--k8sdns-musl-image={MUSL_IMAGE}",
            f"--k8sdns-results={results}", f"--junitxml={out / 'junit.xml'}", "-o", "junit_family=xunit1",
            f"--html={out / 'report.html'}", "--self-contained-html",
            "-W", "ignore::pytest.PytestDeprecationWarning",
            str(_suite_dir()), str(HERE / "smoke_checks.py")]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=out, timeout=1800, check=False)
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr)
    after = set(docker_leftovers())
    return {"proc": proc, "results": json.loads(results.read_text()) if results.exists() else None,
            "left": sorted(after - before), "out": out}
