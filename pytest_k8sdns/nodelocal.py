"""NodeLocal DNSCache: find its DaemonSet, read its Corefile, and gather per-node evidence."""

from __future__ import annotations

import dataclasses

from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.cluster import Cluster
from pytest_k8sdns.coredns import NODELOCAL_IP

#: How upstream's nodelocaldns.yaml labels the DaemonSet's pods.
NODELOCAL_LABEL = "k8s-app=node-local-dns"


@dataclasses.dataclass(frozen=True)
class NodeLocalPod:
    name: str
    node: str
    ready: bool
    restarts: int


class NodeLocalInspector:
    """Read-only view of a node-local-dns DaemonSet (kube-system, hostNetwork)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, local_ip: str = NODELOCAL_IP) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.local_ip = local_ip

    def describe(self) -> str:
        ds = self._daemonset()
        return (f"daemonset {self.namespace}/{self.name} ready {ds.status.number_ready}/"
                f"{ds.status.desired_number_scheduled} on {self.local_ip}")

    def _daemonset(self):  # type: ignore[no-untyped-def]
        c = self.cluster
        return c.call("get", "daemonsets", self.namespace, c.apps.read_namespaced_daemon_set, self.name, self.namespace)

    def pods(self) -> list[NodeLocalPod]:
        c = self.cluster
        items = c.call("list", "pods", self.namespace, c.core.list_namespaced_pod, self.namespace,
                       label_selector=NODELOCAL_LABEL).items
        return [
            NodeLocalPod(
                name=p.metadata.name,
                node=p.spec.node_name or "",
                ready=any(cd.type == "Ready" and cd.status == "True" for cd in p.status.conditions or []),
                restarts=sum(cs.restart_count for cs in p.status.container_statuses or []),
            )
            for p in items
        ]

    def corefile(self) -> str | None:
        ds = self._daemonset()
        for v in ds.spec.template.spec.volumes or []:
            if v.config_map is not None:
                c = self.cluster
                try:
                    cm = c.call("get", "configmaps", self.namespace, c.core.read_namespaced_config_map,
                                v.config_map.name, self.namespace)
                except ApiException:
                    return None
                data = cm.data or {}
                return data.get("Corefile") or next(iter(data.values()), None)
        return None


def find_nodelocal(cluster: Cluster) -> NodeLocalInspector | None:
    """The NodeLocal DaemonSet in kube-system, found by upstream's label, or None."""
    items = cluster.call("list", "daemonsets", "kube-system", cluster.apps.list_namespaced_daemon_set, "kube-system",
                         label_selector=NODELOCAL_LABEL).items
    if not items:
        return None
    ds = items[0]
    return NodeLocalInspector(cluster, ds.metadata.namespace, ds.metadata.name)
