"""Deploy NodeLocal DNSCache (fixtures/nodelocaldns.yaml) on kind clusters the plugin created, and
remove exactly what it made. Every other cluster is refused: this writes to kube-system."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import yaml

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.dns.coredns import NODELOCAL_IP
from pytest_k8sdns.dns.nodelocal import (
    NODELOCAL_NAME,
    NODELOCAL_NAMESPACE,
    NodeLocalInspector,
    cluster_domain_of,
)
from pytest_k8sdns.errors import ClusterError, NotFound
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube.client import MANAGED_BY, Cluster
from pytest_k8sdns.kube.rollout import wait_daemonset_ready, wait_pods_gone

#: The Service the cache forwards cluster names to (the manifest's first object).
UPSTREAM_SERVICE = "kube-dns-upstream"
#: The manifest's image placeholder; the others are the __PILLAR__ words of upstream's template.
IMAGE_PLACEHOLDER = "__K8SDNS__NODECACHE__IMAGE__"
_PLACEHOLDER = re.compile(r"__(?:PILLAR|K8SDNS)__[A-Z_]+__")


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
    except NotFound:
        return None


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
    if _read(cluster, "daemonsets", NODELOCAL_NAME) is not None:
        raise ClusterError(f"daemonset {NODELOCAL_NAMESPACE}/{NODELOCAL_NAME} already exists; "
                           f"remove it first (pytest_k8sdns.dns.nodelocal_deploy.remove_nodelocal)")
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
        made = cluster.create(service)
        for doc in render_nodelocal(template, cluster_dns=str(made.spec.cluster_ip), **facts):
            if doc["kind"] != "Service":
                cluster.create(doc)
        wait_daemonset_ready(cluster, NODELOCAL_NAMESPACE, NODELOCAL_NAME, timeout_s,
                             image_option="--k8sdns-nodelocal-image")
    except BaseException:
        with contextlib.suppress(Exception):  # the first failure is the one to report
            remove_nodelocal(cluster)
        raise
    return NodeLocalInspector(cluster, NODELOCAL_NAMESPACE, NODELOCAL_NAME, local_ip)


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
        with contextlib.suppress(NotFound):  # deleted meanwhile: what was wanted
            cluster.call("delete", kind, ns, delete, name, ns, propagation_policy="Background")
        if kind == "daemonsets":
            wait_pods_gone(cluster, ns, f"k8s-app={NODELOCAL_NAME}", timeout_s, owner="daemonset")


__all__ = ["deploy_nodelocal", "remove_nodelocal", "render_nodelocal", "coredns_upstream", "UPSTREAM_SERVICE",
           "IMAGE_PLACEHOLDER"]
