"""Whole sessions (pytester) against a stand-in API server: the permission check before a run,
runs in an existing namespace, xdist workers, and what reports leave out (credentials)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from fake_api import FakeApi, kubeconfig
from test_options import _one_error_line

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

CHECKS = textwrap.dedent("""\
    def test_measures(k8sdns_namespace, k8sdns_record):
        k8sdns_record("namespace_length", len(k8sdns_namespace), "chars")

    def test_fails(k8sdns_run):
        assert False, "a failing check on " + k8sdns_run.cluster.server
    """)


@pytest.fixture()
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


def _run(pytester: pytest.Pytester, api: FakeApi, *args: str, kc: str | None = None) -> pytest.RunResult:
    path = pytester.path / "kubeconfig.json"
    path.write_text(kc or kubeconfig(api.url))
    pytester.makepyfile(test_checks=CHECKS)
    return pytester.runpytest_subprocess("--k8sdns-context=fake", f"--k8sdns-kubeconfig={path}",
                                         "-p", "no:cacheprovider", *args, "test_checks.py")


def test_missing_permission_is_named_in_one_line(pytester: pytest.Pytester, api: FakeApi) -> None:
    api.namespaces["work"] = {}
    api.denied = {("create", "pods/exec")}
    result = _run(pytester, api, "--k8sdns-namespace=work")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _one_error_line(result) == (
        f"ERROR: Forbidden: cannot create pods/exec in namespace work on {api.url}; grant it to this identity "
        f"(fixtures/rbac.yaml lists what the suite needs)")
    # nothing was made before the check said no
    assert [p for p in api.paths("POST") if "selfsubjectaccessreviews" not in p] == []


def test_several_missing_permissions_in_one_line(pytester: pytest.Pytester, api: FakeApi) -> None:
    api.denied = {("create", "namespaces"), ("list", "nodes"), ("get", "pods/log")}
    line = _one_error_line(_run(pytester, api))
    assert line.startswith("ERROR: Forbidden: cannot get pods/log in namespace kube-system, list nodes cluster-wide, "
                           "create namespaces cluster-wide on "), line
    assert line.endswith("; or run in a namespace made for the suite with --k8sdns-namespace=NAME")
    assert api.created_namespaces == []


def test_refused_credentials(pytester: pytest.Pytester, api: FakeApi) -> None:
    api.status_for_all = 401
    line = _one_error_line(_run(pytester, api))
    assert line == (f"ERROR: Unauthorized at {api.url}: the kubeconfig's credentials were refused; refresh them "
                    f"or pick another --k8sdns-context")


def test_existing_namespace_must_exist(pytester: pytest.Pytester, api: FakeApi) -> None:
    line = _one_error_line(_run(pytester, api, "--k8sdns-namespace=nope"))
    assert line == (f"ERROR: namespace nope does not exist on {api.url}; create it (fixtures/rbac.yaml does) "
                    f"or drop --k8sdns-namespace")


def test_existing_namespace_held_by_another_run(pytester: pytest.Pytester, api: FakeApi) -> None:
    api.namespaces["work"] = {}
    api.pods["work"] = [{"metadata": {"name": "probe-glibc", "labels": {
        "app.kubernetes.io/managed-by": "pytest-k8sdns", "k8sdns.io/run": "0a1b2c"}}}]
    line = _one_error_line(_run(pytester, api, "--k8sdns-namespace=work"))
    assert line == ("ERROR: namespace work holds pods of another run (0a1b2c); wait for it to end, or if it was "
                    "killed, delete them: kubectl delete pods -n work -l k8sdns.io/run=0a1b2c")


def test_existing_namespace_is_kept_and_emptied(pytester: pytest.Pytester, api: FakeApi) -> None:
    api.namespaces["work"] = {}
    result = _run(pytester, api, "--k8sdns-namespace=work")
    result.assert_outcomes(passed=1, failed=1)
    assert api.created_namespaces == [] and api.deleted_namespaces == []
    # the run's pods go by label; the namespace stays
    assert "/api/v1/namespaces/work/pods" in api.paths("DELETE")


def test_own_namespace_is_made_and_deleted(pytester: pytest.Pytester, api: FakeApi) -> None:
    result = _run(pytester, api)
    result.assert_outcomes(passed=1, failed=1)
    assert len(api.created_namespaces) == 1 and api.created_namespaces[0].startswith("k8sdns-")
    assert api.deleted_namespaces == api.created_namespaces


# ---- xdist -------------------------------------------------------------------------------------

def test_xdist_workers_get_their_own_namespaces_and_one_results_file(pytester: pytest.Pytester, api: FakeApi) -> None:
    pytester.makepyfile(test_more="def test_more(k8sdns_namespace, k8sdns_record):\n"
                                  "    k8sdns_record('worker_namespace', k8sdns_namespace)\n")
    result = _run(pytester, api, "-n", "2", "--k8sdns-results=results.json", "--html=report.html", "test_more.py")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["k8sdns: context fake; each xdist worker connects and makes its own namespace"])
    # the report's environment table holds the cluster facts a worker sent
    assert f"{api.url} (v1.34.0-fake)" in (pytester.path / "report.html").read_text()
    # one namespace per worker, named by the worker; the controller makes none
    created = sorted(api.created_namespaces, key=lambda ns: ns[-3:])
    assert len(created) == 2 and created[0].endswith("-gw0") and created[1].endswith("-gw1"), created
    assert sorted(api.deleted_namespaces) == sorted(created)
    assert sorted(p.name for p in pytester.path.glob("results*.json")) == ["results.json"]
    doc = json.loads((pytester.path / "results.json").read_text())
    by_test = {c["nodeid"]: c for c in doc["checks"]}
    assert set(by_test) == {"test_checks.py::test_measures", "test_checks.py::test_fails", "test_more.py::test_more"}
    # measurements made in the workers reach the controller's file
    assert by_test["test_more.py::test_more"]["measurements"]["worker_namespace"]["value"] in created
    assert by_test["test_checks.py::test_measures"]["measurements"]["namespace_length"]["value"] > 0
    assert doc["cluster"]["worker_namespaces"] == {"gw0": created[0], "gw1": created[1]}
    assert doc["cluster"]["server_version"] == "v1.34.0-fake"


def test_xdist_root_causes_found_in_a_worker_reach_the_controller(pytester: pytest.Pytester, api: FakeApi) -> None:
    """A worker's run finds a cause (here a finding a fixture adds, as dns_paths adds the node x
    replica matrix's); the controller's results and terminal open with it, and the check it spoiled."""
    pytester.makepyfile(test_sick=textwrap.dedent("""\
        def test_spoiled(k8sdns_run):
            k8sdns_run.findings.append(lambda: [{"kind": "replica", "where": "coredns-x", "proto": "udp",
                                                  "owner": "test_every_replica_answers",
                                                  "text": "replica coredns-x (10.0.0.9) does not answer over udp"}])
            assert False, "not judged: 3 of 5 lookups timed out (root cause: replica coredns-x)"
        """))
    result = _run(pytester, api, "-n", "2", "--k8sdns-results=results.json", "test_sick.py")
    result.assert_outcomes(passed=1, failed=2)
    doc = json.loads((pytester.path / "results.json").read_text())
    assert [(c["kind"], c["where"], c["affected"]) for c in doc["root_causes"]] == [
        ("replica", "coredns-x", ["test_sick.py::test_spoiled"])]
    result.stdout.fnmatch_lines(["*k8sdns root cause*", "replica coredns-x (10.0.0.9) does not answer over udp*",
                                 "  affected 1 checks: test_spoiled"])


@pytest.mark.parametrize(("option", "needle"), [
    ("--k8sdns-kind", "--k8sdns-kind makes one cluster per pytest session and xdist runs a session per worker; "
                      "make the cluster once (python -m pytest_k8sdns.devcluster up) and pass its --k8sdns-context, or use -n 0"),
    ("--k8sdns-namespace=work", "--k8sdns-namespace=work holds one run at a time and xdist runs one per worker; "
                                "use -n 0, or drop --k8sdns-namespace so that each worker makes its own namespace"),
    ("--k8sdns-capacity", "--k8sdns-capacity loads the cluster DNS to its knee, and under xdist other workers' checks "
                          "would run under that load and their queries would count in the ramp; use -n 0"),
])
def test_xdist_refuses_what_workers_cannot_share(pytester: pytest.Pytester, option: str, needle: str) -> None:
    args = ["-n", "2", option] + (["--k8sdns-context=x", "--k8sdns-kubeconfig=/nonexistent"] if "kind" not in option else [])
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _one_error_line(result) == f"ERROR: {needle}"


# ---- credentials stay out of every output --------------------------------------------------------

TOKEN = "k8sdns-canary-token-7f3a9c"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nazhzZG5zLWNhbmFyeS1jbGllbnQta2V5\n-----END PRIVATE KEY-----\n"
CERT_PEM = "-----BEGIN CERTIFICATE-----\nazhzZG5zLWNhbmFyeS1jbGllbnQtY2VydA==\n-----END CERTIFICATE-----\n"


def secrets_in(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets that occur in text (also base64-encoded, also any line of a PEM body)."""
    found = []
    for name, value in secrets.items():
        needles = {value, base64.b64encode(value.encode()).decode()}
        needles |= {ln for ln in value.splitlines() if ln and not ln.startswith("-----")}
        if any(n in text for n in needles):
            found.append(name)
    return found


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_reports_hold_no_credentials(pytester: pytest.Pytester, api: FakeApi, xdist: bool) -> None:
    kc = kubeconfig(api.url, token=TOKEN, client_key=base64.b64encode(KEY_PEM.encode()).decode(),
                    client_cert=base64.b64encode(CERT_PEM.encode()).decode())
    pytester.makeini("[pytest]\njunit_family = legacy\n")  # JUnit with per-test properties
    args = ["--k8sdns-results=results.json", "--html=report.html", "--junitxml=junit.xml", "-rA", "-vv"]
    result = _run(pytester, api, *args, *(["-n", "2"] if xdist else []), kc=kc)
    result.assert_outcomes(passed=1, failed=1)
    # the token did reach the API server, so it was in use during the run
    assert any(h.get("authorization") == f"Bearer {TOKEN}" for _, _, h in api.requests)
    outputs = {name: (pytester.path / name).read_text(errors="replace")
               for name in ("results.json", "report.html", "junit.xml")}
    outputs["terminal"] = result.stdout.str() + result.stderr.str()
    assert "namespace_length" in outputs["results.json"] and "namespace_length" in outputs["junit.xml"]
    secrets = {"token": TOKEN, "client key": KEY_PEM, "client certificate": CERT_PEM}
    leaks = {name: secrets_in(text, secrets) for name, text in outputs.items()}
    assert not any(leaks.values()), leaks


