"""Whole pytest sessions (pytester): options, ini twins, collection of the packaged suite, errors."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")


def _kubeconfig(pytester: pytest.Pytester, server: str = "https://127.0.0.1:1", contexts: tuple[str, ...] = ("alpha", "beta")) -> str:
    ctx = "\n".join(f"- name: {c}\n  context: {{cluster: c, user: u}}" for c in contexts)
    path = pytester.makefile(".yaml", kubeconfig=textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters:
        - name: c
          cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
        users:
        - name: u
          user: {{token: not-a-secret}}
        current-context: {contexts[0]}
        contexts:
        """) + ctx + "\n")
    return str(path)


def _one_error_line(result: pytest.RunResult) -> str:
    lines = [ln for ln in result.stderr.lines if ln.startswith("ERROR:")]
    assert len(lines) == 1, result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    return lines[0]


def _usage_error_line(pytester: pytest.Pytester, args: list[str], ini: str) -> str:
    """Run with `args` (and `ini` as the ini file, if any): a usage error of one line, returned."""
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    return _one_error_line(result)


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    for flag in ("--k8sdns-context=NAME", "--k8sdns-kubeconfig=FILE", "--k8sdns-kind ", "--k8sdns-keep-cluster",
                 "--k8sdns-kind-image", "--k8sdns-glibc-image", "--k8sdns-musl-image", "--k8sdns-p99-ms",
                 "--k8sdns-require-nodelocal", "--k8sdns-results"):
        result.stdout.fnmatch_lines([f"*{flag}*"])
    result.stdout.fnmatch_lines(["*k8sdns_p99_ms*"])


def test_unknown_context_lists_contexts(pytester: pytest.Pytester) -> None:
    kc = _kubeconfig(pytester)
    result = pytester.runpytest_subprocess("--k8sdns-context=nope", f"--k8sdns-kubeconfig={kc}")
    assert result.ret != 0
    line = _one_error_line(result)
    assert line == f"ERROR: context 'nope' is not in {kc}; contexts there: alpha, beta"


def test_unreachable_api_names_the_server(pytester: pytest.Pytester) -> None:
    kc = _kubeconfig(pytester, server="https://127.0.0.1:1")
    result = pytester.runpytest_subprocess("--k8sdns-context=alpha", f"--k8sdns-kubeconfig={kc}")
    assert result.ret != 0
    assert "cannot reach the Kubernetes API at https://127.0.0.1:1" in _one_error_line(result)


