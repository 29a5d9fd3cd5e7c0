"""One run of the suite: the cluster (given or created), its namespace, and their cleanup."""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdns import pods
from pytest_k8sdns.cluster import Cluster, NodeFacts
from pytest_k8sdns.config import Settings
from pytest_k8sdns.nodelocal import deploy_nodelocal, find_nodelocal
from pytest_k8sdns.kind import KindCluster, point_coredns_at, wait_deployment, wait_nodes_ready

RUN_KEY = pytest.StashKey["Run"]()


def new_run_id() -> str:
    """Short and unique per run and per xdist worker, so parallel runs never collide."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return secrets.token_hex(3) + (f"-{worker}" if worker else "")


class Run:
    """State shared by every fixture of one pytest session."""

    def __init__(self, settings: Settings, run_id: str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id or new_run_id()
        self.namespace = f"k8sdns-{self.run_id}"
        self.kind: KindCluster | None = None
        self._cluster: Cluster | None = None
        self._namespace_created = False
        self._stopped = False
        self._lock = threading.Lock()
        self.server_version = ""
        self.nodes: list[NodeFacts] = []
        #: facts for the report header and results: filled by inspectors as they learn them
        self.facts: dict[str, Any] = {}

    @property
    def cluster(self) -> Cluster:
        assert self._cluster is not None, "Run.start() has not connected to a cluster"
        return self._cluster

    def start(self, kind: KindCluster | None = None) -> None:
        """Connect to (or create) the cluster and make the run's namespace."""
        s = self.settings
        if s.kind:
            self.kind = kind or KindCluster(f"k8sdns-{self.run_id}", image=s.kind_image,
                                            config=Path(s.kind_config) if s.kind_config else None)
            self._cluster = self.kind.create()
            self._prepare_kind()
        else:
            self._cluster = Cluster.from_kubeconfig(s.kubeconfig, s.context)
        self.server_version = self.cluster.server_version()
        self.nodes = self.cluster.nodes()
        self._header_facts()
        pods.create_namespace(self.cluster, self.namespace, self.run_id)
        self._namespace_created = True

    def _prepare_kind(self) -> None:
        assert self.kind is not None
        cluster = self.cluster
        wait_nodes_ready(cluster, 1, self.settings.pod_timeout)
        nodes = len(self.kind.node_containers())
        wait_nodes_ready(cluster, nodes, self.settings.pod_timeout)
        wait_deployment(cluster, "kube-system", "coredns", self.settings.pod_timeout)
        deployment = cluster.call("get", "deployments", "kube-system", cluster.apps.read_namespaced_deployment,
                                  "coredns", "kube-system")
        coredns_image = deployment.spec.template.spec.containers[0].image
        upstream_ip = self.kind.start_upstream(self.settings.upstream_image or coredns_image)
        point_coredns_at(cluster, upstream_ip, self.settings.pod_timeout)
        self.facts["upstream"] = upstream_ip
        self.facts["loaded_images"] = self.kind.load_images([self.settings.glibc_image, self.settings.musl_image])
        if self.settings.kind_nodelocal:
            # loaded when the host's Docker has it; otherwise the nodes pull it (or the wait says they cannot)
            self.facts["loaded_images"] += self.kind.load_images([self.settings.nodelocal_image])
            deploy_nodelocal(cluster, self.settings.nodelocal_image, upstream=upstream_ip,
                             timeout_s=self.settings.pod_timeout)

    def _header_facts(self) -> None:
        """Cheap facts for the report header. The checks find the cluster DNS properly, through the
        pods' nameserver; here the conventional k8s-app=kube-dns label is a good enough hint."""
        c = self.cluster
        dns = c.call("list", "pods", "kube-system", c.core.list_namespaced_pod, "kube-system",
                     label_selector="k8s-app=kube-dns").items
        images = sorted({ct.image for p in dns for ct in p.spec.containers})
        self.facts.setdefault("coredns", ", ".join(images) or "not found by label k8s-app=kube-dns")
        nodelocal = find_nodelocal(c)
        self.facts.setdefault("nodelocal", nodelocal.describe() if nodelocal else "absent")

    def header_lines(self) -> list[str]:
        s = self.settings
        where = f"kind cluster {self.kind.name}" if self.kind else f"context {self.cluster.context}"
        lines = [
            f"k8sdns: {where}, server {self.cluster.server} ({self.server_version}), {len(self.nodes)} nodes, "
            f"namespace {self.namespace}",
            f"k8sdns: images glibc={s.glibc_image} musl={s.musl_image}",
            "k8sdns: thresholds " + ", ".join(f"{k}={v}" for k, v in s.thresholds().items()),
        ]
        lines.append(f"k8sdns: cluster DNS {self.facts.get('coredns')}; NodeLocal DNSCache {self.facts.get('nodelocal')}")
        return lines

    def metadata(self) -> dict[str, str]:
        """The header facts as pytest-html's environment table shows them."""
        s = self.settings
        return {
            "k8sdns cluster": f"kind {self.kind.name}" if self.kind else f"context {self.cluster.context}",
            "k8sdns server": f"{self.cluster.server} ({self.server_version})",
            "k8sdns nodes": ", ".join(f"{n.name} ({n.kubelet}, {n.container_runtime}, kernel {n.kernel})" for n in self.nodes),
            "k8sdns cluster DNS": str(self.facts.get("coredns")),
            "k8sdns NodeLocal": str(self.facts.get("nodelocal")),
            "k8sdns images": f"glibc {s.glibc_image}, musl {s.musl_image}",
            "k8sdns thresholds": ", ".join(f"{k}={v}" for k, v in s.thresholds().items()),
        }

    def facts_document(self) -> dict[str, Any]:
        """Cluster facts for the results file (no credentials: server URL, versions, nodes)."""
        return {
            "context": self.cluster.context if self._cluster else None,
            "kind_cluster": self.kind.name if self.kind else None,
            "server": self.cluster.server if self._cluster else None,
            "server_version": self.server_version,
            "namespace": self.namespace,
            "nodes": [dataclasses.asdict(n) for n in self.nodes],
            **self.facts,
        }

    def stop(self) -> None:
        """Delete the namespace, and the kind cluster unless kept. Safe to call more than once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if self._namespace_created and self._cluster is not None and not (self.kind and not self.settings.keep_cluster):
                pods.delete_namespace(self.cluster, self.namespace)
        finally:
            if self.kind is not None and not self.settings.keep_cluster:
                self.kind.delete()
            if self._cluster is not None:
                self._cluster.close()
