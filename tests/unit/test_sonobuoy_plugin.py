"""fixtures/sonobuoy-plugin.yaml and the runner's Sonobuoy mode: the plugin definition Sonobuoy
reads, and the pytest command line the mode builds (pure; the e2e test runs it through Sonobuoy)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pytest_k8sdns import runner
from pytest_k8sdns.files import fixture_path


def test_the_plugin_is_a_junit_job_running_the_runner_image_in_its_sonobuoy_mode() -> None:
    doc = yaml.safe_load(fixture_path("sonobuoy-plugin.yaml").read_text())
    config, spec = doc["sonobuoy-config"], doc["spec"]
    assert config["driver"] == "Job" and config["result-format"] == "junit" and config["plugin-name"] == "k8sdns"
    runner_yaml = [d for d in yaml.safe_load_all(fixture_path("runner.yaml").read_text()) if d and d["kind"] == "Job"]
    assert spec["image"] == runner_yaml[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert spec["command"] == ["python3", "-m", "pytest_k8sdns.runner", "sonobuoy"]
    assert spec["args"][0] == "--" and spec["imagePullPolicy"] == "IfNotPresent"
    # a read-only root: /tmp is a volume of the plugin's own (Sonobuoy mounts its results dir below it)
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "k8sdns-tmp", "mountPath": "/tmp"} in spec["volumeMounts"]
    assert [v["name"] for v in doc["extra-volumes"]] == ["k8sdns-tmp"]


def test_the_mode_writes_the_three_files_into_the_results_dir_and_lets_the_plugin_override() -> None:
    args = runner.sonobuoy_args(Path("/tmp/sonobuoy/results"), ["--k8sdns-samples=60"])
    assert "--k8sdns-context=in-cluster" in args
    assert "--junitxml=/tmp/sonobuoy/results/junit.xml" in args
    assert "--k8sdns-results=/tmp/sonobuoy/results/results.json" in args
    assert "--html=/tmp/sonobuoy/results/report.html" in args and "--self-contained-html" in args
    assert args[-1] == "--k8sdns-samples=60"  # the plugin's own arguments come last, so they win


def test_the_done_file_names_one_tarball_of_every_file(tmp_path: Path, monkeypatch) -> None:
    import subprocess
    import tarfile

    def pytest_writes(argv, check, cwd):  # stands in for the pytest run: only the file handling is judged
        for name in runner.SONOBUOY_OUTPUTS:
            (Path(cwd) / name).write_text(name)
        return subprocess.CompletedProcess(argv, 1)

    monkeypatch.setattr(runner.subprocess, "run", pytest_writes)
    assert runner.sonobuoy(tmp_path, []) == 0  # handed over; the verdict (exit 1) is in the JUnit XML
    tarball = Path((tmp_path / "done").read_text())
    assert tarball.parent == tmp_path
    with tarfile.open(tarball) as tar:
        assert sorted(tar.getnames()) == sorted(runner.SONOBUOY_OUTPUTS)
