"""The suite as a Sonobuoy plugin (fixtures/sonobuoy-plugin.yaml), run the way a vendor runs it:
`sonobuoy run --plugin ... --wait`, `sonobuoy retrieve`, `sonobuoy results`. Sonobuoy is the CLI
and aggregator image substrate/build-sonobuoy.sh builds from its Go module; the plugin runs the
runner image in its Sonobuoy mode. Every check of the packaged suite must be listed with the
outcome the suite's own results file gives it, and nothing is left in the cluster."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_kind_session import GLIBC_IMAGE, MUSL_IMAGE
from test_runner_job import EXTERNAL, FAST

from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.session import Run

SHARED_CLUSTER = True  # conftest.shared_run
REPO = Path(__file__).resolve().parents[2]
#: what a junit test case's status in `sonobuoy results --mode detailed` is, by the suite's outcome
STATUS = {"passed": "passed", "skipped": "skipped", "failed": "failed", "error": "failed"}


def _plugin() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(fixture_path("sonobuoy-plugin.yaml").read_text())
    return doc


@pytest.fixture(scope="module")
def sonobuoy(shared_run: Run) -> Iterator[tuple[Run, list[str]]]:
    """The shared cluster with the runner, probe and aggregator images loaded, and the sonobuoy
    command with its kubeconfig; `sonobuoy delete --wait` at the end, also on failure."""
    built = subprocess.run(["bash", str(REPO / "substrate/build-sonobuoy.sh")], capture_output=True, text=True,
                           check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    binary = built.stdout.strip().splitlines()[-1]
    version = next(line.split("=", 1)[1] for line in (REPO / "substrate/versions.env").read_text().splitlines()
                   if line.startswith("SONOBUOY_VERSION="))
    aggregator = f"k8sdns.local/sonobuoy:{version}"
    runner = _plugin()["spec"]["image"]
    assert shared_run.kind is not None
    images = [runner, aggregator, GLIBC_IMAGE, MUSL_IMAGE]
    assert set(images) <= set(shared_run.kind.load_images(images))
    cli = [binary, f"--kubeconfig={shared_run.kind.kubeconfig}", f"--context=kind-{shared_run.kind.name}"]
    try:
        yield shared_run, [*cli, f"--sonobuoy-image={aggregator}"]
    finally:
        gone = subprocess.run([*cli[:1], "delete", "--wait", *cli[1:]], capture_output=True, text=True,
                              timeout=600, check=False)
        assert gone.returncode == 0, gone.stdout + gone.stderr
        left = [n.metadata.name for n in shared_run.cluster.core.list_namespace().items
                if n.metadata.name == "sonobuoy" or n.metadata.name.startswith("k8sdns-")
                and n.metadata.name != shared_run.namespace]
        assert not left, left


def test_sonobuoy_lists_every_check(sonobuoy: tuple[Run, list[str]], tmp_path: Path) -> None:
    run, cli = sonobuoy
    binary, kube, image = cli[0], cli[1:3], cli[3]
    plugin = _plugin()
    plugin["spec"]["args"] += [EXTERNAL, *FAST]  # the shared cluster's upstream name; short samples
    path = tmp_path / "sonobuoy-plugin.yaml"
    path.write_text(yaml.safe_dump(plugin))
    started = subprocess.run([binary, "run", f"--plugin={path}", image, "--image-pull-policy=IfNotPresent",
                              "--wait=30", *kube], capture_output=True, text=True, timeout=2400, check=False)
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    got = subprocess.run([binary, "retrieve", str(tmp_path), *kube], capture_output=True, text=True, timeout=300,
                         check=False)
    assert got.returncode == 0, got.stdout + got.stderr
    tarball = got.stdout.strip().splitlines()[-1]
    detailed = subprocess.run([binary, "results", tarball, "--mode=detailed"], capture_output=True, text=True,
                              timeout=120, check=False)
    assert detailed.returncode == 0, detailed.stdout + detailed.stderr
    listed = [json.loads(line) for line in detailed.stdout.splitlines() if line.strip()]
    print(subprocess.run([binary, "results", tarball], capture_output=True, text=True, check=False).stdout)
    # the plugin's own files came along: the results file says which checks ran and how they ended
    with tarfile.open(tarball) as outer:
        outer.extractall(tmp_path / "retrieved", filter="data")
    (results,) = (tmp_path / "retrieved").rglob("results.json")
    doc = json.loads(results.read_text())
    assert doc["cluster"]["context"] == "in-cluster"
    assert len(doc["checks"]) >= 80, len(doc["checks"])
    want = Counter((c["nodeid"].rsplit("::", 1)[-1], STATUS[c["outcome"]]) for c in doc["checks"])
    # one line per test case, and one without a name: the run's health summary
    have = Counter((str(item["name"]), item["status"]) for item in listed if "name" in item)
    assert have == want, (sorted((want - have).elements())[:20], sorted((have - want).elements())[:20])
    assert {c["outcome"] for c in doc["checks"]} <= {"passed", "skipped"}, \
        [(c["nodeid"], c.get("message")) for c in doc["checks"] if c["outcome"] not in ("passed", "skipped")]
