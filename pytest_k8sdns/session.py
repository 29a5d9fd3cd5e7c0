"""One run of the suite: the cluster (given or created), its namespace, and their cleanup."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.config import Settings
from pytest_k8sdns.dns.nodelocal import find_nodelocal
from pytest_k8sdns.dns.nodelocal_deploy import deploy_nodelocal
from pytest_k8sdns.errors import ClusterError, K8sDnsError
from pytest_k8sdns.kube import images as kind_images
from pytest_k8sdns.kube import placement, pods, rbac
from pytest_k8sdns.kube.client import Cluster, NodeFacts, status_message
from pytest_k8sdns.kube.kind import KindCluster, point_coredns_at
from pytest_k8sdns.kube.rollout import wait_deployment, wait_nodes_ready
from pytest_k8sdns.probe import pods as probes


def new_run_id() -> str:
    """Short and unique per run and per xdist worker, so parallel runs never collide."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return secrets.token_hex(3) + (f"-{worker}" if worker else "")


class Run:
    """State shared by every fixture of one pytest session."""

    def __init__(self, settings: Settings, run_id: str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id or new_run_id()
        #: the run's own namespace, or an existing one it shares (--k8sdns-namespace) and only writes pods/Services in
        self.namespace = settings.namespace or f"k8sdns-{self.run_id}"
        self.owns_namespace = settings.namespace is None
        self.kind: KindCluster | None = None
        self._cluster: Cluster | None = None
        self._namespace_created = False
        self._stopped = False
        self._lock = threading.Lock()
        self.server_version = ""
        self.nodes: list[NodeFacts] = []
        #: the nodes probe pods run on (--k8sdns-nodes, --k8sdns-seed), and why
        self.placement = placement.Placement((), {}, {}, "all", 0)
        #: facts for the report header and results: filled by inspectors as they learn them
        self.facts: dict[str, Any] = {}
        #: what fixtures found out about lower-level causes (the node x replica matrix), read at the
        #: end for the root-cause summary: each gives [{kind, where, text, proto, owner}]
        self.findings: list[Callable[[], list[dict[str, str]]]] = []
        #: restart counts of the k8s-app=kube-dns pods when the run started (pod name -> restarts)
        self.dns_restarts_at_start: dict[str, int] = {}
        #: on a kind cluster the plugin creates: the images chosen and why (kube/images.py; set by the plugin)
        self.image_choices: list[kind_images.Choice] = []

    @property
    def cluster(self) -> Cluster:
        assert self._cluster is not None, "Run.start() has not connected to a cluster"
        return self._cluster

    @property
    def kind_name(self) -> str:
        """The name of the kind cluster --k8sdns-kind creates for this run."""
        return f"k8sdns-{self.run_id}"

    def start(self, kind: KindCluster | None = None) -> None:
        """Connect to (or create) the cluster and make the run's namespace; failures are one line."""
        try:
            self._start(kind)
        except ApiException as exc:
            server = self._cluster.server if self._cluster else "the cluster"
            raise ClusterError(f"the Kubernetes API at {server} answered {exc.status} ({exc.reason}) while the run "
                               f"was being set up: {status_message(exc) or 'no message'}") from None

    def _start(self, kind: KindCluster | None) -> None:
        s = self.settings
        if s.kind:
            self.kind = kind or KindCluster(self.kind_name, image=s.kind_image,
                                            config=Path(s.kind_config) if s.kind_config else None)
            self._cluster = self.kind.create()
            self._prepare_kind()
        else:
            self._cluster = Cluster.from_kubeconfig(s.kubeconfig, s.context)
        # first a request anyone may make: an unreachable API or refused credentials say so here
        self.server_version = self.cluster.server_version()
        if not s.kind:
            # every missing permission in one line, before anything is created
            rbac.check(self.cluster, self.namespace, creates_namespace=self.owns_namespace, disruptive=s.disruptive)
        self.nodes = self.cluster.nodes()
        self.placement = placement.choose(self.nodes, s.nodes, s.seed)
        self.facts["placement"] = self.placement.describe()
        if self.image_choices:
            self.facts["images"] = kind_images.facts(self.image_choices)
        self._header_facts()
        if self.owns_namespace:
            self._namespace_created = True  # before the request: an interrupt may come as it returns
            try:
                pods.create_namespace(self.cluster, self.namespace, self.run_id)
            except K8sDnsError:
                self._namespace_created = False
                raise
        else:
            probe = probes.manifest(probes.ProbeSpec(key="admission", libc="glibc", image=s.glibc_image), self.run_id)
            pods.check_namespace(self.cluster, self.namespace, self.run_id, probe)
            self._namespace_created = True

    def _prepare_kind(self) -> None:
        assert self.kind is not None
        cluster = self.cluster
        images = [self.settings.glibc_image, self.settings.musl_image]
        if self.settings.kind_nodelocal:
            # loaded when the host's Docker has it; otherwise the nodes pull it (or the wait says they cannot)
            images.append(self.settings.nodelocal_image)
        # loading the images is the longest step (benchmarks/kind_session.py): it runs while the nodes
        # and CoreDNS come up
        with ThreadPoolExecutor(max_workers=1) as pool:
            loading = pool.submit(self.kind.load_images, images)
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
            self.facts["loaded_images"] = loading.result()
        if self.settings.kind_nodelocal:
            deploy_nodelocal(cluster, self.settings.nodelocal_image, upstream=upstream_ip,
                             timeout_s=self.settings.pod_timeout)

    def _header_facts(self) -> None:
        """Cheap facts for the report header. The checks find the cluster DNS properly, through the
        pods' nameserver; here the conventional k8s-app=kube-dns label is a good enough hint."""
        c = self.cluster
        dns = c.call("list", "pods", "kube-system", c.core.list_namespaced_pod, "kube-system",
                     label_selector="k8s-app=kube-dns").items
        # the DNS pods' restart counts as the run starts, before any probe pod: test_no_restarts_during_run
        self.dns_restarts_at_start = {p.metadata.name: sum(cs.restart_count for cs in p.status.container_statuses or [])
                                      for p in dns}
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
            kind_images.header(self.image_choices) if self.image_choices else f"k8sdns: images glibc={s.glibc_image} musl={s.musl_image}",
            "k8sdns: thresholds " + ", ".join(f"{k}={v}" for k, v in s.thresholds().items()),
            self.placement.header() + f"; budget {s.max_qps:g} queries/s",
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
            "k8sdns images": (", ".join(c.describe() for c in self.image_choices)
                              or f"glibc {s.glibc_image}, musl {s.musl_image}"),
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
            # the plugin's own API traffic: requests by "verb resource" (probe execs are "create pods/exec")
            "api_requests": dict(sorted(self._cluster.requests.items())) if self._cluster else {},
            **self.facts,
        }

    def stop(self) -> None:
        """Delete the namespace (or the run's objects in a shared one), and the kind cluster unless
        kept. Safe to call more than once; a first Ctrl-C does not interrupt it."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        with _sigint_deferred():
            try:
                if self._namespace_created and self._cluster is not None and not (self.kind and not self.settings.keep_cluster):
                    try:
                        if self.owns_namespace:
                            pods.delete_namespace(self.cluster, self.namespace)
                        else:
                            pods.delete_run_objects(self.cluster, self.namespace, self.run_id)
                    except (K8sDnsError, ApiException) as exc:
                        print(f"k8sdns: could not remove this run's objects from namespace {self.namespace}: {exc}; "
                              f"they carry the label k8sdns.io/run={self.run_id}", file=sys.stderr)
            finally:
                if self.kind is not None and not self.settings.keep_cluster:
                    self.kind.delete()
                if self._cluster is not None:
                    self._cluster.close()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """While cleaning up, the first Ctrl-C only says so; a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = []

    def handler(signum: int, frame: Any) -> None:
        presses.append(signum)
        if len(presses) > 1:
            raise KeyboardInterrupt
        print("k8sdns: removing what the run created; press Ctrl-C again to leave it behind", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
