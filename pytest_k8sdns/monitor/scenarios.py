"""Built-in changes the monitor watches with --k8sdns-disruptive: the rollouts of an upgrade, done
the way kubectl does them, each waiting until the cluster is whole again; on kind clusters the plugin
created, also a node drain and a kube-proxy restart. Plain blocking code: each returns what it did,
in words; a scenario that does not apply raises NotApplicable."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.dns.nodelocal import NodeLocalInspector
from pytest_k8sdns.errors import ClusterError, K8sDnsError, NotFound
from pytest_k8sdns.kube.client import MANAGED_BY, Cluster, status_message
from pytest_k8sdns.kube.patch import Target
from pytest_k8sdns.kube.rollout import wait_daemonset_ready, wait_deployment
from pytest_k8sdns.kube.wait import Watched, until, wait_gone

#: How long a scenario waits for the cluster to be whole again.
ROLLOUT_TIMEOUT_S = 300.0
#: How often an eviction that a PodDisruptionBudget refused (429) is asked again: kubectl drain's pace.
EVICTION_RETRY_S = 5.0
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
#: A static pod's mirror in the API: the kubelet runs it from a file, an eviction cannot move it.
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
KUBE_PROXY = ("kube-system", "kube-proxy")
#: kube-proxy's health endpoint on every node (healthzBindAddress, default 0.0.0.0:10256): 200 once
#: it has synced the node's rules from the API
KUBE_PROXY_HEALTHZ_PORT = 10256
#: How long a restarted kube-proxy may take to report healthy (seconds, on kind; minutes mean it cannot sync).
KUBE_PROXY_HEALTHY_S = 60.0


class NotApplicable(K8sDnsError):
    """The scenario has nothing to change on this cluster (no NodeLocal DaemonSet, no kube-proxy),
    or may not change it (a node drain on a cluster the plugin did not create)."""


@dataclasses.dataclass(frozen=True)
class Context:
    cluster: Cluster
    coredns: CoreDNSInspector
    nodelocal: NodeLocalInspector | None
    #: the plugin created the cluster (--k8sdns-kind; Cluster.created): it may change nodes there
    created: bool = False


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    run: Callable[[Context], str]
    #: only on clusters the plugin created (--k8sdns-kind): it changes more than the DNS workloads
    #: (nodes, kube-proxy), so --k8sdns-disruptive on a cluster of yours never asks for it
    created_only: bool = False
    #: raises NotApplicable when there is nothing to change here; cheap, asked before the monitor starts
    needs: Callable[[Context], object] | None = None

    def check(self, ctx: Context) -> None:
        """Raise NotApplicable if the scenario does not apply to this cluster (the run checks again)."""
        if self.created_only:
            only_created(ctx, self.name)
        if self.needs is not None:
            self.needs(ctx)


def only_created(ctx: Context, name: str) -> None:
    if not ctx.created:
        raise NotApplicable(f"{name} runs only on a kind cluster the plugin created (--k8sdns-kind), not on "
                            f"context {ctx.cluster.context}: it changes nodes or kube-proxy, not only the DNS")


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


def nodelocal_daemonset(ctx: Context) -> Target:
    if ctx.nodelocal is None:
        raise NotApplicable("no NodeLocal DNSCache DaemonSet in the cluster: nothing to roll")
    return Target.daemonset(ctx.cluster, ctx.nodelocal.namespace, ctx.nodelocal.name)


def nodelocal_rollout(ctx: Context) -> str:
    target = nodelocal_daemonset(ctx)
    t0 = time.monotonic()
    target.restart()
    wait_daemonset_ready(ctx.cluster, target.namespace, target.name, ROLLOUT_TIMEOUT_S)
    return f"rolled out {target} in {time.monotonic() - t0:.1f} s"


def drain_node(ctx: Context) -> str:
    """The node of the first Ready cluster-DNS pod by name that runs on a node not of the control
    plane; of the first such pod anywhere when every one runs on the control plane."""
    serving = sorted((p for p in ctx.coredns.pods() if p.ready and p.node), key=lambda p: p.name)
    if not serving:
        raise ClusterError("no Ready cluster-DNS pod whose node to drain")
    control_plane = {n.name for n in ctx.cluster.nodes() if CONTROL_PLANE_LABEL in n.labels}
    return next((p.node for p in serving if p.node not in control_plane), serving[0].node)


def _node_pods(c: Cluster, node: str) -> list[Any]:
    return list(c.call("list", "pods", None, c.core.list_pod_for_all_namespaces,
                       field_selector=f"spec.nodeName={node}").items)


def drained_pods(items: list[Any]) -> list[Any]:
    """The pods `kubectl drain --ignore-daemonsets` evicts, less the plugin's own (the monitor
    streams from them): not DaemonSet pods, not static pods' mirrors, not those already going."""
    def kept(p: Any) -> bool:
        owners = {ref.kind for ref in p.metadata.owner_references or []}
        return ("DaemonSet" in owners or MIRROR_ANNOTATION in (p.metadata.annotations or {})
                or MANAGED_BY.items() <= (p.metadata.labels or {}).items() or p.metadata.deletion_timestamp is not None)
    return sorted((p for p in items if not kept(p)), key=lambda p: (p.metadata.namespace, p.metadata.name))