def test_missing_kubeconfig(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--k8sdns-context=alpha", "--k8sdns-kubeconfig=/nonexistent/kc")
    assert _one_error_line(result) == "ERROR: no kubeconfig at /nonexistent/kc; pass --k8sdns-kubeconfig=FILE or set KUBECONFIG"


@pytest.mark.parametrize(("args", "ini", "needle"), [
    (["--k8sdns-p99-ms=fast"], "", "--k8sdns-p99-ms='fast' is not valid"),
    (["--k8sdns-samples=0"], "", "--k8sdns-samples='0' is not valid (must be at least 1)"),
    ([], "k8sdns_max_error_rate = lots", "ini option k8sdns_max_error_rate='lots' is not valid"),
    (["--k8sdns-kind", "--k8sdns-context=x"], "", "--k8sdns-kind and --k8sdns-context exclude each other"),
    (["--k8sdns-kind-nodelocal"], "", "--k8sdns-kind-nodelocal deploys NodeLocal DNSCache on the kind cluster"),
    (["--k8sdns-nodes=0"], "", "--k8sdns-nodes='0' is not valid: give all, a number of nodes of at least 1, or a "
                               "label selector"),
    ([], "k8sdns_nodes = zone in eu", "--k8sdns-nodes='zone in eu' is not valid"),
    (["--k8sdns-max-qps=0"], "", "--k8sdns-max-qps='0' is not valid (a query budget must be a finite number above 0)"),
    (["--k8sdns-capacity-growth=1"], "", "--k8sdns-capacity-growth='1' is not valid (a ramp's growth per step must be "
                                         "1.01 to 4)"),
    ([], "k8sdns_capacity_max_rate = 500000", "ini option k8sdns_capacity_max_rate='500000' is not valid (the ramp's "
                                              "last rate must be 100 to 200000 queries/s)"),
    (["--k8sdns-capacity-max-loss=2"], "", "--k8sdns-capacity-max-loss='2' is not valid (a share must be between 0 and 1)"),
    ([], "k8sdns_capacity_sockets = 0", "ini option k8sdns_capacity_sockets='0' is not valid (a load pod has 1 to 64 "
                                        "sockets)"),
])
def test_bad_values_one_line(pytester: pytest.Pytester, args: list[str], ini: str, needle: str) -> None:
    assert needle in _usage_error_line(pytester, args, ini)


def test_collects_packaged_suite_from_anywhere(pytester: pytest.Pytester) -> None:
    """With a cluster option and no paths, the packaged suite is collected (here without running)."""
    kc = _kubeconfig(pytester)
    result = pytester.runpytest_subprocess("--k8sdns-context=alpha", f"--k8sdns-kubeconfig={kc}", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    for module in ("test_latency", "test_loop", "test_ndots", "test_nodelocal", "test_records", "test_replicas"):
        result.stdout.fnmatch_lines([f"*{module}.py::*"])
    result.stdout.fnmatch_lines(["*test_lookup_latency?glibc?*", "*test_lookup_latency?musl?*"])


def test_suite_without_cluster_is_a_usage_error(pytester: pytest.Pytester) -> None:
    import pytest_k8sdns.plugin as plugin

    result = pytester.runpytest_subprocess(str(plugin._suite_dir()))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "the conformance suite needs a cluster: pass --k8sdns-context=NAME or --k8sdns-kind" in _one_error_line(result)


def test_kind_without_docker_or_kind(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(pytester.path))  # neither kind nor docker on PATH
    result = pytester.runpytest_subprocess("--k8sdns-kind")
    assert result.ret != 0
    assert "docker is not on PATH; install it, or use --k8sdns-context" in _one_error_line(result)


def test_plain_sessions_are_untouched(pytester: pytest.Pytester) -> None:
    """Without a cluster option the plugin adds nothing: a user's own tests run as before."""
    pytester.makepyfile("def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)


def _fake_docker(pytester: pytest.Pytester, info_exit: int, info_stderr: str = "") -> str:
    """A bin directory whose only tool is a `docker` that answers `docker info` as told."""
    bindir = pytester.mkdir("fakebin")
    docker = bindir / "docker"
    docker.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = info ]; then
            [ {info_exit} -eq 0 ] && echo 26.1.5
            printf '%s\\n' '{info_stderr}' >&2
            exit {info_exit}
        fi
        exit 0
        """))
    docker.chmod(0o755)
    return str(bindir)


def test_kind_missing_with_docker_present(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _fake_docker(pytester, 0))
    result = pytester.runpytest_subprocess("--k8sdns-kind")
    assert result.ret != 0
    assert _one_error_line(result) == ("ERROR: kind is not on PATH; install it (substrate/build builds it), or test "
                                       "an existing cluster with --k8sdns-context")


def test_docker_engine_not_answering(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    said = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    monkeypatch.setenv("PATH", _fake_docker(pytester, 1, said))
    result = pytester.runpytest_subprocess("--k8sdns-kind")
    assert result.ret != 0
    assert _one_error_line(result) == (f"ERROR: no Docker engine answers (`docker info`: {said}); start one, or test "
                                       f"an existing cluster with --k8sdns-context")


@pytest.mark.parametrize(("args", "needle"), [
    (["--k8sdns-context=x", "--k8sdns-namespace=Bad_Name"],
     "--k8sdns-namespace='Bad_Name' is not a namespace name (lowercase letters, digits and '-', at most 63)"),
    (["--k8sdns-kind", "--k8sdns-namespace=k8sdns"],
     "--k8sdns-namespace names a namespace made for the suite on an existing cluster; a kind cluster the plugin "
     "creates has none: drop it, or use --k8sdns-context"),
])
def test_bad_namespace_option(pytester: pytest.Pytester, args: list[str], needle: str) -> None:
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _one_error_line(result) == f"ERROR: {needle}"


def test_user_run_outside_the_repo_prints_no_dependency_warning(tmp_path) -> None:
    """A user's run in a directory of their own (no ini of this repo): the plugin loads by its entry
    point and neither it nor any of its dependencies warns (pytest-asyncio used to, about
    asyncio_default_fixture_loop_scope, though nothing imported it)."""
    import re
    import subprocess
    import sys

    (tmp_path / "test_user.py").write_text("def test_one():\n    pass\n")
    for argv in (["--co", "-q"], ["-q"], ["--help"]):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-W", "error", "-p", "no:cacheprovider", *argv],
                              cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        assert "k8sdns" in out or argv != ["--help"]
        warned = [line for line in out.splitlines() if re.search(r"\b\w*Warning\b: ", line)]
        assert not warned, out