# ---- signals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_deletes_its_namespace(pytester: pytest.Pytester, api: FakeApi, signum: int) -> None:
    """Ctrl-C, or a CI system's SIGTERM, in the middle of a check: the namespace still goes."""
    path = pytester.path / "kubeconfig.json"
    path.write_text(kubeconfig(api.url))
    pytester.makepyfile(test_slow="import time\n\ndef test_slow(k8sdns_namespace):\n    time.sleep(60)\n")
    proc = pytester.popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--k8sdns-context=fake",
                           f"--k8sdns-kubeconfig={path}", "test_slow.py"], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not api.created_namespaces and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.created_namespaces, "the run never made its namespace"
    time.sleep(1)  # inside the check by now
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert api.deleted_namespaces == api.created_namespaces


def test_last_marked_checks_run_after_all_others(pytester: pytest.Pytester, api: FakeApi) -> None:
    """A check that judges the whole run (restarts during it) is moved to the end, whatever its file."""
    path = pytester.path / "kubeconfig.json"
    path.write_text(kubeconfig(api.url))
    pytester.makepyfile(test_a=textwrap.dedent("""\
        import pytest

        @pytest.mark.k8sdns_last
        def test_whole_run():
            pass

        def test_a_first():
            pass
        """), test_b="def test_b():\n    pass\n")
    result = pytester.runpytest_subprocess("--k8sdns-context=fake", f"--k8sdns-kubeconfig={path}",
                                           "-p", "no:cacheprovider", "-v", "test_a.py", "test_b.py")
    order = [ln.split(" ")[0] for ln in result.stdout.lines if " PASSED" in ln]
    assert order == ["test_a.py::test_a_first", "test_b.py::test_b", "test_a.py::test_whole_run"], result.stdout.str()
