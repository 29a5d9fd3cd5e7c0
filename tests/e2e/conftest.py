"""The end-to-end tier's shared inner session: one `pytest --k8sdns-kind` run on a fresh kind
cluster, whose exit code, results file, JUnit XML and HTML report several test files check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_kind_session import (
    GLIBC_IMAGE,
    HERE,
    MUSL_IMAGE,
    NODE_IMAGE,
    _need_kind_and_images,
)

from pytest_k8sdns.kind import docker_leftovers
from pytest_k8sdns.plugin import _suite_dir


@pytest.fixture(scope="session")
def kind_session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One inner pytest session on a fresh kind cluster: its exit code, output, results file, and
    the paths of its JUnit XML (xunit1, so it holds each check's figures) and self-contained HTML."""
    _need_kind_and_images()
    before = set(docker_leftovers())
    out = tmp_path_factory.mktemp("kind-session")
    results = out / "results.json"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
            "--k8sdns-kind", f"--k8sdns-kind-image={NODE_IMAGE}",
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
