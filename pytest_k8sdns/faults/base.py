"""What every fault family shares: the refusal of clusters the plugin did not make, commands in
the kind nodes, their iptables rules and resolv.conf, CoreDNS's objects, and the periodic actor."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pytest_k8sdns.errors import ClusterError, ConfigError
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.kube.kind import KindCluster, run_tool
from pytest_k8sdns.kube.patch import Target
from pytest_k8sdns.kube.rollout import wait_deployment
from pytest_k8sdns.kube.wait import until

COREDNS_NAMESPACE = "kube-system"
COREDNS_NAME = "coredns"
COREDNS_SELECTOR = "k8s-app=kube-dns"
#: JSON Pointer of the Corefile in CoreDNS's (and NodeLocal's) ConfigMap
COREFILE = "/data/Corefile"
#: A fault that keeps acting stops with its block; this bounds a block that never ends (a day)
ACTOR_LIMIT_S = 24 * 3600.0


@contextlib.contextmanager
def every(period_s: float, action: Callable[[], None], name: str, errors: list[str] | None = None) -> Iterator[None]:
    """Run `action` every `period_s` in a thread while the block runs (a fault that keeps acting,
    not a wait: nothing waits for it to succeed); its exceptions go to `errors` and do not stop it."""
    stop = threading.Event()

    def act_once() -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - keep acting; the caller judges `errors`
            if errors is not None:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    def act() -> None:
        # the one wait primitive paces it; nothing is awaited, so it ends only when `stop` is set
        until(f"fault {name}", act_once, lambda _: False, timeout_s=ACTOR_LIMIT_S, every_s=period_s, stop=stop)

    worker = threading.Thread(target=act, name=f"k8sdns-fault-{name}", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=60)


def editing(fault: str, where: Target, edit: Callable[[str], str]) -> Callable[[str | None], str]:
    """`edit` as a Corefile edit for kube.patch.edited: a Corefile without what it edits fails the
    fault in one line that names the ConfigMap."""

    def apply(text: str | None) -> str:
        try:
            return edit(text or "")
        except ConfigError as exc:
            raise ClusterError(f"cannot apply fault {fault} to the Corefile of {where}: {exc}") from None

    return apply


class FaultBase:
    """One plugin-created kind cluster, and the handles every fault family uses."""

    def __init__(self, cluster: Cluster, kind: KindCluster | None) -> None:
        if not cluster.created or kind is None:
            raise ClusterError(
                f"refusing to inject faults into {cluster.context} ({cluster.server}): the plugin did not "
                f"create it; faults only run on kind clusters made by --k8sdns-kind"
            )
        self.cluster = cluster
        self.kind = kind
        self.coredns = Target.deployment(cluster, COREDNS_NAMESPACE, COREDNS_NAME)
        self.coredns_config = Target.configmap(cluster, COREDNS_NAMESPACE, COREDNS_NAME)

    # -- CoreDNS ------------------------------------------------------------------------------
    def restart_coredns(self, *, wait: bool = True) -> None:
        """Roll CoreDNS's pods (new pods read the Corefile and the node's resolv.conf afresh)."""
        self.coredns.restart()
        if wait:
            self.coredns_rolled_out()

    def coredns_rolled_out(self, timeout_s: float = 300) -> None:
        wait_deployment(self.cluster, COREDNS_NAMESPACE, COREDNS_NAME, timeout_s)

    def _coredns_pods(self) -> list[Any]:
        c = self.cluster
        return list(c.call("list", "pods", COREDNS_NAMESPACE, c.core.list_namespaced_pod, COREDNS_NAMESPACE,
                           label_selector=COREDNS_SELECTOR).items)

    def _coredns_pod_ips(self) -> list[str]:
        """The IPs of the CoreDNS pods that serve: a rollout finished, none terminating."""
        return [p.status.pod_ip for p in self._serving_coredns_pods()]

    def _serving_coredns_pods(self) -> list[Any]:
        self.coredns_rolled_out()
        return [p for p in self._coredns_pods() if p.status.pod_ip and p.metadata.deletion_timestamp is None]

    def _pod_cidr(self, node: str) -> str:
        c = self.cluster
        cidr = c.call("get", "nodes", None, c.core.read_node, node).spec.pod_cidr
        if not cidr:
            raise ClusterError(f"node {node} has no spec.podCIDR, so its pods' traffic cannot be told apart")
        return str(cidr)

    def _cluster_dns_ip(self) -> str:
        c = self.cluster
        svc = c.call("get", "services", COREDNS_NAMESPACE, c.core.read_namespaced_service, "kube-dns",
                     COREDNS_NAMESPACE)
        return str(svc.spec.cluster_ip)

    # -- the nodes ----------------------------------------------------------------------------
    def _node_exec(self, node: str, *argv: str, stdin: str | None = None) -> str:
        return run_tool(["docker", "exec", "-i", node, *argv], input=stdin, option="--k8sdns-kind")

    def _node_try(self, node: str, *argv: str) -> int:
        """Run a command in a node whose failure is an answer (pkill that matched nothing)."""
        return subprocess.run(["docker", "exec", node, *argv], capture_output=True, check=False).returncode

    def _resolv_confs(self) -> dict[str, str]:
        return {n: self._node_exec(n, "cat", "/etc/resolv.conf") for n in self.kind.node_containers()}

    def _write_resolv_conf(self, node: str, text: str) -> None:
        self._node_exec(node, "sh", "-c", "cat > /etc/resolv.conf", stdin=text)

    @contextlib.contextmanager
    def _resolv_conf_held(self, make: Callable[[str], str]) -> Iterator[dict[str, str]]:
        """Every node's resolv.conf replaced by make(its text) while the block runs, put back after;
        yields what they held."""
        saved = self._resolv_confs()
        try:
            for node, text in saved.items():
                self._write_resolv_conf(node, make(text))
            yield saved
        finally:
            for node, text in saved.items():
                self._write_resolv_conf(node, text)

    @contextlib.contextmanager
    def _node_rules(self, rules: Sequence[Sequence[str]], nodes: Sequence[str] | None = None,
                    tool: str = "iptables") -> Iterator[None]:
        """iptables (or ip6tables) rules inserted in the nodes while the block runs, deleted after."""
        nodes = self.kind.node_containers() if nodes is None else nodes
        done: list[tuple[str, Sequence[str]]] = []
        try:
            for node in nodes:
                for rule in rules:
                    self._node_exec(node, tool, "-I", *rule)
                    done.append((node, rule))
            yield
        finally:
            for node, rule in reversed(done):
                self._node_exec(node, tool, "-D", *rule)
