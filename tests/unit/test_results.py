"""The results document, its shipped JSON Schema, and `python -m pytest_k8sdns.results`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from results_docs import healthy

from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.results import SCHEMA_PATH, Results, load, main, schema, validate

LAT = "test_latency.py::test_lookup_latency[glibc]"


def _write(tmp_path: Path, name: str, doc: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return str(path)


def test_schema_ships_in_the_package() -> None:
    assert SCHEMA_PATH.parent.name == "pytest_k8sdns" and SCHEMA_PATH.name == "results.schema.json"
    assert schema()["$schema"].endswith("/draft/2020-12/schema")
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert 'pytest_k8sdns = ["py.typed", "*.json"]' in pyproject


def test_a_document_of_results_is_valid() -> None:
    results = Results()
    nodeid = "../../conformance/test_latency.py::test_lookup_latency[musl]"
    results.measure(nodeid, "p99_ms", 3.2, "ms")
    results.measure(nodeid, "restarts", {"coredns-1": 0})
    results.add_series(nodeid, "latency_ms", [0.5, 1, 3.2], "ms")
    results.outcomes[nodeid] = {"outcome": "passed", "duration_s": 1.0}
    results.outcomes["conformance/test_nodelocal.py::test_caches"] = {"outcome": "skipped", "duration_s": 0.0,
                                                                      "message": "no NodeLocal"}
    results.facts.update(server_version="v1.34.4", nodes=[], coredns="coredns")
    doc = results.document({"p50_ms": 20.0, "p99_ms": 100.0, "max_error_rate": 0.001, "max_retry_signatures": 0,
                            "samples": 300, "bursts": 20, "burst_size": 8, "profile": "certification"})
    assert validate(doc) == []
    entry = next(c for c in doc["checks"] if c["id"] == "test_latency.py::test_lookup_latency[musl]")
    assert entry["name"] == "test_lookup_latency" and entry["series"]["latency_ms"]["values"] == [0.5, 1.0, 3.2]
    assert doc["profile"] == "certification" and doc["summary"] == {"passed": 1, "failed": 0, "skipped": 1, "error": 0}


def test_errors_are_one_line_each_with_their_place() -> None:
    doc = healthy()
    doc["checks"][0]["outcome"] = "great"
    doc["checks"][1]["measurements"]["lookups"] = {"value": 3}
    del doc["cluster"]["server_version"]
    errors = validate(doc)
    assert errors == [
        "$.checks[0].outcome: 'great' is not one of ['passed', 'failed', 'skipped', 'error', 'unknown']",
        "$.checks[1].measurements.lookups: 'unit' is a required property",
        "$.cluster: 'server_version' is a required property",
    ]


def test_long_messages_are_cut() -> None:
    doc = healthy()
    doc["cluster"] = "x" * 1000
    (line,) = validate(doc)
    assert line.startswith("$.cluster: 'xxx") and line.endswith("...") and len(line) < 230


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "good.json", healthy())
    assert main(["validate", good]) == 0
    assert capsys.readouterr().out == f"{good}: valid (schema_version 1, 11 checks)\n"

    bad_doc = healthy()
    bad_doc["schema_version"] = 2
    bad = _write(tmp_path, "bad.json", bad_doc)
    assert main(["validate", good, bad]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{bad}: $.schema_version: 1 was expected"]

    assert main(["validate", _write(tmp_path, "trunc.json", '{"schema_version": ')]) == 1
    assert "trunc.json: not JSON: line 1 column 20: Expecting value" in capsys.readouterr().err

    assert main(["validate", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'missing.json'}: cannot read it (No such file or directory)\n"


def test_cli_usage_error_is_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest_k8sdns.results"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "usage: python -m pytest_k8sdns.results" in proc.stderr


def test_cli_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _write(tmp_path, "before.json", healthy())
    after = _write(tmp_path, "after.json", healthy(**{LAT: {"p99_ms": 20.0}}))
    assert main(["compare", before, before]) == 0
    assert main(["compare", before, after]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2].endswith("FAILED, 1 regression")
    assert out[-1] == f"  p99 grew x2.50 (more than x1.5): {LAT} p99_ms 8 -> 20 ms"
    assert main(["compare", "--max-p99-growth", "3", before, after]) == 0
    assert main(["compare", before, _write(tmp_path, "x.json", "[]")]) == 2
    assert "AFTER=" in capsys.readouterr().err


def test_load_names_option_and_first_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(_write(tmp_path, "b.json", {"checks": []}), "--k8sdns-baseline")
    message = str(err.value)
    assert message.startswith(f"--k8sdns-baseline={tmp_path / 'b.json'} is not a pytest-k8sdns results file: $: ")
    assert "more)" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"cannot read it \(No such file or directory\)"):
        load(tmp_path / "nope.json", "--k8sdns-baseline")
