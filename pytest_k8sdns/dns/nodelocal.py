"""NodeLocal DNSCache: find its DaemonSet, read its Corefile, and gather per-node evidence; deploy
it on (and remove it from) kind clusters the plugin created."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import yaml
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.kube import pods
from pytest_k8sdns.kube.client import MANAGED_BY, Cluster
from pytest_k8sdns.dns.coredns import NODELOCAL_IP
from pytest_k8sdns.errors import ClusterError, PodError, WaitTimeout
from pytest_k8sdns.files import fixture_path

if TYPE_CHECKING:
    from pytest_k8sdns.probe.pods import ProbePod

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


def _soa_ttl(authority: tuple[str, ...]) -> int | None:
    for line in authority:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "SOA" and fields[1].isdigit():
            return int(fields[1])
    return None


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
        return reply.rcode or reply.error or "?", _soa_ttl(reply.authority), time.monotonic()

    def poll(item: tuple[tuple[str, ProbePod], tuple[str, int | None, float]]) -> Visibility:
        (node, pod), (primed, ttl, primed_at) = item
        polls, last, miss = 0, "", None
        while time.monotonic() - created < give_up_s:
            began = time.monotonic()
            reply = pod.query(server, fqdn, rdtype="A", timeout=1.0).replies[0]
            ended = time.monotonic()
            polls, last = polls + 1, reply.rcode or reply.error or "?"
            if reply.rcode == "NOERROR" and want in reply.addresses():
                return Visibility(node, primed, ttl, round(ended - created, 3), miss, round(ended - primed_at, 3),
                                  polls, last)
            miss = round(began - created, 3)
            time.sleep(0.1)
        return Visibility(node, primed, ttl, None, miss, None, polls, last)

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        primes = list(pool.map(prime, nodes))
        svc = cluster.call("create", "services", namespace, cluster.core.create_namespaced_service, namespace, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(MANAGED_BY)},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
        created = time.monotonic()
        want = str(svc.spec.cluster_ip)
        try:
            return fqdn, list(pool.map(poll, zip(nodes, primes)))
        finally:
            with contextlib.suppress(ApiException):
                cluster.call("delete", "services", namespace, cluster.core.delete_namespaced_service, name, namespace)


def find_nodelocal(cluster: Cluster) -> NodeLocalInspector | None:
    """The NodeLocal DaemonSet in kube-system, found by upstream's label, or None."""
    items = cluster.call("list", "daemonsets", "kube-system", cluster.apps.list_namespaced_daemon_set, "kube-system",
                         label_selector=NODELOCAL_LABEL).items
    if not items:
        return None
    ds = items[0]
    return NodeLocalInspector(cluster, ds.metadata.namespace, ds.metadata.name)


# -- deploying it on clusters the plugin created ---------------------------------------------------

#: What deploy_nodelocal creates in kube-system (fixtures/nodelocaldns.yaml), by kind and name.
NODELOCAL_NAMESPACE = "kube-system"
NODELOCAL_NAME = "node-local-dns"
UPSTREAM_SERVICE = "kube-dns-upstream"
#: The manifest's image placeholder; the others are the __PILLAR__ words of upstream's template.
IMAGE_PLACEHOLDER = "__K8SDNS__NODECACHE__IMAGE__"
_PLACEHOLDER = re.compile(r"__(?:PILLAR|K8SDNS)__[A-Z_]+__")
_PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}


def _refuse_unless_created(cluster: Cluster, what: str) -> None:
    if not cluster.created:
        raise ClusterError(
            f"refusing to {what} NodeLocal DNSCache on {cluster.context} ({cluster.server}): the plugin writes "
            f"outside its namespace only on clusters it created; use --k8sdns-kind --k8sdns-kind-nodelocal"
        )


def render_nodelocal(template: str, *, image: str, local_ip: str, dns_server: str, domain: str,
                     cluster_dns: str, upstream: str) -> list[dict[str, Any]]:
    """The manifest's objects with every placeholder filled in (raises ClusterError if one is left)."""
    values = {
        "__PILLAR__DNS__SERVER__": dns_server,
        "__PILLAR__LOCAL__DNS__": local_ip,
        "__PILLAR__DNS__DOMAIN__": domain,
        "__PILLAR__CLUSTER__DNS__": cluster_dns,
        "__PILLAR__UPSTREAM__SERVERS__": upstream,
        IMAGE_PLACEHOLDER: image,
    }
    text = template
    for word, value in values.items():
        text = text.replace(word, value)
    docs = [d for d in yaml.safe_load_all(text) if d]
    left = sorted(set(_PLACEHOLDER.findall(json.dumps(docs))))
    if left:
        raise ClusterError(f"nodelocaldns.yaml still holds {', '.join(left)} after filling it in; fix the manifest")
    return docs


