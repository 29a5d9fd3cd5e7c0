"""Faults to inject into kind clusters the plugin created, so each check can be shown to fail.

Users validate their own gate with them ("does my upgrade gate catch a loop?"). Every fault is a
context manager: entering applies it, leaving undoes it exactly. They refuse clusters the plugin
did not create, because they write to kube-system and into the nodes.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

from pytest_k8sdns.cluster import Cluster
from pytest_k8sdns.errors import ClusterError, WaitTimeout
from pytest_k8sdns.kind import KindCluster, run_tool, wait_deployment

#: The loopback stub resolver address systemd-resolved uses, and the loop fault imitates.
STUB_IP = "127.0.0.53"
_LOSS_COMMENT = "k8sdns-fault-packet-loss"


class Faults:
    """Fault injection on one plugin-created kind cluster."""

    def __init__(self, cluster: Cluster, kind: KindCluster | None) -> None:
        if not cluster.created or kind is None:
            raise ClusterError(
                f"refusing to inject faults into {cluster.context} ({cluster.server}): the plugin did not "
                f"create it; faults only run on kind clusters made by --k8sdns-kind"
            )
        self.cluster = cluster
        self.kind = kind

    # -- helpers -----------------------------------------------------------------------------
    def _node_exec(self, node: str, *argv: str, stdin: str | None = None) -> str:
        return run_tool(["docker", "exec", "-i", node, *argv], input=stdin, option="--k8sdns-kind")

    def _corefile(self) -> str:
        c = self.cluster
        cm = c.call("get", "configmaps", "kube-system", c.core.read_namespaced_config_map, "coredns", "kube-system")
        return str(cm.data["Corefile"])

    def _set_corefile(self, text: str, *, wait: bool = True) -> None:
        c = self.cluster
        c.call("patch", "configmaps", "kube-system", c.core.patch_namespaced_config_map, "coredns", "kube-system",
               {"data": {"Corefile": text}})
        self.restart_coredns(wait=wait)

    def restart_coredns(self, *, wait: bool = True) -> None:
        c = self.cluster
        stamp = f"{time.time():.3f}"
        c.call("patch", "deployments", "kube-system", c.apps.patch_namespaced_deployment, "coredns", "kube-system",
               {"spec": {"template": {"metadata": {"annotations": {"k8sdns.io/restarted-at": stamp}}}}})
        if wait:
            wait_deployment(c, "kube-system", "coredns", 180)

    def _cluster_dns_ip(self) -> str:
        c = self.cluster
        svc = c.call("get", "services", "kube-system", c.core.read_namespaced_service, "kube-dns", "kube-system")
        return str(svc.spec.cluster_ip)

    def _resolv_confs(self) -> dict[str, str]:
        return {n: self._node_exec(n, "cat", "/etc/resolv.conf") for n in self.kind.node_containers()}

    # -- the faults --------------------------------------------------------------------------
    @contextlib.contextmanager
    def loop(self) -> Iterator[None]:
        """Nodes resolve through a loopback stub (127.0.0.53) that forwards to the cluster DNS, and
        CoreDNS keeps the default `forward . /etc/resolv.conf`: its pods inherit 127.0.0.53, query
        themselves, and the loop plugin exits with `[FATAL] plugin/loop: Loop ... detected`."""
        saved_corefile = self._corefile()
        saved_resolv = self._resolv_confs()
        dns_ip = self._cluster_dns_ip()
        for node in saved_resolv:
            self._node_exec(node, "sh", "-c", "cat > /etc/resolv.conf", stdin=f"nameserver {STUB_IP}\n")
            self._node_exec(node, "sh", "-c",
                            f"nohup socat UDP4-RECVFROM:53,bind={STUB_IP},fork UDP4-SENDTO:{dns_ip}:53 "
                            ">/dev/null 2>&1 & echo $! > /run/k8sdns-stub.pid")
        self._set_corefile(re.sub(r"forward \. \S+", "forward . /etc/resolv.conf", saved_corefile, count=1), wait=False)
        try:
            yield
        finally:
            for node, text in saved_resolv.items():
                self._node_exec(node, "sh", "-c", "cat > /etc/resolv.conf", stdin=text)
                self._node_exec(node, "sh", "-c", "kill $(cat /run/k8sdns-stub.pid) 2>/dev/null; rm -f /run/k8sdns-stub.pid")
            self._set_corefile(saved_corefile)

    def wait_for_loop(self, timeout_s: float = 180) -> str:
        """Wait until a CoreDNS pod has logged the loop plugin's FATAL line; return that line."""
        c = self.cluster
        deadline = time.monotonic() + timeout_s
        seen = "no pods"
        while time.monotonic() < deadline:
            pods = c.call("list", "pods", "kube-system", c.core.list_namespaced_pod, "kube-system",
                          label_selector="k8s-app=kube-dns").items
            seen = ", ".join(f"{p.metadata.name} restarts {sum(cs.restart_count for cs in p.status.container_statuses or [])}"
                             for p in pods) or "no pods"
            for p in pods:
                for previous in (False, True):
                    try:
                        text = c.core.read_namespaced_pod_log(p.metadata.name, "kube-system", previous=previous,
                                                              _request_timeout=10)
                    except Exception:  # noqa: BLE001 - the container may be between restarts
                        continue
                    line = next((ln for ln in text.splitlines() if "plugin/loop: Loop (" in ln), None)
                    if line:
                        return line
            time.sleep(2)
        raise WaitTimeout(f"no CoreDNS pod logged a loop within {timeout_s:.0f} s; last seen: {seen}")

    @contextlib.contextmanager
    def loopback_upstream_without_loop(self) -> Iterator[None]:
        """`forward . 127.0.0.1` with the loop plugin removed: nothing crashes, queries circle."""
        saved = self._corefile()
        text = re.sub(r"forward \. \S+", "forward . 127.0.0.1", saved, count=1)
        text = re.sub(r"^\s*loop\s*$\n", "", text, flags=re.MULTILINE)
        self._set_corefile(text)
        try:
            yield
        finally:
            self._set_corefile(saved)

    @contextlib.contextmanager
    def packet_loss(self, share: float = 0.3) -> Iterator[None]:
        """Drop `share` of UDP/53 packets to the CoreDNS pods, in every node (iptables statistic)."""
        c = self.cluster
        pods = c.call("list", "pods", "kube-system", c.core.list_namespaced_pod, "kube-system",
                      label_selector="k8s-app=kube-dns").items
        ips = [p.status.pod_ip for p in pods if p.status.pod_ip]
        rules = [["FORWARD", "-d", ip, "-p", "udp", "--dport", "53", "-m", "statistic", "--mode", "random",
                  "--probability", f"{share}", "-m", "comment", "--comment", _LOSS_COMMENT, "-j", "DROP"] for ip in ips]
        nodes = self.kind.node_containers()
        for node in nodes:
            for rule in rules:
                self._node_exec(node, "iptables", "-I", *rule)
        try:
            yield
        finally:
            for node in nodes:
                for rule in rules:
                    self._node_exec(node, "iptables", "-D", *rule)

    @contextlib.contextmanager
    def musl_search_limit(self, length: int = 300) -> Iterator[None]:
        """Give the nodes search domains that make pods' search line longer than 256 bytes: musl
        ignores such a line, glibc does not. Affects pods created while it holds."""
        saved = self._resolv_confs()
        labels = []
        while sum(len(x) + 1 for x in labels) < length:
            labels.append(f"k8sdns-long-search-domain-{len(labels):02d}.example.test")
        for node, text in saved.items():
            kept = "".join(line for line in text.splitlines(True) if not line.startswith(("search", "domain")))
            self._node_exec(node, "sh", "-c", "cat > /etc/resolv.conf", stdin=kept + "search " + " ".join(labels) + "\n")
        try:
            yield
        finally:
            for node, text in saved.items():
                self._node_exec(node, "sh", "-c", "cat > /etc/resolv.conf", stdin=text)

    # -- NodeLocal DNSCache (pytest_k8sdns.nodelocal.deploy_nodelocal must have run) -------------
    def _restart_nodelocal(self) -> None:
        from pytest_k8sdns.nodelocal import NODELOCAL_NAME, NODELOCAL_NAMESPACE, wait_daemonset_ready

        c = self.cluster
        c.call("patch", "daemonsets", NODELOCAL_NAMESPACE, c.apps.patch_namespaced_daemon_set, NODELOCAL_NAME,
               NODELOCAL_NAMESPACE,
               {"spec": {"template": {"metadata": {"annotations": {"k8sdns.io/restarted-at": f"{time.time():.3f}"}}}}})
        time.sleep(2)  # let the controller see the new generation before waiting on it
        wait_daemonset_ready(c, NODELOCAL_NAMESPACE, NODELOCAL_NAME, 180)

    @contextlib.contextmanager
    def nodelocal_without_force_tcp(self) -> Iterator[None]:
        """The NodeLocal cache forwards cluster names to CoreDNS over UDP (force_tcp removed)."""
        from pytest_k8sdns.nodelocal import NODELOCAL_NAME, NODELOCAL_NAMESPACE

        c = self.cluster
        cm = c.call("get", "configmaps", NODELOCAL_NAMESPACE, c.core.read_namespaced_config_map, NODELOCAL_NAME,
                    NODELOCAL_NAMESPACE)
        saved = str(cm.data["Corefile"])
        patched = re.sub(r"forward (\S+) (\S+) \{\s*force_tcp\s*\}", r"forward \1 \2", saved)
        c.call("patch", "configmaps", NODELOCAL_NAMESPACE, c.core.patch_namespaced_config_map, NODELOCAL_NAME,
               NODELOCAL_NAMESPACE, {"data": {"Corefile": patched}})
        self._restart_nodelocal()
        try:
            yield
        finally:
            c.call("patch", "configmaps", NODELOCAL_NAMESPACE, c.core.patch_namespaced_config_map, NODELOCAL_NAME,
                   NODELOCAL_NAMESPACE, {"data": {"Corefile": saved}})
            self._restart_nodelocal()

    @contextlib.contextmanager
    def nodelocal_silent_on(self, node: str, local_ip: str = "169.254.20.10") -> Iterator[None]:
        """One node's cache stops answering on its link-local address (its port 53 there is dropped)."""
        rules = [["INPUT", "-d", f"{local_ip}/32", "-p", proto, "--dport", "53", "-m", "comment", "--comment",
                  "k8sdns-fault-nodelocal-silent", "-j", "DROP"] for proto in ("udp", "tcp")]
        for rule in rules:
            self._node_exec(node, "iptables", "-I", *rule)
        try:
            yield
        finally:
            for rule in rules:
                self._node_exec(node, "iptables", "-D", *rule)
