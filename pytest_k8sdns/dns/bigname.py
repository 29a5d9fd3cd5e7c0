"""A name whose answer does not fit in 512 bytes (check 18): a headless Service with many ready
endpoints, so that DNS over UDP without EDNS must truncate (TC) and a client must ask again over TCP
to get every address. The endpoints are written as an EndpointSlice of a Service without a
selector (no pod per address): addresses from TEST-NET-1 (192.0.2.0/24, RFC 5737), which nothing
routes, owned by the Service so that they go with it."""

from __future__ import annotations

import dataclasses
from typing import Any

from kubernetes.client import DiscoveryV1Api

from pytest_k8sdns.dns.objects import PORT, service_manifest, wait_endpoints
from pytest_k8sdns.kube.client import MANAGED_BY, Cluster

#: 40 A records: about 700 bytes of answer, well over the 512 of DNS over UDP without EDNS (each
#: record is 16 bytes with the name compressed; 28 of them already fill a message)
ADDRESSES = 40
#: musl resends over TCP when an answer is truncated from 1.2.4 on; before, it keeps what fit
MUSL_TCP_FALLBACK = (1, 2, 4)


@dataclasses.dataclass(frozen=True)
class BigName:
    service: str
    fqdn: str  # absolute, with the trailing dot
    addresses: tuple[str, ...]


def addresses(count: int = ADDRESSES) -> list[str]:
    if not 1 <= count <= 254:
        raise ValueError(f"count {count} must be 1..254 (one TEST-NET-1 /24)")
    return [f"192.0.2.{i}" for i in range(1, count + 1)]


def create(cluster: Cluster, namespace: str, run_id: str, domain: str, count: int = ADDRESSES,
           name: str = "big", timeout_s: float = 60) -> BigName:
    """The headless Service `name` and its EndpointSlice of `count` ready addresses; waits until
    the API lists them (the cluster DNS is judged by the check, not waited for here)."""
    core = cluster.core
    svc = cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                       service_manifest(name, run_id, {"clusterIP": "None", "ports": [PORT]}))
    ips = addresses(count)
    body: dict[str, Any] = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {
            "name": f"{name}-k8sdns", "labels": {**MANAGED_BY, "k8sdns.io/run": run_id,
                                                 "kubernetes.io/service-name": name,
                                                 "endpointslice.kubernetes.io/managed-by": "pytest-k8sdns"},
            # deleted with its Service, by the garbage collector
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc.metadata.uid}],
        },
        "ports": [{"name": PORT["name"], "port": PORT["targetPort"], "protocol": PORT["protocol"]}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }
    api = DiscoveryV1Api(cluster.api_client)
    cluster.call("create", "endpointslices", namespace, api.create_namespaced_endpoint_slice, namespace, body)
    wait_endpoints(cluster, namespace, name, count, timeout_s)
    return BigName(name, f"{name}.{namespace}.svc.{domain}.", tuple(ips))


def libc_version(text: str | None) -> tuple[int, ...] | None:
    """``1.2.3`` -> (1, 2, 3); None when the probe could not tell."""
    try:
        return tuple(int(p) for p in (text or "").split(".") if p) or None
    except ValueError:
        return None


def falls_back_to_tcp(libc: str, version: str | None) -> bool | None:
    """Whether this libc asks again over TCP when an answer is truncated: glibc always, musl from
    1.2.4; None when the musl version is unknown."""
    if libc == "glibc":
        return True
    parsed = libc_version(version)
    return None if parsed is None else parsed >= MUSL_TCP_FALLBACK
