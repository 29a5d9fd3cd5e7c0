"""The Services and pods the records checks resolve, created in the run's own namespace."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubernetes.client import DiscoveryV1Api

from pytest_k8sdns.kube.client import MANAGED_BY, Cluster
from pytest_k8sdns.kube.pods import WATCHED_EVERY_S
from pytest_k8sdns.kube.wait import Watched, until
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.pods import ProbeSpec

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
    not_ready_ips: tuple[str, ...]  # endpoints of `headless` that are not ready: never in its A records
    hostname: str  # <hostname>.<headless>.<ns>.svc.<domain> names the first headless pod
    hostname_ip: str
    hostnames: tuple[str, ...]  # every ready headless pod's spec.hostname: the targets of hl's SRV
    external: str
    external_target: str

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.namespace}.svc.{self.domain}"


def service_manifest(name: str, run_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A Service of this run (managed-by and run labels), for the objects the checks resolve."""
    labels = {**MANAGED_BY, "k8sdns.io/run": run_id}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels}, "spec": spec}


def create(cluster: Cluster, namespace: str, run_id: str, domain: str, image: str, external_target: str,
           timeout_s: float, image_options: dict[str, str]) -> DnsObjects:
    """A ClusterIP Service, a headless Service with two ready pods (one with hostname/subdomain)
    and one that never becomes ready, and an ExternalName Service."""
    core = cluster.core
    svc = cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                       service_manifest("web", run_id, {"selector": {"app": "web"}, "ports": [PORT]}))
    cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                 service_manifest("hl", run_id, {"clusterIP": "None", "selector": {"app": "hl"}, "ports": [PORT],
                                 "publishNotReadyAddresses": False}))
    cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                 service_manifest("ext", run_id, {"type": "ExternalName", "externalName": external_target}))
    specs = [ProbeSpec(key=f"hl-{i}", libc="glibc", image=image, labels={"app": "hl"},
                       hostname=f"h{i}", subdomain="hl") for i in range(2)]
    started = probes.start(cluster, namespace, run_id, specs, timeout_s=timeout_s, image_options=image_options,
                           install=False)
    # a third endpoint whose readiness probe always fails: the specification keeps it out of DNS
    unready = probes.manifest(ProbeSpec(key="hl-unready", libc="glibc", image=image, labels={"app": "hl"}), run_id)
    unready["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["python3", "-c", "raise SystemExit(1)"]}, "periodSeconds": 5}
    cluster.call("create", "pods", namespace, core.create_namespaced_pod, namespace, unready)
    ips = wait_endpoints(cluster, namespace, "hl", 2, timeout_s)
    not_ready = wait_endpoints(cluster, namespace, "hl", 1, timeout_s, ready=False)
    first = cluster.call("get", "pods", namespace, core.read_namespaced_pod, started["hl-0"].name, namespace)
    return DnsObjects(
        namespace=namespace, domain=domain, service="web", service_ip=svc.spec.cluster_ip, headless="hl",
        headless_ips=tuple(sorted(ips)), not_ready_ips=tuple(sorted(not_ready)), hostname="h0", hostname_ip=first.status.pod_ip,
        hostnames=tuple(s.hostname or "" for s in specs),
        external="ext", external_target=external_target,
    )


def wait_endpoints(cluster: Cluster, namespace: str, service: str, count: int, timeout_s: float,
                    ready: bool = True) -> list[str]:
    """Ready (or not-ready) addresses of a Service's EndpointSlices, once there are `count` of them;
    woken by the watch of those slices."""
    api = DiscoveryV1Api(cluster.api_client)
    selector = f"kubernetes.io/service-name={service}"
    state = "ready" if ready else "not-ready"

    def look() -> list[str]:
        slices = cluster.call("list", "endpointslices", namespace, api.list_namespaced_endpoint_slice, namespace,
                              label_selector=selector).items
        return [a for s in slices for e in s.endpoints or []
                if bool(e.conditions and e.conditions.ready) == ready for a in e.addresses]

    def message(ips: list[str]) -> str:
        return f"service {namespace}/{service} has {len(ips)} {state} endpoints after {timeout_s:.0f} s, wanted {count}"

    return until(f"{count} {state} endpoints of service {namespace}/{service}", look, lambda ips: len(ips) >= count,
                 timeout_s=timeout_s, message=message, every_s=WATCHED_EVERY_S,
                 watched=Watched(cluster, "endpointslices", namespace, api.list_namespaced_endpoint_slice,
                                 label_selector=selector))


#: The subdomain of the pods whose own names only /etc/hosts knows: the headless Service `hl`
#: exists, but these pods are not behind it (no `app: hl` label), so DNS has no record of them.
OWN_NAMES_SUBDOMAIN = "hl"


def start_named(cluster: Cluster, namespace: str, run_id: str, images: Mapping[str, str], timeout_s: float,
                image_options: dict[str, str]) -> dict[str, probes.ProbePod]:
    """A probe pod of each libc ({libc: image}) with spec.hostname `own-<libc>` and spec.subdomain
    `hl`: the kubelet writes `<ip> own-<libc>.hl.<ns>.svc.<domain> own-<libc>` into its /etc/hosts
    (the e2e test "/etc/hosts entries for the cluster"). {libc: ProbePod}."""
    specs = [ProbeSpec(key=f"own-{libc}", libc=libc, image=image, hostname=f"own-{libc}",
                       subdomain=OWN_NAMES_SUBDOMAIN) for libc, image in images.items()]
    started = probes.start(cluster, namespace, run_id, specs, timeout_s=timeout_s, image_options=image_options)
    return {p.libc: p for p in started.values()}


def long_search_list(namespace: str, domain: str, subdomain: str, extra: int = 6, length: int = 40) -> list[str]:
    """dnsConfig searches for the e2e test "more than 6 search paths and more than 256 search
    characters": `extra` domains of `length` characters under the cluster domain (which its
    kubernetes plugin answers NXDOMAIN), then the headless Service's own subdomain, where only the
    pod's hostname (h0) is found. With the cluster's three entries: 10 paths, over 256 characters."""
    fillers = []
    for i in range(extra):
        head = f"k8sdns-long-search-{i:02d}-"
        fillers.append(head + "x" * max(1, length - len(head) - len(domain) - 1) + "." + domain)
    return [*fillers, f"{subdomain}.{namespace}.svc.{domain}"]
