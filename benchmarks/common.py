"""What the benchmark scripts share: the substrate's images, a kind cluster made by the plugin's own
Run, one timed pytest session of the packaged suite, and medians."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pytest_k8sdns.config import Settings
from pytest_k8sdns.plugin import _suite_dir
from pytest_k8sdns.session import Run

NODE_IMAGE = os.environ.get("K8SDNS_NODE_IMAGE", "k8sdns/kind-node:latest")
GLIBC_IMAGE = os.environ.get("K8SDNS_GLIBC_IMAGE", "k8sdns/probe-glibc:py3.11-bookworm")
MUSL_IMAGE = os.environ.get("K8SDNS_MUSL_IMAGE", "k8sdns/probe-musl:py3.11-musl")
HERE = Path(__file__).resolve().parent
IMAGES = [f"--k8sdns-glibc-image={GLIBC_IMAGE}", f"--k8sdns-musl-image={MUSL_IMAGE}"]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def kind_config(workers: int) -> Path:
    """A kind config with one control plane and `workers` workers."""
    path = Path(tempfile.mkdtemp(prefix="k8sdns-bench-")) / f"kind-{workers}w.yaml"
    roles = "\n".join(["  - role: control-plane"] + ["  - role: worker"] * workers)
    path.write_text(f"kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n{roles}\n")
    return path


@contextlib.contextmanager
def warm_cluster(name: str, workers: int = 1) -> Iterator[Run]:
    """A kind cluster the way --k8sdns-kind prepares it (test upstream, images loaded), deleted at the end."""
    run = Run(Settings(kind=True, kind_image=NODE_IMAGE, kind_config=str(kind_config(workers)),
                       glibc_image=GLIBC_IMAGE, musl_image=MUSL_IMAGE), run_id=name)
    try:
        run.start()
        yield run
    finally:
        run.stop()


def timed_session(args: Sequence[str], *, cwd: Path | None = None) -> dict[str, Any]:
    """Run one pytest session with benchmarks/timing_plugin.py; return its phases (seconds) and wall time."""
    with tempfile.TemporaryDirectory(prefix="k8sdns-bench-") as tmp:
        timings = Path(tmp) / "timings.json"
        env = {**os.environ, "K8SDNS_TIMINGS": str(timings),
               "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "timing_plugin", "-q",
                "-W", "ignore::pytest.PytestDeprecationWarning", *IMAGES, *args]
        began = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd or tmp, env=env, check=False, timeout=3600)
        wall = time.monotonic() - began
        if not timings.exists():
            raise RuntimeError(f"pytest wrote no timings (exit {proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        doc = json.loads(timings.read_text())
    doc["wall"] = wall
    doc["exit"] = proc.returncode
    doc["summary"] = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.strip()), "")
    return doc


def suite_args(run: Run) -> list[str]:
    """Options that run the packaged suite on a cluster made by warm_cluster(), by its context."""
    assert run.kind is not None
    return [f"--k8sdns-context=kind-{run.kind.name}", f"--k8sdns-kubeconfig={run.kind.kubeconfig}",
            "--k8sdns-external-name=api.example.test", str(_suite_dir())]


def suite_with_results(run: Run, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One timed session of the packaged suite by context (suite_args), writing a results file:
    the session's timings (timed_session) and the results document."""
    with tempfile.TemporaryDirectory(prefix="k8sdns-bench-") as tmp:
        path = Path(tmp) / "results.json"
        doc = timed_session([*suite_args(run), f"--k8sdns-results={path}", *extra])
        if not path.exists():
            raise RuntimeError(f"pytest wrote no results file (exit {doc['exit']}): {doc['summary']}")
        return doc, json.loads(path.read_text())


def failures(results: dict[str, Any]) -> dict[str, str]:
    """{check name: message} of the checks that failed or errored in a results document."""
    return {c["nodeid"].split("::", 1)[-1]: c.get("message", "") for c in results["checks"]
            if c["outcome"] in ("failed", "error")}


def workers(run: Run) -> list[str]:
    """The run's nodes without a control-plane taint, by name."""
    return sorted(n.name for n in run.nodes if not any("control-plane" in t for t in n.taints))
