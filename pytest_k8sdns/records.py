"""The Services and pods the records checks resolve, created in the run's own namespace."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from pytest_k8sdns import probes
from pytest_k8sdns.cluster import MANAGED_BY, Cluster
from pytest_k8sdns.errors import WaitTimeout
from pytest_k8sdns.probes import ProbeSpec

#: A named port, so the Service has an SRV record _http._tcp.<svc>.
PORT = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}


@dataclasses.dataclass(frozen=True)
class DnsObjects:
    """What was created and the addresses DNS must give for it."""

    namespace: str
    domain: str
    service: str
    service_ip: str
    headless: str
    headless_ips: tuple[str, ...]  # ready endpoints
    hostname: str  # <hostname>.<headless>.<ns>.svc.<domain> names the first headless pod
    hostname_ip: str
    external: str
    external_target: str

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.namespace}.svc.{self.domain}"


def _service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(MANAGED_BY)}, "spec": spec}


def create(cluster: Cluster, namespace: str, run_id: str, domain: str, image: str, external_target: str,
           timeout_s: float, image_options: dict[str, str]) -> DnsObjects:
    """A ClusterIP Service, a headless Service with two ready pods (one with hostname/subdomain),
    and an ExternalName Service."""
    core = cluster.core
    svc = cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                       _service("web", {"selector": {"app": "web"}, "ports": [PORT]}))
    cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                 _service("hl", {"clusterIP": "None", "selector": {"app": "hl"}, "ports": [PORT],
                                 "publishNotReadyAddresses": False}))
    cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                 _service("ext", {"type": "ExternalName", "externalName": external_target}))
    specs = [ProbeSpec(key=f"hl-{i}", libc="glibc", image=image, labels={"app": "hl"},
                       hostname=f"h{i}", subdomain="hl") for i in range(2)]
    started = probes.start(cluster, namespace, run_id, specs, timeout_s=timeout_s, image_options=image_options,
                           install=False)
    ips = _wait_endpoints(cluster, namespace, "hl", 2, timeout_s)
    first = cluster.call("get", "pods", namespace, core.read_namespaced_pod, started["hl-0"].name, namespace)
    return DnsObjects(
        namespace=namespace, domain=domain, service="web", service_ip=svc.spec.cluster_ip, headless="hl",
        headless_ips=tuple(sorted(ips)), hostname="h0", hostname_ip=first.status.pod_ip,
        external="ext", external_target=external_target,
    )


def _wait_endpoints(cluster: Cluster, namespace: str, service: str, count: int, timeout_s: float) -> list[str]:
    """Ready addresses of a Service's EndpointSlices, once there are `count` of them."""
    api = __import__("kubernetes").client.DiscoveryV1Api(cluster.api_client)
    deadline = time.monotonic() + timeout_s
    ips: list[str] = []
    while time.monotonic() < deadline:
        slices = cluster.call("list", "endpointslices", namespace, api.list_namespaced_endpoint_slice, namespace,
                              label_selector=f"kubernetes.io/service-name={service}").items
        ips = [a for s in slices for e in s.endpoints or [] if (e.conditions and e.conditions.ready) for a in e.addresses]
        if len(ips) >= count:
            return ips
        time.sleep(0.5)
    raise WaitTimeout(f"service {namespace}/{service} has {len(ips)} ready endpoints after {timeout_s:.0f} s, wanted {count}")
