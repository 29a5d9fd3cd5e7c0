"""fixtures/rbac.yaml against the code: every API call the suite makes on a cluster it did not create
is granted there, and API refusals become one line naming what was refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

import pytest_k8sdns
from pytest_k8sdns.errors import ClusterError
from pytest_k8sdns.kube import rbac
from pytest_k8sdns.kube.client import api_errors

PACKAGE = Path(pytest_k8sdns.__file__).parent
#: Modules that only act on kind clusters the plugin created (they refuse any other cluster), and
#: the rollout waits only those modules and the preparation of kind clusters use.
CREATED_ONLY_MODULES = ("kube/kind.py", "kube/rollout.py", "dns/nodelocal_deploy.py", "faults/")
#: The built-in changes of --k8sdns-disruptive, whose rights fixtures/rbac-disruptive.yaml grants.
DISRUPTIVE_MODULES = ("monitor/scenarios.py",)
#: Calls of the scenarios for clusters the plugin created only (Scenario.created_only: node-drain,
#: kube-proxy-restart), which --k8sdns-disruptive never asks for on a cluster of yours.
CREATED_ONLY_SCENARIO_CALLS = {("patch", "nodes"), ("create", "pods/eviction"), ("get", "nodes/proxy")}
#: Calls outside those modules that only run on created clusters (preparing kind), or that are
#: optional and fall back when refused.
CREATED_ONLY_CALLS = {("get", "deployments"), ("list", "services", "cluster-wide (optional fallback)")}
CALL = re.compile(r'\.call\(\s*"(\w+)",\s*"([\w/]+)",\s*([^,]+),', re.DOTALL)
#: A wait woken by a watch: Watched(cluster, "resource", namespace, list_fn, ...)
WATCHED = re.compile(r'Watched\(\s*[\w.]+,\s*"([\w/]+)",', re.DOTALL)


def _granted() -> set[tuple[str, str]]:
    return {(p.verb, p.resource) for p in rbac.required("ns", creates_namespace=True)} | {("get", "version")}


def test_every_call_the_suite_makes_is_granted() -> None:
    used: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix().startswith(CREATED_ONLY_MODULES + DISRUPTIVE_MODULES):
            continue
        for verb, resource, namespace in CALL.findall(path.read_text()):
            key = (verb, resource) if namespace.strip() != "None" or (verb, resource) != ("list", "services") \
                else ("list", "services", "cluster-wide (optional fallback)")
            used.setdefault(key, []).append(path.name)  # type: ignore[arg-type]
    assert ("create", "pods/exec") in used and ("get", "pods/log") in used  # the pattern finds multi-line calls
    missing = {k: v for k, v in used.items() if k not in _granted() and k not in CREATED_ONLY_CALLS}
    assert not missing, f"API calls not granted by fixtures/rbac.yaml: {missing}"


def test_the_disruptive_scenarios_calls_are_granted_by_rbac_disruptive() -> None:
    import yaml

    granted = {(verb, resource) for doc in yaml.safe_load_all((PACKAGE.parent / "fixtures" / "rbac-disruptive.yaml")
                                                             .read_text()) if doc and doc["kind"] == "Role"
               for rule in doc["rules"] for verb in rule["verbs"] for resource in rule["resources"]}
    used = {(verb, resource) for module in DISRUPTIVE_MODULES
            for verb, resource, _ in CALL.findall((PACKAGE / module).read_text())}
    assert ("patch", "deployments") not in used  # patches go through kube.patch.Target
    assert CREATED_ONLY_SCENARIO_CALLS <= used  # the pattern still finds them
    assert used and used - CREATED_ONLY_SCENARIO_CALLS <= granted, used - CREATED_ONLY_SCENARIO_CALLS - granted


def test_every_watch_the_suite_makes_is_granted() -> None:
    """A wait whose watch is refused still works, by polling, but the watch is what wakes it at once;
    and the list it starts from must be granted, or the wait fails."""
    used: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix().startswith(CREATED_ONLY_MODULES):
            continue
        for resource in WATCHED.findall(path.read_text()):
            for verb in ("list", "watch"):
                used.setdefault((verb, resource), []).append(path.name)
    assert ("watch", "pods") in used and ("watch", "endpointslices") in used
    missing = {k: v for k, v in used.items() if k not in _granted()}
    assert not missing, f"watches not granted by fixtures/rbac.yaml: {missing}"


def test_required_names_the_run_namespace_and_exec_as_get_and_create() -> None:
    perms = rbac.required("work", creates_namespace=False)
    assert rbac.Permission("create", "pods/exec", "", "work") in perms
    assert rbac.Permission("get", "pods/exec", "", "work") in perms
    assert rbac.Permission("get", "services", "", "default", "kubernetes") in perms
    assert rbac.Permission("list", "nodes") in perms
    assert not [p for p in perms if p.resource == "namespaces"]
    assert not [p for p in perms if p.namespace == rbac.RBAC_NAMESPACE]
    assert str(rbac.Permission("list", "endpointslices", "discovery.k8s.io", "work")) == \
        "list endpointslices (discovery.k8s.io) in namespace work"


def test_disruptive_adds_the_kube_system_rights_of_its_changes() -> None:
    base = set(rbac.required("work", creates_namespace=False))
    more = set(rbac.required("work", creates_namespace=False, disruptive=True)) - base
    assert rbac.Permission("patch", "deployments", "apps", "kube-system") in more
    assert rbac.Permission("delete", "pods", "", "kube-system") in more
    assert all(p.namespace == "kube-system" for p in more), more


def _refused(exc: ApiException, verb: str = "create", resource: str = "pods", namespace: str = "ns") -> str:
    with pytest.raises(ClusterError) as err:
        with api_errors(verb, resource, namespace, "https://api"):
            raise exc
    return str(err.value)


def _api_exception(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason="Forbidden")
    exc.body = '{"kind":"Status","message":"%s","code":%d}' % (message.replace('"', '\\"'), status)
    return exc


def test_rbac_refusal_names_what_the_server_refused() -> None:
    exc = _api_exception(403, 'pods "p" is forbidden: User "u" cannot get resource "pods/exec" in API group "" '
                              'in the namespace "ns"')
    assert _refused(exc, "create", "pods/exec") == (
        "Forbidden: cannot get pods/exec in namespace ns on https://api; grant it to this identity "
        "(fixtures/rbac.yaml lists what the suite needs)")


def test_refused_websocket_exec_is_one_line() -> None:
    body = ('{"kind":"Status","message":"pods \\"p\\" is forbidden: User \\"u\\" cannot create resource '
            '\\"pods/exec\\" in API group \\"\\" in the namespace \\"ns\\"","code":403}')
    exc = ApiException(status=0, reason=f"Handshake status 403 Forbidden -+-+- {{'audit-id': 'x'}} -+-+- {body}")
    assert _refused(exc, "create", "pods/exec").startswith("Forbidden: cannot create pods/exec in namespace ns on")


def test_admission_refusal_quotes_the_server() -> None:
    exc = _api_exception(403, 'pods "p" is forbidden: violates PodSecurity "restricted:latest": '
                              'allowPrivilegeEscalation != false')
    assert _refused(exc) == ('the API server at https://api refused to create pods in namespace ns: pods "p" is '
                             'forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false')
