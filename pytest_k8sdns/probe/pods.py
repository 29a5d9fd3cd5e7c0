"""Probe pods: start them from fixtures/probe-pod.yaml, install the payload, run probe commands."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.errors import K8sDnsError, NotFound, PodError
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube import pods
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.probe import build, results, schema

LIBCS = ("glibc", "musl")


@dataclasses.dataclass(frozen=True)
class ProbeSpec:
    """What a probe pod must be: its libc image, node, and DNS settings."""

    key: str
    libc: str
    image: str
    node: str | None = None
    dns_policy: str = "ClusterFirst"
    dns_config: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    hostname: str | None = None
    subdomain: str | None = None
    host_network: bool = False  # in the node's network namespace (dnsPolicy ClusterFirstWithHostNet, say)

    @property
    def pod_name(self) -> str:
        return "probe-" + self.key.replace("_", "-").replace(".", "-").lower()[:50]


@functools.cache
def _template() -> dict[str, Any]:
    with open(fixture_path("probe-pod.yaml"), encoding="utf-8") as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


def manifest(spec: ProbeSpec, run_id: str) -> dict[str, Any]:
    doc = copy.deepcopy(_template())
    doc["metadata"]["name"] = spec.pod_name
    doc["metadata"]["labels"].update({"k8sdns.io/run": run_id, "k8sdns.io/libc": spec.libc, **spec.labels})
    pod = doc["spec"]
    pod["containers"][0]["image"] = spec.image
    pod["dnsPolicy"] = spec.dns_policy
    if spec.dns_config is not None:
        pod["dnsConfig"] = dict(spec.dns_config)
    if spec.hostname:
        pod["hostname"] = spec.hostname
    if spec.subdomain:
        pod["subdomain"] = spec.subdomain
    if spec.host_network:
        pod["hostNetwork"] = True
        pod["securityContext"].pop("sysctls", None)  # a namespaced sysctl is refused in the node's network
    if spec.node:
        pod["nodeName"] = spec.node
        pod["tolerations"] = [{"operator": "Exists"}]  # per-node checks include control planes
    return doc


class ProbePod:
    """One running probe pod with the payload installed; each call returns validated output."""

    def __init__(self, cluster: Cluster, namespace: str, spec: ProbeSpec) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.spec = spec
        self.name = spec.pod_name
        self.libc = spec.libc
        self.image = spec.image
        self.node = spec.node or ""

    @property
    def where(self) -> str:
        return f"pod {self.namespace}/{self.name} (image {self.image})"

    def install(self) -> None:
        result = pods.exec_in_pod(self.cluster, self.namespace, self.name, build.install_command(),
                                  stdin=build.install_input().decode() + "\n", timeout_s=120)
        if result.exit_code != 0 or result.stdout.strip() != build.payload_sha256():
            if result.exit_code == 0:
                result = dataclasses.replace(result, exit_code=1, stderr=f"payload digest mismatch: {result.stdout.strip()[:20]}")
            pods.raise_probe_failure(self.namespace, self.name, self.image, result)
        pod = self.cluster.call("get", "pods", self.namespace, self.cluster.core.read_namespaced_pod, self.name, self.namespace)
        self.node = pod.spec.node_name or self.node
        self.pod_ip = pod.status.pod_ip or ""

    def run(self, command: str, args: Mapping[str, Any] | None = None, timeout_s: float = 300) -> str:
        result = pods.exec_in_pod(self.cluster, self.namespace, self.name, build.probe_command(command, args),
                                  timeout_s=timeout_s)
        if result.exit_code != 0 and not result.stdout.strip().startswith("{"):
            pods.raise_probe_failure(self.namespace, self.name, self.image, result)
        return result.stdout

    def info(self) -> results.ProbeInfo:
        return schema.parse_info(self.run("info"), where=self.where)

    def lookup(self, names: Sequence[str], **args: Any) -> results.LookupResult:
        return schema.parse_lookup(self.run("lookup", {"names": list(names), **args}), where=self.where)

    def burst(self, names: Sequence[str], **args: Any) -> results.LookupResult:
        return schema.parse_burst(self.run("burst", {"names": list(names), **args}), where=self.where)

    def query(self, server: str, name: str, **args: Any) -> results.QueryResult:
        return schema.parse_query(self.run("query", {"server": server, "name": name, **args}), where=self.where)

    def load(self, server: str, names: Sequence[str], rates: Sequence[float], exec_timeout_s: float = 300,
             **args: Any) -> results.LoadResult:
        """A capacity ramp (payload/load.py); `exec_timeout_s` bounds the exec, args (the query
        timeout_s among them) go to the probe."""
        doc = self.run("load", {"server": server, "names": list(names), "rates": list(rates), **args},
                       timeout_s=exec_timeout_s)
        return schema.parse_load(doc, where=self.where)

    def capture(self, upstream: Sequence[str], names: Sequence[str], **args: Any) -> results.CaptureResult:
        doc = self.run("capture", {"upstream": list(upstream), "names": list(names), **args})
        return schema.parse_capture(doc, where=self.where)

    def http_get(self, url: str, timeout_s: float = 10) -> tuple[int, str]:
        """GET a URL from inside the pod (metrics, health); returns (status, body)."""
        doc = schema.load_document("http", self.run("http", {"url": url, "timeout": timeout_s}), where=self.where)
        return int(doc["status"]), str(doc.get("body", ""))

    def http_status(self, url: str, timeout_s: float = 10) -> tuple[int | str, str]:
        """Like http_get, for checks where no answer at all is the measurement: a request that gets
        none gives ("unreachable: why", "") instead of raising."""
        try:
            return self.http_get(url, timeout_s)
        except NotFound:
            raise  # the probe pod itself is gone: an error of the run, not an answer of the server
        except K8sDnsError as exc:
            return f"unreachable: {str(exc).rsplit('failed: ', 1)[-1][:160]}", ""


def start(cluster: Cluster, namespace: str, run_id: str, specs: Sequence[ProbeSpec], *,
          timeout_s: float, image_options: Mapping[str, str], install: bool = True) -> dict[str, ProbePod]:
    """Create the pods together, wait for all, install the payload in parallel (unless not asked)."""
    for spec in specs:
        cluster.call("create", "pods", namespace, cluster.core.create_namespaced_pod, namespace, manifest(spec, run_id))
    pods.wait_ready(cluster, namespace, [s.pod_name for s in specs], timeout_s, dict(image_options))
    probes = {s.key: ProbePod(cluster, namespace, s) for s in specs}
    if not install:
        return probes
    with ThreadPoolExecutor(max_workers=min(8, len(probes) or 1)) as pool:
        list(pool.map(ProbePod.install, probes.values()))
    return probes


def stop(cluster: Cluster, namespace: str, probes: Mapping[str, ProbePod]) -> None:
    """Delete the pods, best effort: the run removes whatever is left at its end anyway."""
    for p in probes.values():
        with contextlib.suppress(K8sDnsError, ApiException):
            cluster.call("delete", "pods", namespace, cluster.core.delete_namespaced_pod, p.name, namespace,
                         grace_period_seconds=0, _request_timeout=10)


__all__ = ["LIBCS", "ProbeSpec", "ProbePod", "start", "stop", "manifest", "PodError"]
