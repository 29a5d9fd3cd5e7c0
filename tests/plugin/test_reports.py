"""Whole sessions (pytester) for what issue 5 adds around the checks: JUnit properties, the
certification profile's rules, and the one-line errors of the profile and upgrade-gate options."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET

import pytest
from test_options import _kubeconfig, _one_error_line, _usage_error_line

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

CHECK = textwrap.dedent("""\
    import pytest

    @pytest.mark.k8sdns_check(9)
    def test_latency(k8sdns_record):
        k8sdns_record("p99_ms", 3.25, "ms")
        k8sdns_record("retry_signatures", 0)
        k8sdns_record.series("latency_ms", [0.5, 3.25], "ms")
    """)


#: record_property warns (PytestWarning) where the JUnit schema has no properties: make that an error
STRICT = ("-W", "error::pytest.PytestWarning", "-W", "ignore::pytest.PytestDeprecationWarning")


def _properties(xml_path) -> dict[str, dict[str, str]]:
    root = ET.parse(xml_path).getroot()
    return {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
            for case in root.iter("testcase")}


@pytest.mark.parametrize("family", ["legacy", "xunit1"])
def test_junit_gets_each_figure_as_a_property(pytester: pytest.Pytester, family: str) -> None:
    pytester.makeini(f"[pytest]\njunit_family = {family}\n")
    pytester.makepyfile(test_checks=CHECK)
    result = pytester.runpytest_subprocess("--junitxml=junit.xml", *STRICT)
    result.assert_outcomes(passed=1)
    # the figures, not the raw series
    assert _properties(pytester.path / "junit.xml") == {"test_latency": {"p99_ms": "3.25", "retry_signatures": "0"}}


def test_junit_xunit2_puts_the_figures_on_the_suite_without_a_warning(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=CHECK)
    result = pytester.runpytest_subprocess("--junitxml=junit.xml", *STRICT)
    result.assert_outcomes(passed=1)
    assert _properties(pytester.path / "junit.xml") == {"test_latency": {}}  # the xunit2 schema has none here
    suite = next(ET.parse(pytester.path / "junit.xml").getroot().iter("testsuite"))
    found = suite.find("properties")
    assert found is not None
    properties = {p.get("name"): p.get("value") for p in found}
    assert properties == {"test_checks.py::test_latency::p99_ms": "3.25",
                          "test_checks.py::test_latency::retry_signatures": "0"}


CERTIFIED = textwrap.dedent("""\
    import pytest

    def test_plain_skip():
        pytest.skip("no upstream name given")

    @pytest.mark.k8sdns_check(14)
    def test_nodelocal_skip():
        pytest.skip("no NodeLocal DNSCache deployed")

    @pytest.fixture
    def musl_pod():
        pytest.skip("no musl image")

    def test_musl(musl_pod):
        pass

    @pytest.mark.xfail(reason="known")
    def test_expected_failure():
        assert False
    """)


@pytest.mark.parametrize(("nodelocal", "outcomes"), [
    ("absent", {"passed": 0, "failed": 1, "errors": 1, "skipped": 1, "xfailed": 1}),
    ("daemonset kube-system/node-local-dns ready 2/2", {"passed": 0, "failed": 2, "errors": 1, "xfailed": 1}),
])
def test_certification_turns_skips_into_failures(pytester: pytest.Pytester, nodelocal: str, outcomes: dict) -> None:
    """Only NodeLocal's checks may skip, and only when the cluster has none."""
    pytester.makeconftest(textwrap.dedent(f"""\
        from pytest_k8sdns.verdict.certification import Certification

        def pytest_configure(config):
            config.pluginmanager.register(Certification(lambda: {{"nodelocal": {nodelocal!r}}}))
        """))
    pytester.makepyfile(test_checks=CERTIFIED)
    result = pytester.runpytest_subprocess("-rA")
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_musl*", "the certification profile refuses skips: no musl image",
                                 "*_ test_plain_skip _*",
                                 "the certification profile refuses skips: no upstream name given"])


@pytest.mark.parametrize(("args", "ini", "needle"), [
    (["--k8sdns-profile=gold"], "",
     "ERROR: --k8sdns-profile='gold' is not a valid profile; valid values: default, certification"),
    ([], "k8sdns_profile = strict", ("ERROR: ini option k8sdns_profile='strict' is not a valid profile; valid values: "
                                     "default, certification")),
    (["--k8sdns-max-p99-growth=0.9"], "", "--k8sdns-max-p99-growth='0.9' is not valid (a growth ratio must be at least 1)"),
    ([], "k8sdns_max_p99_growth = lots", "ini option k8sdns_max_p99_growth='lots' is not valid"),
    (["--k8sdns-baseline=missing.json"], "",
     "ERROR: --k8sdns-baseline=missing.json: cannot read it (No such file or directory)"),
])
def test_bad_profile_and_gate_options(pytester: pytest.Pytester, args: list[str], ini: str, needle: str) -> None:
    assert needle in _usage_error_line(pytester, args, ini)


def test_baseline_that_is_not_a_results_file(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("before.json").write_text(json.dumps({"schema_version": 1, "checks": [{"nodeid": "x"}]}))
    result = pytester.runpytest_subprocess("--k8sdns-baseline=before.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _one_error_line(result)
    assert line.startswith("ERROR: --k8sdns-baseline=before.json is not a pytest-k8sdns results file: "
                           "$: 'suite_version' is a required property (and 12 more); ")
    assert line.endswith("check it with `python -m pytest_k8sdns.results validate FILE`")


@pytest.mark.parametrize(("args", "needle"), [
    (["-k", "latency"], "the certification profile runs every check; drop -k (or use --k8sdns-profile=default)"),
    (["-m", "not slow"], "the certification profile runs every check; drop -m"),
    (["tests/test_mine.py"], "the certification profile runs the whole packaged suite ("),
    (["-p", "no:html"], "the certification profile writes an HTML report, but pytest-html is disabled (-p no:html)"),
])
def test_certification_refuses_partial_runs(pytester: pytest.Pytester, args: list[str], needle: str) -> None:
    kc = _kubeconfig(pytester)
    result = pytester.runpytest_subprocess("--k8sdns-profile=certification", "--k8sdns-context=alpha",
                                           f"--k8sdns-kubeconfig={kc}", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert needle in _one_error_line(result)
    assert not list(pytester.path.glob("k8sdns-*"))


def test_help_lists_the_new_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--k8sdns-baseline=FILE*", "*--k8sdns-profile=PROFILE*", "*--k8sdns-max-p99-growth=*",
                                 "*k8sdns_max_p99_growth*", "*k8sdns_profile*"])
