"""Find the cluster DNS through the Service the pods' nameserver points at; read its state."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.errors import ClusterError, ConfigError, NotFound
from pytest_k8sdns.kube import pods
from pytest_k8sdns.kube.client import Cluster

NODELOCAL_IP = "169.254.20.10"
LOOP_LINE = re.compile(r".*plugin/loop: Loop \(.*")


@dataclasses.dataclass(frozen=True)
class DnsPod:
    name: str
    node: str
    ip: str
    ready: bool
    restarts: int
    waiting_reason: str
    image: str


@dataclasses.dataclass
class DnsProvider:
    """The Service behind the pods' nameserver and the pods behind that Service."""

    service_namespace: str
    service_name: str
    cluster_ip: str
    selector: dict[str, str]
    implementation: str  # "coredns", "kube-dns" (dnsmasq), or "unknown"
    image: str
    version: str
    corefile_configmap: str | None
    #: spec.clusterIPs, the primary family first: a dual-stack DNS Service has two, each the DNS
    cluster_ips: tuple[str, ...] = ()


class CoreDNSInspector:
    """Read-only view of the cluster DNS provider: pods, restarts, logs, Corefile."""

    def __init__(self, cluster: Cluster, nameserver: str, restarts_at_start: Mapping[str, int] | None = None) -> None:
        self.cluster = cluster
        self.nameserver = nameserver
        self.provider = self._find(nameserver)
        #: restart counts at the start of the run (the session's snapshot, given), else when this
        #: inspector first looked: a restart after them is a restart during the run
        seen = restarts_at_start or {}
        self.restarts_at_start = {p.name: seen.get(p.name, p.restarts) for p in self.pods()}

    def _find(self, nameserver: str) -> DnsProvider:
        c = self.cluster
        # NodeLocal DNSCache answers on a link-local address; the provider behind it is the
        # Service the cache forwards to, which keeps the conventional kube-dns name.
        candidates = c.call("list", "services", "kube-system", c.core.list_namespaced_service, "kube-system").items
        match = [s for s in candidates if nameserver in (s.spec.cluster_ips or [s.spec.cluster_ip])]
        if not match:
            try:
                everywhere = c.call("list", "services", None, c.core.list_service_for_all_namespaces).items
            except ClusterError:
                everywhere = []
            match = [s for s in everywhere if nameserver in (s.spec.cluster_ips or [s.spec.cluster_ip])]
        if not match and nameserver == NODELOCAL_IP:
            match = [s for s in candidates if (s.metadata.labels or {}).get("k8s-app") == "kube-dns"]
        if not match:
            raise ClusterError(
                f"no Service has the pods' nameserver {nameserver} as its ClusterIP; "
                f"the cluster DNS cannot be found (is kubelet --cluster-dns right?)"
            )
        svc = match[0]
        selector = dict(svc.spec.selector or {})
        dns_pods = self._pods(svc.metadata.namespace, selector)
        image = dns_pods[0].image if dns_pods else ""
        name = image.rsplit("/", 1)[-1]
        implementation = "coredns" if "coredns" in name else ("kube-dns" if "dnsmasq" in name or "kube-dns" in name else "unknown")
        version = name.split(":", 1)[1] if ":" in name else ""
        return DnsProvider(
            service_namespace=svc.metadata.namespace,
            service_name=svc.metadata.name,
            cluster_ip=svc.spec.cluster_ip,
            selector=selector,
            implementation=implementation,
            image=image,
            version=version,
            corefile_configmap=self._corefile_configmap(svc.metadata.namespace, selector),
            cluster_ips=tuple(svc.spec.cluster_ips or [svc.spec.cluster_ip]),
        )

    def _raw_pods(self, namespace: str, selector: dict[str, str]) -> list[Any]:
        label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
        c = self.cluster
        return list(c.call("list", "pods", namespace, c.core.list_namespaced_pod, namespace, label_selector=label_selector).items)

    def _pods(self, namespace: str, selector: dict[str, str]) -> list[DnsPod]:
        out = []
        for p in self._raw_pods(namespace, selector):
            if p.metadata.deletion_timestamp is not None:
                continue  # terminating (lameduck): no longer behind the Service
            statuses = p.status.container_statuses or []
            waiting = next((cs.state.waiting.reason for cs in statuses if cs.state and cs.state.waiting), "")
            out.append(
                DnsPod(
                    name=p.metadata.name,
                    node=p.spec.node_name or "",
                    ip=p.status.pod_ip or "",
                    ready=pods.is_ready(p),
                    restarts=sum(cs.restart_count for cs in statuses),
                    waiting_reason=waiting or "",
                    image=p.spec.containers[0].image,
                )
            )
        return out

    def _corefile_configmap(self, namespace: str, selector: dict[str, str]) -> str | None:
        for p in self._raw_pods(namespace, selector)[:1]:
            for v in p.spec.volumes or []:
                if v.config_map is not None:
                    return str(v.config_map.name)
        return None

    def pods(self) -> list[DnsPod]:
        return self._pods(self.provider.service_namespace, self.provider.selector)

    def corefile(self) -> str | None:
        name = self.provider.corefile_configmap
        if not name:
            return None
        c = self.cluster
        ns = self.provider.service_namespace
        try:
            cm = c.call("get", "configmaps", ns, c.core.read_namespaced_config_map, name, ns)
        except NotFound:
            return None
        data = cm.data or {}
        return data.get("Corefile") or next(iter(data.values()), None)

    def pod_records(self, cluster_domain: str) -> str | None:
        """The `pods` mode (insecure, verified, disabled) of the kubernetes plugin that serves the
        cluster domain in the Corefile; None when there is no readable Corefile or no such plugin."""
        text = self.corefile()
        if not text:
            return None
        try:
            return corefile.pod_records_mode(text, cluster_domain)
        except ConfigError:
            return None

    def loop_lines(self) -> dict[str, list[str]]:
        """Per pod, the `plugin/loop: Loop (` lines of its current and previous container logs."""
        found: dict[str, list[str]] = {}
        ns = self.provider.service_namespace
        for p in self.pods():
            lines: list[str] = []
            for previous in (False, True):
                try:
                    text = pods.logs(self.cluster, ns, p.name, previous=previous)
                except (NotFound, ApiException):
                    continue  # the pod went away, or its container has not started: no log to read
                lines += [m.group(0) for m in LOOP_LINE.finditer(text)]
            if lines:
                found[p.name] = lines
        return found

    def describe(self) -> str:
        p = self.provider
        return f"{p.implementation} {p.version or '?'} ({p.image}) behind {p.service_namespace}/{p.service_name} {p.cluster_ip}"
