"""Workload waits: a Deployment rolled out, a DaemonSet Ready on every node, nodes Ready, pods gone.
Each is one `kube.wait.until` woken by the API's watch of what it waits for."""

from __future__ import annotations

import dataclasses
from typing import Any

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.kube import pods
from pytest_k8sdns.kube.client import Cluster, NodeFacts
from pytest_k8sdns.kube.wait import Watched, until, wait_gone

EVERY_S = pods.WATCHED_EVERY_S
# API objects are typed Any here: every field of the client's models is optional, and a rollout's
# objects have the ones read below


def wait_deployment(cluster: Cluster, namespace: str, name: str, timeout_s: float) -> None:
    """Wait until a Deployment's rollout is complete and all replicas are available."""

    def look() -> Any:
        return cluster.call("get", "deployments", namespace, cluster.apps.read_namespaced_deployment, name, namespace)

    def rolled_out(d: Any) -> bool:
        st, want = d.status, d.spec.replicas or 0
        # as `kubectl rollout status`: no replica of an older template left either (available_replicas
        # counts old and new pods together, so without this an old pod can stand in for a new one)
        return bool(st.observed_generation == d.metadata.generation and (st.updated_replicas or 0) == want
                    and (st.replicas or 0) == want and (st.available_replicas or 0) == want
                    and not st.unavailable_replicas)

    def seen(d: Any) -> str:
        st = d.status
        return (f"generation {st.observed_generation}/{d.metadata.generation}, updated {st.updated_replicas}, "
                f"available {st.available_replicas}, unavailable {st.unavailable_replicas} of {d.spec.replicas or 0}")

    until(f"deployment {namespace}/{name} not rolled out", look, rolled_out, timeout_s=timeout_s, seen=seen,
          every_s=EVERY_S, watched=Watched(cluster, "deployments", namespace, cluster.apps.list_namespaced_deployment,
                                           field_selector=f"metadata.name={name}"))


#: taints the node lifecycle controller sets while a node is not (yet) Ready
_LIFECYCLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _lifecycle_tainted(node: NodeFacts) -> bool:
    return any(t.split(":", 1)[0].split("=", 1)[0] in _LIFECYCLE_TAINTS for t in node.taints)


def wait_nodes_ready(cluster: Cluster, count: int, timeout_s: float) -> None:
    """Wait until at least `count` nodes exist and every one is Ready and no longer carries the
    node lifecycle controller's not-ready taint (it lags the Ready condition by seconds, and a
    placement made in between would leave the node out)."""

    def state(n: NodeFacts) -> str:
        if not n.ready:
            return "NotReady"
        return "Ready, still tainted not-ready" if _lifecycle_tainted(n) else "Ready"

    def seen(nodes: list[NodeFacts]) -> str:
        return ", ".join(f"{n.name}={state(n)}" for n in nodes) or "no nodes"

    def ready(nodes: list[NodeFacts]) -> bool:
        return len(nodes) >= count and all(state(n) == "Ready" for n in nodes)

    until(f"{count} nodes not Ready", cluster.nodes, ready, timeout_s=timeout_s, seen=seen, every_s=EVERY_S,
          watched=Watched(cluster, "nodes", None, cluster.core.list_node))


@dataclasses.dataclass(frozen=True)
class _DaemonSetLook:
    ds: Any
    nodes: int
    not_ready: list[Any]

    @property
    def ready(self) -> bool:
        st, desired = self.ds.status, self.ds.status.desired_number_scheduled or 0
        return bool(st.observed_generation == self.ds.metadata.generation and desired == self.nodes
                    and not self.not_ready and (st.updated_number_scheduled or 0) == desired
                    and (st.number_ready or 0) == desired)


def wait_daemonset_ready(cluster: Cluster, namespace: str, name: str, timeout_s: float, *,
                         image_option: str = "") -> None:
    """Wait until a DaemonSet runs an up-to-date, Ready pod on every node. A pull failure ends the
    wait at once; a timeout says what the DaemonSet and its not-Ready pods showed last."""

    def look() -> _DaemonSetLook:
        ds = cluster.call("get", "daemonsets", namespace, cluster.apps.read_namespaced_daemon_set, name, namespace)
        selector = ",".join(f"{k}={v}" for k, v in (ds.spec.selector.match_labels or {}).items())
        items = cluster.call("list", "pods", namespace, cluster.core.list_namespaced_pod, namespace,
                             label_selector=selector).items
        not_ready = [p for p in items if not pods.is_ready(p)]
        for p in not_ready:
            for cs in p.status.container_statuses or []:
                waiting = cs.state.waiting
                if waiting and waiting.reason in pods.PULL_FAILURES:
                    raise PodError(f"pod {namespace}/{p.metadata.name} on {p.spec.node_name} cannot pull image "
                                   f"{cs.image} ({waiting.reason}); build it with substrate/build (kind loads it) "
                                   f"or point {image_option or 'the image option'} at one the nodes can pull")
        return _DaemonSetLook(ds, len(cluster.nodes()), not_ready)

    def seen(last: _DaemonSetLook) -> str:
        st, ds = last.ds.status, last.ds
        text = (f"generation {st.observed_generation}/{ds.metadata.generation}, desired "
                f"{st.desired_number_scheduled or 0} of {last.nodes} nodes, "
                f"updated {st.updated_number_scheduled or 0}, ready {st.number_ready or 0}")
        for p in last.not_ready[:2]:
            text += (f"; pod {p.metadata.name} on {p.spec.node_name}: "
                     f"{pods.describe(p, pods.pod_events(cluster, namespace, p.metadata.name))}")
        return text

    # the DaemonSet's status follows its pods' readiness, so its watch wakes the wait; a pod stuck
    # pulling leaves that status as it is and shows at the next look
    until(f"daemonset {namespace}/{name} not Ready on every node", look, lambda last: last.ready,
          timeout_s=timeout_s, seen=seen, every_s=EVERY_S,
          watched=Watched(cluster, "daemonsets", namespace, cluster.apps.list_namespaced_daemon_set,
                          field_selector=f"metadata.name={name}"))


def wait_pods_gone(cluster: Cluster, namespace: str, selector: str, timeout_s: float, *, owner: str = "") -> None:
    """Wait until no pod matches `selector` in namespace (`owner`, if given, names what was
    deleted, for the message)."""

    def left() -> list[Any]:
        return list(cluster.call("list", "pods", namespace, cluster.core.list_namespaced_pod, namespace,
                                 label_selector=selector).items)

    def seen(items: list[Any]) -> str:
        return ", ".join(f"{p.metadata.name} on {p.spec.node_name} ({p.status.phase})" for p in items)

    because = f", whose {owner} was deleted," if owner else ""
    wait_gone(f"pods {selector} in {namespace}{because} still there", left, timeout_s=timeout_s, seen=seen,
              every_s=EVERY_S, watched=Watched(cluster, "pods", namespace, cluster.core.list_namespaced_pod,
                                               label_selector=selector))


__all__ = ["wait_deployment", "wait_nodes_ready", "wait_daemonset_ready", "wait_pods_gone"]
