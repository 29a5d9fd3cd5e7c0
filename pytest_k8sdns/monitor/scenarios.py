"""Built-in changes the monitor watches with --k8sdns-disruptive: the rollouts of an upgrade, done
the way kubectl does them, each waiting until the cluster is whole again. Plain blocking code:
each returns what it did, in words; a scenario that does not apply raises NotApplicable."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.dns.nodelocal import NodeLocalInspector
from pytest_k8sdns.errors import ClusterError, K8sDnsError
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.kube.patch import Target
from pytest_k8sdns.kube.rollout import wait_daemonset_ready, wait_deployment
from pytest_k8sdns.kube.wait import Watched, wait_gone

#: How long a scenario waits for the cluster to be whole again.
ROLLOUT_TIMEOUT_S = 300.0


class NotApplicable(K8sDnsError):
    """The scenario has nothing to change on this cluster (no NodeLocal DaemonSet, one replica)."""


@dataclasses.dataclass(frozen=True)
class Context:
    cluster: Cluster
    coredns: CoreDNSInspector
    nodelocal: NodeLocalInspector | None


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    run: Callable[[Context], str]


def dns_deployment(ctx: Context) -> Target:
    """The Deployment behind the cluster DNS Service's pods (pod -> ReplicaSet -> Deployment)."""
    provider = ctx.coredns.provider
    ns = provider.service_namespace
    c = ctx.cluster
    selector = ",".join(f"{k}={v}" for k, v in provider.selector.items())
    for pod in c.call("list", "pods", ns, c.core.list_namespaced_pod, ns, label_selector=selector).items:
        for ref in pod.metadata.owner_references or []:
            if ref.kind == "ReplicaSet":
                rs = c.call("get", "replicasets", ns, c.apps.read_namespaced_replica_set, ref.name, ns)
                owner = next((o for o in rs.metadata.owner_references or [] if o.kind == "Deployment"), None)
                if owner is not None:
                    return Target.deployment(c, ns, owner.name)
    raise NotApplicable(f"the cluster DNS pods ({selector} in {ns}) belong to no Deployment; roll them yourself "
                        f"with --k8sdns-during")


def wait_old_dns_pods_gone(ctx: Context) -> None:
    """A rollout is done for the Deployment while its old pods still run their lameduck; the change
    is done when they have exited too (that is when a client still talking to one notices)."""
    provider = ctx.coredns.provider
    c, ns = ctx.cluster, provider.service_namespace
    selector = ",".join(f"{k}={v}" for k, v in provider.selector.items())

    def terminating() -> list[Any]:
        return [p for p in c.call("list", "pods", ns, c.core.list_namespaced_pod, ns, label_selector=selector).items
                if p.metadata.deletion_timestamp is not None]

    wait_gone(f"terminating cluster-DNS pods ({selector} in {ns}) still there", terminating,
              timeout_s=ROLLOUT_TIMEOUT_S, seen=lambda left: ", ".join(p.metadata.name for p in left),
              watched=Watched(c, "pods", ns, c.core.list_namespaced_pod, label_selector=selector))


def coredns_rollout(ctx: Context) -> str:
    target = dns_deployment(ctx)
    replicas = target.read()["spec"].get("replicas", 1)
    t0 = time.monotonic()
    target.restart()
    wait_deployment(ctx.cluster, target.namespace, target.name, ROLLOUT_TIMEOUT_S)
    rolled = time.monotonic() - t0
    wait_old_dns_pods_gone(ctx)
    return (f"rolled out {target} ({replicas} replicas) in {rolled:.1f} s; the old pods had exited after "
            f"{time.monotonic() - t0:.1f} s")


def coredns_pod_delete(ctx: Context) -> str:
    """Delete one serving cluster-DNS pod with its own grace period, as an eviction or a node
    problem does; the long-lived socket that was talking to it must move on."""
    target = dns_deployment(ctx)
    serving = sorted((p for p in ctx.coredns.pods() if p.ready), key=lambda p: p.name)
    if not serving:
        raise ClusterError("no Ready cluster-DNS pod to delete")
    victim = serving[0]
    c, ns = ctx.cluster, target.namespace
    t0 = time.monotonic()
    c.call("delete", "pods", ns, c.core.delete_namespaced_pod, victim.name, ns)
    wait_old_dns_pods_gone(ctx)
    wait_deployment(c, ns, target.name, ROLLOUT_TIMEOUT_S)
    return f"deleted pod {ns}/{victim.name} on {victim.node}; {target} whole again after {time.monotonic() - t0:.1f} s"


def nodelocal_rollout(ctx: Context) -> str:
    if ctx.nodelocal is None:
        raise NotApplicable("no NodeLocal DNSCache DaemonSet in the cluster")
    target = Target.daemonset(ctx.cluster, ctx.nodelocal.namespace, ctx.nodelocal.name)
    t0 = time.monotonic()
    target.restart()
    wait_daemonset_ready(ctx.cluster, target.namespace, target.name, ROLLOUT_TIMEOUT_S)
    return f"rolled out {target} in {time.monotonic() - t0:.1f} s"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("coredns-rollout", "a rollout restart of the cluster DNS Deployment", coredns_rollout),
    Scenario("coredns-pod-delete", "one cluster-DNS pod deleted (its grace period kept)", coredns_pod_delete),
    Scenario("nodelocal-rollout", "a rollout restart of the NodeLocal DNSCache DaemonSet", nodelocal_rollout),
)}
