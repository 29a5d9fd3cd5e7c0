"""Whole sessions (pytester) against the stand-in API server: the upgrade gate fails a run whose
checks all pass, says why in its own terminal section, and the HTML shows before and after."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest
from fake_api import FakeApi, kubeconfig

from pytest_k8sdns.results import validate

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

CHECKS = textwrap.dedent("""\
    import os
    import pytest

    @pytest.mark.k8sdns_check(9)
    @pytest.mark.parametrize("libc", ["glibc", "musl"])
    def test_lookup_latency(k8sdns_record, libc):
        p99 = float(os.environ["FAKE_P99_MS"])
        k8sdns_record("p99_ms", p99, "ms")
        k8sdns_record("retry_signatures", int(os.environ["FAKE_RETRIES"]))
        k8sdns_record.series("latency_ms", [0.4, 0.5, p99], "ms")
    """)


@pytest.fixture()
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


def _run(pytester: pytest.Pytester, api: FakeApi, monkeypatch: pytest.MonkeyPatch, p99: float, retries: int,
         *args: str) -> pytest.RunResult:
    monkeypatch.setenv("FAKE_P99_MS", str(p99))
    monkeypatch.setenv("FAKE_RETRIES", str(retries))
    path = pytester.path / "kubeconfig.json"
    path.write_text(kubeconfig(api.url))
    pytester.makepyfile(test_checks=CHECKS)
    return pytester.runpytest_subprocess("--k8sdns-context=fake", f"--k8sdns-kubeconfig={path}",
                                         "-p", "no:cacheprovider", *args, "test_checks.py")


def test_gate_fails_a_run_whose_checks_pass(pytester: pytest.Pytester, api: FakeApi,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    first = _run(pytester, api, monkeypatch, 8.0, 0, "--k8sdns-results=before.json")
    first.assert_outcomes(passed=2)
    assert first.ret == 0

    after = _run(pytester, api, monkeypatch, 40.0, 2, "--k8sdns-baseline=before.json", "--k8sdns-results=after.json",
                 "--html=report.html", "--self-contained-html")
    after.assert_outcomes(passed=2)
    assert after.ret == pytest.ExitCode.TESTS_FAILED
    after.stdout.fnmatch_lines([
        "*= k8sdns upgrade gate =*",
        "upgrade gate against before.json (*, pytest-k8sdns *): FAILED, 4 regressions",
        "  p99 grew x5.00 (more than x1.5): test_checks.py::test_lookup_latency[glibc] p99_ms 8 -> 40 ms",
        "  p99 grew x5.00 (more than x1.5): test_checks.py::test_lookup_latency[musl] p99_ms 8 -> 40 ms",
        "  new retry signatures: test_checks.py::test_lookup_latency[glibc] 0 -> 2 lookups at the libc retry time",
        "  new retry signatures: test_checks.py::test_lookup_latency[musl] 0 -> 2 lookups at the libc retry time",
    ])
    doc = json.loads((pytester.path / "after.json").read_text())
    assert validate(doc) == []
    assert doc["baseline"]["ok"] is False and doc["baseline"]["file"] == "before.json"
    assert {r["kind"] for r in doc["baseline"]["regressions"]} == {"p99-growth", "new-retry-signatures"}
    html = (pytester.path / "report.html").read_text()
    assert "Upgrade gate: before and after" in html and "<tr class='regressed'><td>p99 (ms)</td>" in html
    assert html.count("data:image/png;base64,") >= 2


def test_gate_passes_within_the_ratio_and_the_ini_twin_counts(pytester: pytest.Pytester, api: FakeApi,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _run(pytester, api, monkeypatch, 8.0, 0, "--k8sdns-results=before.json")
    pytester.makeini("[pytest]\nk8sdns_max_p99_growth = 6\n")
    result = _run(pytester, api, monkeypatch, 40.0, 0, "--k8sdns-baseline=before.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*= k8sdns upgrade gate =*", "upgrade gate against before.json (*): passed"])
    # the command line wins over ini
    assert _run(pytester, api, monkeypatch, 40.0, 0, "--k8sdns-baseline=before.json",
                "--k8sdns-max-p99-growth=4").ret == pytest.ExitCode.TESTS_FAILED
