"""NodeLocal DNSCache, read only: find its DaemonSet, read its Corefile, and time how soon a new
Service answers at it. Deploying it on kind clusters is dns/nodelocal_deploy.py."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import yaml
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.dns.coredns import NODELOCAL_IP
from pytest_k8sdns.errors import ClusterError, NotFound, WaitTimeout
from pytest_k8sdns.kube import pods
from pytest_k8sdns.kube.client import MANAGED_BY, Cluster
from pytest_k8sdns.kube.wait import until

if TYPE_CHECKING:
    from pytest_k8sdns.probe.pods import ProbePod

#: How upstream's nodelocaldns.yaml labels the DaemonSet's pods.
NODELOCAL_LABEL = "k8s-app=node-local-dns"
#: Where and under which name dns/nodelocal_deploy.py deploys it (upstream's names); the faults
#: that break it find it here.
NODELOCAL_NAMESPACE = "kube-system"
NODELOCAL_NAME = "node-local-dns"


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

    def _daemonset(self) -> Any:
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
                ready=pods.is_ready(p),
                restarts=sum(cs.restart_count for cs in p.status.container_statuses or []),
            )
            for p in items
        ]

    def cluster_upstream(self, domain: str) -> str | None:
        """Where the cache sends the cluster zone: asking that address skips the cache and reaches
        CoreDNS the way the cache does; None when the Corefile is unreadable or names only itself."""
        text = self.corefile()
        return cluster_upstream(text, domain, [*bound_addresses(text), self.local_ip])

    def corefile(self) -> str | None:
        ds = self._daemonset()
        for v in ds.spec.template.spec.volumes or []:
            if v.config_map is not None:
                c = self.cluster
                try:
                    cm = c.call("get", "configmaps", self.namespace, c.core.read_namespaced_config_map,
                                v.config_map.name, self.namespace)
                except (NotFound, ApiException):
                    return None  # unreadable is as good as absent here: the checks skip
                data = cm.data or {}
                return data.get("Corefile") or next(iter(data.values()), None)
        return None


def cluster_upstream(text: str | None, domain: str, local_ips: Sequence[str] = ()) -> str | None:
    """The address the cache forwards the cluster zone to (CoreDNS behind a Service of its own, as
    kube-dns-upstream is), or None when its Corefile names no IP there other than its own."""
    for host in corefile.forward_hosts(text or "", domain):
        with contextlib.suppress(ValueError):
            if str(ipaddress.ip_address(host)) not in local_ips:
                return host
    return None


def bound_addresses(text: str | None) -> list[str]:
    """Every address the cache's Corefile binds (`bind` in any server block): its own, never CoreDNS."""
    return [a for block in corefile.parse(text or "") for d in block.find("bind") for a in d.args]


def denial_ttl(text: str | None, domain: str) -> int | None:
    """The longest time the cache keeps a negative answer for the cluster zone (`cache { denial
    CAP TTL }`), or None when its Corefile does not say."""
    for block in corefile.parse(text or ""):
        if domain.rstrip(".").lower() + "." not in block.zones:
            continue
        for cache in block.find("cache"):
            for d in cache.find("denial"):
                if len(d.args) >= 2 and d.args[1].isdigit():
                    return int(d.args[1])
    return None


@dataclasses.dataclass(frozen=True)
class Visibility:
    """When a new Service first answered at the cache on one node, after the cache had been asked
    for it (and answered NXDOMAIN) just before it was created."""

    node: str
    primed: str  # the rcode the cache gave before the Service existed
    negative_ttl: int | None  # the TTL of that answer's SOA: how long the cache said to keep it
    seconds: float | None  # from the Service's creation to the end of the first poll with its ClusterIP
    last_miss: float | None  # from its creation to the start of the last poll without it: still not
    #                          visible then (each poll is an exec into the pod, ~0.3 s)
    since_prime: float | None  # `seconds`, counted from the end of the priming query
    polls: int
    last: str  # the last poll's rcode or error


@dataclasses.dataclass(frozen=True)
class _Poll:
    began: float
    ended: float
    said: str  # rcode or error
    hit: bool  # NOERROR with the Service's ClusterIP


