"""The permissions the suite needs (fixtures/rbac.yaml, and fixtures/rbac-disruptive.yaml for
--k8sdns-disruptive) and a check, before the run, that it has them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from kubernetes import client

from pytest_k8sdns.errors import ClusterError
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube.client import Cluster

#: The namespace fixtures/rbac.yaml creates; its Role stands for whatever namespace the run uses.
RBAC_NAMESPACE = "k8sdns"
#: Verbs rbac.yaml grants that the run can do without: a wait whose watch is refused polls instead
#: (kube/wait.py), so the pre-run check does not refuse an identity that lacks them.
OPTIONAL_VERBS = frozenset({"watch"})


@dataclasses.dataclass(frozen=True)
class Permission:
    """One verb on one resource, as a SelfSubjectAccessReview asks it."""

    verb: str
    resource: str  # with its subresource: pods/exec
    group: str = ""
    namespace: str | None = None  # None: cluster-scoped
    name: str | None = None

    def __str__(self) -> str:
        what = f"{self.resource} {self.name}" if self.name else self.resource
        if self.group:
            what += f" ({self.group})"
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {what} {where}"

    def review(self) -> client.V1SelfSubjectAccessReview:
        resource, _, sub = self.resource.partition("/")
        attrs = client.V1ResourceAttributes(verb=self.verb, group=self.group, resource=resource,
                                            subresource=sub or None, namespace=self.namespace, name=self.name)
        return client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs))


#: What --k8sdns-disruptive's built-in changes need beside rbac.yaml (kube-system's DNS workloads)
DISRUPTIVE_FILE = "rbac-disruptive.yaml"


@functools.cache
def _documents(name: str = "rbac.yaml") -> tuple[dict[str, Any], ...]:
    with open(fixture_path(name), encoding="utf-8") as f:
        return tuple(d for d in yaml.safe_load_all(f) if d)


def required(namespace: str, *, creates_namespace: bool, disruptive: bool = False) -> list[Permission]:
    """Every permission of fixtures/rbac.yaml's roles, with its Role in `namespace`; plus create and
    delete on namespaces when the run makes its own, and rbac-disruptive.yaml's with `disruptive`."""
    perms: list[Permission] = []
    docs = _documents() + (_documents(DISRUPTIVE_FILE) if disruptive else ())
    for doc in docs:
        if doc.get("kind") not in ("Role", "ClusterRole"):
            continue
        ns = doc["metadata"].get("namespace") if doc["kind"] == "Role" else None
        if ns == RBAC_NAMESPACE:
            ns = namespace
        for rule in doc.get("rules", []):
            for group in rule.get("apiGroups", [""]):
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [None]:
                            perms.append(Permission(verb, resource, group, ns, name))
    if creates_namespace:
        perms += [Permission("create", "namespaces"), Permission("delete", "namespaces")]
    return perms


def missing(cluster: Cluster, perms: Sequence[Permission]) -> list[Permission] | None:
    """The permissions this identity lacks, or None when the API server will not say."""
    api = client.AuthorizationV1Api(cluster.api_client)

    def allowed(p: Permission) -> bool | None:
        try:
            review = api.create_self_subject_access_review(p.review(), _request_timeout=30)
        except Exception:  # noqa: BLE001 - no answer: each request will say Forbidden for itself
            return None
        return bool(review.status and review.status.allowed)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(allowed, perms))
    if any(a is None for a in answers):
        return None
    return [p for p, a in zip(perms, answers) if not a]


def check(cluster: Cluster, namespace: str, *, creates_namespace: bool, disruptive: bool = False) -> None:
    """Raise one ClusterError line naming every permission of the suite this identity lacks; the
    OPTIONAL_VERBS are not asked for (an identity bound by an older rbac.yaml still runs)."""
    __tracebackhide__ = True
    needed = [p for p in required(namespace, creates_namespace=creates_namespace, disruptive=disruptive)
              if p.verb not in OPTIONAL_VERBS]
    lacking = missing(cluster, needed)
    if not lacking:
        return
    it = "it" if len(lacking) == 1 else "them"
    hint = ""
    if creates_namespace and any(p.resource == "namespaces" for p in lacking):
        hint = "; or run in a namespace made for the suite with --k8sdns-namespace=NAME"
    lists = "fixtures/rbac.yaml lists what the suite needs"
    base = set(required(namespace, creates_namespace=creates_namespace))
    if any(p not in base for p in lacking):
        lists += f", fixtures/{DISRUPTIVE_FILE} what --k8sdns-disruptive adds"
        hint += "; or run without --k8sdns-disruptive"
    raise ClusterError(
        f"Forbidden: cannot {', '.join(map(str, lacking))} on {cluster.server}; grant {it} to this identity "
        f"({lists}){hint}"
    )
