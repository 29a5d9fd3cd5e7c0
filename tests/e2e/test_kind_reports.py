"""End to end: the outputs of a real `pytest --k8sdns-kind` run (the shared kind_session): the
self-contained HTML report renders in headless chromium with its plots and no console error, the
results file is valid against the shipped schema, and JUnit holds each check's figures."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import chromium
import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"  # git-ignored

#: evaluated in the page once pytest-html's script has built the results table
PAGE_FACTS = """(() => {
  const summary = document.getElementById("k8sdns-summary");
  const box = (el) => el ? el.getBoundingClientRect().top + window.scrollY : null;
  const img = (i) => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
                       src: i.src.slice(0, 22)});
  return {
    title: document.title,
    summaryTop: box(summary), environmentTop: box(document.getElementById("environment")),
    resultsTop: box(document.getElementById("results-table")),
    plots: summary ? [...summary.querySelectorAll("img")].map(img) : [],
    libcs: summary ? [...summary.querySelectorAll(".k8sdns-libc h4")].map(h => h.textContent) : [],
    sections: summary ? [...summary.querySelectorAll("h3")].map(h => h.textContent) : [],
    checkRows: summary ? summary.querySelectorAll("table.k8sdns-checks tr").length - 1 : 0,
    resultRows: document.querySelectorAll("#results-table tbody.results-table-row").length,
    extraPlots: [...document.querySelectorAll("#results-table .extraHTML img")].map(img),
    stylesheets: [...document.querySelectorAll("link[rel=stylesheet]")].map(l => l.href),
  };
})()"""


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def report(kind_session: dict) -> Path:
    path = kind_session["out"] / "report.html"
    assert path.exists(), kind_session["proc"].stdout[-4000:] + kind_session["proc"].stderr[-2000:]
    return path


def test_report_renders_in_chromium(report: Path, kind_session: dict, tmp_path: Path) -> None:
    if not chromium.chromium_path():
        pytest.skip("chromium is not installed; run substrate/build (install-host.sh installs it)")
    page = chromium.load(report, PAGE_FACTS, width=1280, height=1500)
    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")
    f = page.facts

    assert page.console_errors == []
    # one file: nothing loaded but the report itself and the data: URIs inside it
    assert [u for u in page.requests if not u.startswith("data:")] == [report.as_uri()]
    assert page.failed_loads == [] and f["stylesheets"] == []
    # the summary opens the report: above pytest-html's environment table and results
    assert f["summaryTop"] is not None and f["summaryTop"] < f["resultsTop"] < f["environmentTop"]
    assert f["libcs"] == ["glibc", "musl"]
    # first what the workloads should know: check 18's finding for the musl 1.2.3 probe (no TCP fallback)
    assert f["sections"][:2] == ["Client findings", "Lookups from inside pods, per libc"], f["sections"]
    assert f["sections"][-2:] == ["Checks", "Cluster"], f["sections"]
    assert "Nodes" in f["sections"] and "Replicas" in f["sections"], f["sections"]
    # the plots are images the browser decoded, with a real size
    alts = [p["alt"] for p in f["plots"]]
    assert alts[:2] == ["glibc latency CDF", "musl latency CDF"], alts
    assert len(alts) == 3 and "that judge every node" in alts[2], alts  # the node x check matrix
    assert all(p["complete"] and p["width"] > 100 and p["height"] > 100 and p["src"] == "data:image/png;base64,"
               for p in f["plots"]), f["plots"]
    checks = kind_session["results"]["checks"]
    assert f["checkRows"] == f["resultRows"] == len(checks)
    # the latency CDFs of the two libcs and the timelines of check 16's four built-in changes
    assert len(f["extraPlots"]) == 6 and all(p["complete"] and p["width"] > 100 for p in f["extraPlots"])
    assert f["title"].startswith("DNS from inside pods: report.html")
    assert _png_size(page.screenshot) == (1280, 1500)
    print(f"report {report.stat().st_size} bytes; screenshot {len(page.screenshot)} bytes at {ARTIFACTS / 'report.png'}")


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text()
    assert not (report.parent / "assets").exists()
    assert "src='data:image/png;base64," in html
    assert report.stat().st_size < 2_000_000


def test_results_file_is_valid_against_the_shipped_schema(kind_session: dict) -> None:
    results = kind_session["out"] / "results.json"
    proc = subprocess.run([sys.executable, "-m", "pytest_k8sdns.results", "validate", str(results)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{results}: valid (schema_version 1, ")
    doc = kind_session["results"]
    assert doc["suite_version"] and doc["profile"] == "default"
    facts = doc["cluster"]
    assert facts["server_version"].startswith("v1.34") and facts["nodelocal"] == "absent"
    assert all(n["kernel"] and n["container_runtime"].startswith("containerd://") for n in facts["nodes"])
    lookup = {c["params"]["libc"]: c for c in doc["checks"] if c["name"] == "test_lookup_latency"}
    for c in lookup.values():
        values = c["series"]["latency_ms"]["values"]
        assert len(values) == c["measurements"]["lookups"]["value"] - c["measurements"]["errors"]["value"]
        assert c["number"] == 9 and max(values) == pytest.approx(c["measurements"]["max_ms"]["value"], abs=0.01)
    assert set(lookup) == {"glibc", "musl"}
    assert sum(doc["summary"].values()) == len(doc["checks"])


def test_junit_holds_each_checks_figures(kind_session: dict) -> None:
    root = ET.parse(kind_session["out"] / "junit.xml").getroot()
    props = {f"{c.get('name')}": {p.get("name"): p.get("value") for p in c.iter("property")} for c in root.iter("testcase")}
    for libc in ("glibc", "musl"):
        latency = props[f"test_lookup_latency[{libc}]"]
        assert {"p50_ms", "p90_ms", "p99_ms", "max_ms", "errors", "retry_signatures"} <= set(latency)
        assert float(latency["p99_ms"]) > 0 and "latency_ms" not in latency
        assert props[f"test_retry_signature[{libc}]"]["retry_signatures"] == "0"
    assert "server_p99_ms" in props["test_server_latency"]