def _template() -> str:
    return fixture_path("nodelocaldns.yaml").read_text(encoding="utf-8")


def _read(cluster: Cluster, kind: str, name: str, namespace: str = NODELOCAL_NAMESPACE) -> Any | None:
    """An object in kube-system, or None when it does not exist."""
    api = {"configmaps": cluster.core.read_namespaced_config_map, "services": cluster.core.read_namespaced_service,
           "daemonsets": cluster.apps.read_namespaced_daemon_set}[kind]
    try:
        return cluster.call("get", kind, namespace, api, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def cluster_domain_of(cluster: Cluster) -> str:
    """The cluster domain: kubelet's clusterDomain (kubeadm's kubelet-config), else CoreDNS's
    kubernetes zone."""
    kubelet = _read(cluster, "configmaps", "kubelet-config")
    if kubelet is not None:
        doc = yaml.safe_load((kubelet.data or {}).get("kubelet", "")) or {}
        if doc.get("clusterDomain"):
            return str(doc["clusterDomain"]).rstrip(".")
    coredns = _read(cluster, "configmaps", "coredns")
    for block in corefile.parse((coredns.data or {}).get("Corefile", "")) if coredns is not None else []:
        for d in block.find("kubernetes"):
            zones = d.args or block.keys
            if zones:
                return corefile.split_key(zones[0])[0].rstrip(".")
    raise ClusterError("cannot tell the cluster domain: no clusterDomain in kube-system/kubelet-config and no "
                       "kubernetes plugin in kube-system/coredns")


def coredns_upstream(cluster: Cluster) -> str:
    """Where CoreDNS sends names outside the cluster (its `.` forward), for the cache to do the same."""
    coredns = _read(cluster, "configmaps", "coredns")
    for block in corefile.parse((coredns.data or {}).get("Corefile", "")) if coredns is not None else []:
        if "." in block.zones:
            for d in block.find("forward"):
                if d.args[1:]:
                    return " ".join(d.args[1:])
    raise ClusterError("cannot tell CoreDNS's upstream: no `forward .` in the `.` block of kube-system/coredns; "
                       "pass upstream= to deploy_nodelocal")


def _kube_proxy_mode(cluster: Cluster) -> str:
    cm = _read(cluster, "configmaps", "kube-proxy")
    doc = yaml.safe_load((cm.data or {}).get("config.conf", "")) if cm is not None else None
    return str((doc or {}).get("mode") or "iptables")


def deploy_nodelocal(cluster: Cluster, image: str, local_ip: str = NODELOCAL_IP, timeout_s: float = 180, *,
                     upstream: str | None = None) -> NodeLocalInspector:
    """Deploy fixtures/nodelocaldns.yaml (kube-proxy iptables mode: the cache also answers on the
    kube-dns ClusterIP, so kubelet's cluster DNS stays as it is) and wait until it is Ready on every
    node. upstream defaults to CoreDNS's own `.` forward. Only on clusters the plugin created;
    whatever it made is removed again if it fails."""
    _refuse_unless_created(cluster, "deploy")
    existing = _read(cluster, "daemonsets", NODELOCAL_NAME)
    if existing is not None:
        raise ClusterError(f"daemonset {NODELOCAL_NAMESPACE}/{NODELOCAL_NAME} already exists; "
                           f"remove it first (pytest_k8sdns.dns.nodelocal.remove_nodelocal)")
    mode = _kube_proxy_mode(cluster)
    if mode != "iptables":
        raise ClusterError(f"kube-proxy runs in {mode} mode; this NodeLocal deployment binds the kube-dns ClusterIP, "
                           f"which needs iptables mode (in IPVS mode kubelet's --cluster-dns must be {local_ip})")
    kube_dns = _read(cluster, "services", "kube-dns")
    if kube_dns is None:
        raise ClusterError("no Service kube-system/kube-dns: NodeLocal DNSCache needs the cluster DNS behind it")
    facts = {"dns_server": str(kube_dns.spec.cluster_ip), "domain": cluster_domain_of(cluster),
             "upstream": upstream or coredns_upstream(cluster), "image": image, "local_ip": local_ip}
    template = _template()
    try:
        # first the Service the cache forwards cluster names to: its ClusterIP goes into the Corefile
        service = next(d for d in yaml.safe_load_all(template) if d and d["kind"] == "Service")
        made = cluster.call("create", "services", NODELOCAL_NAMESPACE, cluster.core.create_namespaced_service,
                            NODELOCAL_NAMESPACE, service)
        docs = render_nodelocal(template, cluster_dns=str(made.spec.cluster_ip), **facts)
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                cluster.call("create", "configmaps", NODELOCAL_NAMESPACE, cluster.core.create_namespaced_config_map,
                             NODELOCAL_NAMESPACE, doc)
            elif doc["kind"] == "DaemonSet":
                cluster.call("create", "daemonsets", NODELOCAL_NAMESPACE, cluster.apps.create_namespaced_daemon_set,
                             NODELOCAL_NAMESPACE, doc)
        wait_daemonset_ready(cluster, NODELOCAL_NAMESPACE, NODELOCAL_NAME, timeout_s, image_option="--k8sdns-nodelocal-image")
    except BaseException:
        with contextlib.suppress(Exception):  # the first failure is the one to report
            remove_nodelocal(cluster)
        raise
    return NodeLocalInspector(cluster, NODELOCAL_NAMESPACE, NODELOCAL_NAME, local_ip)


def wait_daemonset_ready(cluster: Cluster, namespace: str, name: str, timeout_s: float, *, image_option: str = "") -> None:
    """Wait until a DaemonSet runs an up-to-date, Ready pod on every node. A pull failure ends the
    wait at once; a timeout says what the DaemonSet and its not-Ready pods showed last."""
    deadline = time.monotonic() + timeout_s
    while True:
        ds = cluster.call("get", "daemonsets", namespace, cluster.apps.read_namespaced_daemon_set, name, namespace)
        st = ds.status
        nodes = len(cluster.nodes())
        selector = ",".join(f"{k}={v}" for k, v in (ds.spec.selector.match_labels or {}).items())
        items = cluster.call("list", "pods", namespace, cluster.core.list_namespaced_pod, namespace,
                             label_selector=selector).items
        not_ready = [p for p in items
                     if not any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        for p in not_ready:
            for cs in p.status.container_statuses or []:
                waiting = cs.state.waiting
                if waiting and waiting.reason in _PULL_FAILURES:
                    raise PodError(f"pod {namespace}/{p.metadata.name} on {p.spec.node_name} cannot pull image "
                                   f"{cs.image} ({waiting.reason}); build it with substrate/build (kind loads it) "
                                   f"or point {image_option or 'the image option'} at one the nodes can pull")
        desired = st.desired_number_scheduled or 0
        if (st.observed_generation == ds.metadata.generation and desired == nodes and not not_ready
                and (st.updated_number_scheduled or 0) == desired and (st.number_ready or 0) == desired):
            return
        if time.monotonic() > deadline:
            seen = (f"generation {st.observed_generation}/{ds.metadata.generation}, desired {desired} of {nodes} "
                    f"nodes, updated {st.updated_number_scheduled or 0}, ready {st.number_ready or 0}")
            for p in not_ready[:2]:
                seen += (f"; pod {p.metadata.name} on {p.spec.node_name}: "
                         f"{pods._describe(p, pods.pod_events(cluster, namespace, p.metadata.name))}")
            raise WaitTimeout(f"daemonset {namespace}/{name} not Ready on every node after {timeout_s:.0f} s; "
                              f"last seen: {seen}")
        time.sleep(1)


def remove_nodelocal(cluster: Cluster, timeout_s: float = 120) -> None:
    """Undo deploy_nodelocal exactly: delete its DaemonSet, wait until its pods are gone (each takes
    its interface and iptables rules with it), then its ConfigMap and Service. Objects the plugin
    did not make (no managed-by label) are left alone; missing ones are fine."""
    _refuse_unless_created(cluster, "remove")
    ns = NODELOCAL_NAMESPACE
    deletes = [("daemonsets", NODELOCAL_NAME, cluster.apps.delete_namespaced_daemon_set),
               ("configmaps", NODELOCAL_NAME, cluster.core.delete_namespaced_config_map),
               ("services", UPSTREAM_SERVICE, cluster.core.delete_namespaced_service)]
    for kind, name, delete in deletes:
        obj = _read(cluster, kind, name)
        if obj is None or not MANAGED_BY.items() <= (obj.metadata.labels or {}).items():
            continue
        try:
            cluster.call("delete", kind, ns, delete, name, ns, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
        if kind == "daemonsets":
            _wait_pods_gone(cluster, ns, f"k8s-app={NODELOCAL_NAME}", timeout_s)


def _wait_pods_gone(cluster: Cluster, namespace: str, selector: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        left = cluster.call("list", "pods", namespace, cluster.core.list_namespaced_pod, namespace,
                            label_selector=selector).items
        if not left:
            return
        if time.monotonic() > deadline:
            seen = ", ".join(f"{p.metadata.name} on {p.spec.node_name} ({p.status.phase})" for p in left)
            raise WaitTimeout(f"pods {selector} in {namespace} still there {timeout_s:.0f} s after their daemonset "
                              f"was deleted: {seen}")
        time.sleep(1)