def time_new_service(cluster: Cluster, namespace: str, node_pods: Mapping[str, ProbePod], server: str,
                     domain: str, *, give_up_s: float = 30) -> tuple[str, list[Visibility]]:
    """Ask `server` from every node's pod for a Service name that does not exist yet (so each cache
    holds an NXDOMAIN), create that ClusterIP Service in namespace, and poll, in parallel, until its
    A record holds its ClusterIP. Returns the name and per-node timings; the Service is deleted."""
    name = f"nl-new-{secrets.token_hex(3)}"
    fqdn = f"{name}.{namespace}.svc.{domain}"
    nodes = sorted(node_pods.items())

    def prime(item: tuple[str, ProbePod]) -> tuple[str, int | None, float]:
        reply = item[1].query(server, fqdn, rdtype="A", timeout=1.0).replies[0]
        return reply.rcode or reply.error or "?", reply.negative_ttl(), time.monotonic()

    def watch(item: tuple[tuple[str, ProbePod], tuple[str, int | None, float]]) -> Visibility:
        (node, pod), (primed, ttl, primed_at) = item
        polls: list[_Poll] = []

        def poll() -> _Poll:
            began = time.monotonic()
            reply = pod.query(server, fqdn, rdtype="A", timeout=1.0).replies[0]
            said = reply.rcode or reply.error or "?"
            polls.append(_Poll(began, time.monotonic(), said, reply.rcode == "NOERROR" and want in reply.addresses()))
            return polls[-1]

        # a DNS answer cannot be watched: polled every 0.1 s, as fast as an exec allows
        with contextlib.suppress(WaitTimeout):
            until(f"{fqdn} at {server} from {node}", poll, lambda last: last.hit, every_s=0.1,
                  timeout_s=max(0.0, give_up_s - (time.monotonic() - created)))
        misses = [p.began for p in polls if not p.hit]
        miss = round(misses[-1] - created, 3) if misses else None
        last = polls[-1] if polls else _Poll(0.0, 0.0, "", False)
        if last.hit:
            return Visibility(node, primed, ttl, round(last.ended - created, 3), miss,
                              round(last.ended - primed_at, 3), len(polls), last.said)
        return Visibility(node, primed, ttl, None, miss, None, len(polls), last.said)

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        primes = list(pool.map(prime, nodes))
        svc = cluster.call("create", "services", namespace, cluster.core.create_namespaced_service, namespace, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(MANAGED_BY)},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
        created = time.monotonic()
        want = str(svc.spec.cluster_ip)
        try:
            return fqdn, list(pool.map(watch, zip(nodes, primes)))
        finally:
            # the namespace goes at the end anyway: a failed delete must not hide the result
            with contextlib.suppress(NotFound, ApiException):
                cluster.call("delete", "services", namespace, cluster.core.delete_namespaced_service, name, namespace)


def cluster_domain_of(cluster: Cluster) -> str:
    """The cluster domain, read from kube-system: kubelet's clusterDomain (kubeadm's kubelet-config),
    else CoreDNS's kubernetes zone (for the cache's Corefile and the faults that edit it)."""

    def configmap(name: str) -> dict[str, str]:
        try:
            cm = cluster.call("get", "configmaps", "kube-system", cluster.core.read_namespaced_config_map, name,
                              "kube-system")
        except NotFound:
            return {}
        return dict(cm.data or {})

    doc = yaml.safe_load(configmap("kubelet-config").get("kubelet", "")) or {}
    if doc.get("clusterDomain"):
        return str(doc["clusterDomain"]).rstrip(".")
    for block in corefile.parse(configmap("coredns").get("Corefile", "")):
        for d in block.find("kubernetes"):
            zones = d.args or block.keys
            if zones:
                return corefile.split_key(zones[0])[0].rstrip(".")
    raise ClusterError("cannot tell the cluster domain: no clusterDomain in kube-system/kubelet-config and no "
                       "kubernetes plugin in kube-system/coredns")


def find_nodelocal(cluster: Cluster) -> NodeLocalInspector | None:
    """The NodeLocal DaemonSet in kube-system, found by upstream's label, or None."""
    items = cluster.call("list", "daemonsets", "kube-system", cluster.apps.list_namespaced_daemon_set, "kube-system",
                         label_selector=NODELOCAL_LABEL).items
    if not items:
        return None
    ds = items[0]
    return NodeLocalInspector(cluster, ds.metadata.namespace, ds.metadata.name)