def evict(c: Cluster, pod: Any) -> None:
    """Evict one pod through the Eviction API (its grace period kept); a PodDisruptionBudget's
    refusal (429) is asked again every EVICTION_RETRY_S, as kubectl drain does."""
    ns, name = pod.metadata.namespace, pod.metadata.name
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}

    def ask() -> str:
        try:
            c.call("create", "pods/eviction", ns, c.core.create_namespaced_pod_eviction, name, ns, body)
        except NotFound:
            return ""  # gone already
        except ApiException as exc:
            if exc.status == 429:  # a PodDisruptionBudget forbids it for now
                return f"429 {status_message(exc) or exc.reason}"
            raise ClusterError(f"the API server refused to evict pod {ns}/{name}: {exc.status} "
                               f"{status_message(exc) or exc.reason}") from None
        return ""

    until(f"eviction of pod {ns}/{name} refused", ask, lambda said: not said, timeout_s=ROLLOUT_TIMEOUT_S,
          every_s=EVICTION_RETRY_S, seen=str)


def wait_evicted_gone(c: Cluster, node: str, evicted: list[Any]) -> None:
    uids = {p.metadata.uid for p in evicted}

    def left() -> list[Any]:
        return [p for p in _node_pods(c, node) if p.metadata.uid in uids]

    wait_gone(f"evicted pods on {node} still there", left, timeout_s=ROLLOUT_TIMEOUT_S,
              seen=lambda pods: ", ".join(f"{p.metadata.namespace}/{p.metadata.name} ({p.status.phase})" for p in pods),
              watched=Watched(c, "pods", None, c.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}"))


def cordon(c: Cluster, node: str, unschedulable: bool) -> None:
    c.call("patch", "nodes", None, c.core.patch_node, node, {"spec": {"unschedulable": unschedulable}})


def node_drain(ctx: Context) -> str:
    """Cordon the node of a serving cluster-DNS pod and evict its pods, as `kubectl drain
    --ignore-daemonsets --delete-emptydir-data` does; once the evicted pods are gone and the DNS
    Deployment is whole again elsewhere, uncordon it (also on failure)."""
    only_created(ctx, "node-drain")
    target = dns_deployment(ctx)
    c = ctx.cluster
    node = drain_node(ctx)
    was_cordoned = next((n.unschedulable for n in c.nodes() if n.name == node), False)
    t0 = time.monotonic()
    cordon(c, node, True)
    try:
        victims = drained_pods(_node_pods(c, node))
        for pod in victims:
            evict(c, pod)
        wait_evicted_gone(c, node, victims)
        wait_deployment(c, target.namespace, target.name, ROLLOUT_TIMEOUT_S)
        wait_old_dns_pods_gone(ctx)
        whole = time.monotonic() - t0
    finally:
        if not was_cordoned:
            cordon(c, node, False)
    evicted = ", ".join(p.metadata.name for p in victims) or "nothing"
    return (f"drained {node} (evicted {evicted}); CoreDNS whole again after {whole:.1f} s; "
            f"{'uncordoned' if not was_cordoned else 'left cordoned, as it was'}")


def kube_proxy(ctx: Context) -> Target:
    target = Target.daemonset(ctx.cluster, *KUBE_PROXY)
    try:
        target.read()
    except NotFound:
        raise NotApplicable(f"no kube-proxy DaemonSet in {KUBE_PROXY[0]} (the CNI replaces it, or it runs outside "
                            f"the cluster): nothing to restart") from None
    return target


def wait_kube_proxy_healthy(c: Cluster, target: Target) -> None:
    """kube-proxy's pods have no readiness probe, so Ready says only that they run; its healthz says
    it has synced the node's rules (one that cannot reach the API server never does, and the rules
    it left behind go stale at the next change of a Service's endpoints)."""
    port = KUBE_PROXY_HEALTHZ_PORT
    selector = ",".join(f"{k}={v}" for k, v in target.read()["spec"]["selector"]["matchLabels"].items())

    def sick() -> dict[str, str]:
        found: dict[str, str] = {}
        pods = c.call("list", "pods", target.namespace, c.core.list_namespaced_pod, target.namespace,
                      label_selector=selector).items
        for node in sorted({p.spec.node_name for p in pods if p.spec.node_name}):
            try:
                c.call("get", "nodes/proxy", None, c.core.connect_get_node_proxy_with_path, f"{node}:{port}", "healthz")
            except ApiException as exc:
                found[node] = f"{exc.status} {status_message(exc) or exc.reason}"
        return found

    until(f"{target} not healthy on every node (:{port}/healthz through the API server's node proxy)", sick,
          lambda found: not found, timeout_s=KUBE_PROXY_HEALTHY_S,
          seen=lambda found: "; ".join(f"{node}: {why}" for node, why in found.items()))


def kube_proxy_restart(ctx: Context) -> str:
    only_created(ctx, "kube-proxy-restart")
    target = kube_proxy(ctx)
    t0 = time.monotonic()
    target.restart()
    wait_daemonset_ready(ctx.cluster, target.namespace, target.name, ROLLOUT_TIMEOUT_S)
    rolled = time.monotonic() - t0
    wait_kube_proxy_healthy(ctx.cluster, target)
    return f"rolled out {target} in {rolled:.1f} s; healthy on every node after {time.monotonic() - t0:.1f} s"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("coredns-rollout", "a rollout restart of the cluster DNS Deployment", coredns_rollout),
    Scenario("coredns-pod-delete", "one cluster-DNS pod deleted (its grace period kept)", coredns_pod_delete),
    Scenario("nodelocal-rollout", "a rollout restart of the NodeLocal DNSCache DaemonSet", nodelocal_rollout,
             needs=nodelocal_daemonset),
    Scenario("node-drain", "the node of a cluster-DNS pod cordoned, its pods evicted, uncordoned once CoreDNS is "
             "whole again", node_drain, created_only=True),
    Scenario("kube-proxy-restart", "a rollout restart of the kube-proxy DaemonSet", kube_proxy_restart,
             created_only=True, needs=kube_proxy),
)}
