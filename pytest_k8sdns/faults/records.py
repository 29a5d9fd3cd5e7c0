"""Faults in what the cluster DNS publishes: endpoints that are not ready, published as ready."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kubernetes.client import DiscoveryV1Api
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.errors import ClusterError
from pytest_k8sdns.faults.base import FaultBase, every

#: The manager label of EndpointSlices the not_ready_published fault writes.
FAULT_MANAGER = "k8sdns-faults"
_CONTROLLER = "endpointslice-controller.k8s.io"


class RecordFaults(FaultBase):
    """Faults of the objects the DNS records come from."""

    @contextlib.contextmanager
    def not_ready_published(self, poll_s: float = 0.3) -> Iterator[None]:
        """A faulty endpoints controller: every endpoint that is not ready, in any namespace but
        kube-system, gets a second EndpointSlice of its Service that marks it ready. The cluster
        DNS then publishes the address of a pod that fails its readiness probe."""
        api = DiscoveryV1Api(self.cluster.api_client)
        copied: set[tuple[str, str]] = set()
        errors: list[str] = []

        def mirror_once() -> None:
            slices: list[Any] = api.list_endpoint_slice_for_all_namespaces(
                label_selector=f"endpointslice.kubernetes.io/managed-by={_CONTROLLER}", _request_timeout=10).items
            for sl in slices:
                ns, name = sl.metadata.namespace, sl.metadata.name
                service = (sl.metadata.labels or {}).get("kubernetes.io/service-name")
                unready = [e for e in sl.endpoints or [] if e.conditions and e.conditions.ready is False]
                if ns == "kube-system" or not service or not unready or (ns, name) in copied:
                    continue
                body: Any = {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": sl.address_type,
                    "metadata": {"name": f"{name}-published"[:63], "labels": {
                        "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": FAULT_MANAGER}},
                    "ports": self.cluster.api_client.sanitize_for_serialization(sl.ports) or [],
                    "endpoints": [{"addresses": list(e.addresses), "conditions": {"ready": True}} for e in unready],
                }
                try:
                    api.create_namespaced_endpoint_slice(ns, body, _request_timeout=10)
                except ApiException as exc:
                    # gone, being terminated (403 from NamespaceLifecycle), or made already
                    if exc.status not in (403, 404, 409):
                        raise
                copied.add((ns, name))

        try:
            # a periodic actor, as the controller it imitates: it copies each slice once, as it appears
            with every(poll_s, mirror_once, "not-ready-published", errors):
                yield
        finally:
            made: list[Any] = api.list_endpoint_slice_for_all_namespaces(
                label_selector=f"endpointslice.kubernetes.io/managed-by={FAULT_MANAGER}", _request_timeout=10).items
            for sl in made:
                with contextlib.suppress(ApiException):
                    api.delete_namespaced_endpoint_slice(sl.metadata.name, sl.metadata.namespace, _request_timeout=10)
        if len(errors) > 3:  # a busy API server may time out now and then; more is a real failure
            raise ClusterError(f"fault not_ready_published could not mirror EndpointSlices: {errors[-1]}")
