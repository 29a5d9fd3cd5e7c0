"""Dual-stack objects: a Service that asks for an IPv6 ClusterIP in the run's namespace, and the
IPv6 addresses the cluster DNS answers on (its Service's IPv6 ClusterIP, its pods' IPv6 addresses)."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_k8sdns.dns.objects import PORT, service_manifest
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.probe.pods import LIBCS, ProbeSpec

#: The Service that asks for both families: PreferDualStack, so a single-stack cluster accepts it
#: (RequireDualStack is refused there) and shows by its one ClusterIP that it has no IPv6.
SERVICE = "web6"


def is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).version == 6
    except ValueError:
        return False


def lookup_family(address: str) -> str:
    """The getaddrinfo family that finds `address`: "inet6" for an IPv6 address (an IPv6-only
    cluster's kubernetes Service has only an AAAA record), else "inet"."""
    return "inet6" if is_ipv6(address) else "inet"


def same_addresses(got: Sequence[str], want: Sequence[str]) -> bool:
    """The same set of IP addresses, whatever their spelling (fd00::a and fd00:0::a are one)."""
    def norm(addresses: Sequence[str]) -> set[str]:
        out = set()
        for a in addresses:
            try:
                out.add(str(ipaddress.ip_address(a)))
            except ValueError:
                out.add(a)
        return out

    return norm(got) == norm(want)


@dataclasses.dataclass(frozen=True)
class DualStack:
    """The Service made and the cluster DNS's IPv6 addresses: (address, what it is), Service first."""

    namespace: str
    domain: str
    service: str
    cluster_ips: tuple[str, ...]  # spec.clusterIPs: the primary family first
    dns_service: str  # namespace/name of the cluster DNS Service
    dns_ipv6: tuple[tuple[str, str], ...]

    @property
    def fqdn(self) -> str:
        return f"{self.service}.{self.namespace}.svc.{self.domain}"

    @property
    def ipv6(self) -> str | None:
        return next((ip for ip in self.cluster_ips if is_ipv6(ip)), None)

    @property
    def ipv4(self) -> str | None:
        return next((ip for ip in self.cluster_ips if not is_ipv6(ip)), None)

    @property
    def single_stack(self) -> str | None:
        """Why the IPv6 checks cannot run on this cluster (it gives Services no IPv6), or None."""
        if self.ipv6 is not None:
            return None
        return (f"single-stack cluster: Service {self.namespace}/{self.service} (ipFamilyPolicy PreferDualStack) got "
                f"only {', '.join(self.cluster_ips) or 'no ClusterIP'}, no IPv6 ClusterIP")

    @property
    def nameserver6(self) -> str | None:
        """The IPv6 address clients should use: the DNS Service's, else its first pod's."""
        return self.dns_ipv6[0][0] if self.dns_ipv6 else None

    def resolver_specs(self, images: Mapping[str, str], node: str | None) -> list[ProbeSpec]:
        """A probe pod per libc whose resolv.conf has only the IPv6 nameserver, with the search
        list and ndots a ClusterFirst pod of this namespace gets."""
        assert self.nameserver6 is not None, "resolver_specs needs an IPv6 address of the cluster DNS"
        d, ns = self.domain, self.namespace
        config = {"nameservers": [self.nameserver6], "searches": [f"{ns}.svc.{d}", f"svc.{d}", d],
                  "options": [{"name": "ndots", "value": "5"}]}
        return [ProbeSpec(key=f"{libc}-ipv6dns", libc=libc, image=images[libc], node=node, dns_policy="None",
                          dns_config=config) for libc in LIBCS]


def dns_ipv6_addresses(cluster: Cluster, namespace: str, service: str, selector: Mapping[str, str]) -> list[tuple[str, str]]:
    """(address, what it is) for the DNS Service's IPv6 ClusterIP and each serving DNS pod's IPv6
    address (kubeadm leaves kube-dns SingleStack on a dual-stack cluster; its pods have both)."""
    core = cluster.core
    out: list[tuple[str, str]] = []
    services = cluster.call("list", "services", namespace, core.list_namespaced_service, namespace).items
    for svc in services:
        if svc.metadata.name == service:
            out += [(ip, f"Service {namespace}/{service}") for ip in svc.spec.cluster_ips or [] if is_ipv6(ip)]
    label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
    pods: list[Any] = cluster.call("list", "pods", namespace, core.list_namespaced_pod, namespace,
                                   label_selector=label_selector).items
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
            continue
        out += [(p.ip, f"pod {namespace}/{pod.metadata.name}") for p in pod.status.pod_ips or [] if is_ipv6(p.ip)]
    return out


def create(cluster: Cluster, namespace: str, run_id: str, domain: str, dns_namespace: str, dns_service: str,
           dns_selector: Mapping[str, str]) -> DualStack:
    """The PreferDualStack Service `web6` (no endpoints needed: a ClusterIP Service's records are its
    ClusterIPs), and where the cluster DNS answers over IPv6."""
    core = cluster.core
    spec = {"selector": {"app": SERVICE}, "ports": [PORT], "ipFamilyPolicy": "PreferDualStack"}
    svc = cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                       service_manifest(SERVICE, run_id, spec))
    ips = tuple(svc.spec.cluster_ips or [svc.spec.cluster_ip])
    dns = dns_ipv6_addresses(cluster, dns_namespace, dns_service, dns_selector) if any(map(is_ipv6, ips)) else []
    return DualStack(namespace=namespace, domain=domain, service=SERVICE, cluster_ips=ips,
                     dns_service=f"{dns_namespace}/{dns_service}", dns_ipv6=tuple(dns))


__all__ = ["SERVICE", "DualStack", "create", "dns_ipv6_addresses", "is_ipv6", "lookup_family",
           "same_addresses"]
