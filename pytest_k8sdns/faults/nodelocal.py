"""Faults of NodeLocal DNSCache (pytest_k8sdns.dns.nodelocal_deploy.deploy_nodelocal must have run): its
Corefile, one node's cache silent, the DaemonSet missing from a node, a rollout that leaves a node
with no cache."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterator

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.dns.nodelocal import (
    NODELOCAL_LABEL,
    NODELOCAL_NAME,
    NODELOCAL_NAMESPACE,
    cluster_domain_of,
)
from pytest_k8sdns.errors import ClusterError
from pytest_k8sdns.faults.base import COREFILE, FaultBase, editing, every
from pytest_k8sdns.kube.patch import Target, edited, patched
from pytest_k8sdns.kube.pods import is_ready
from pytest_k8sdns.kube.wait import Watched, until

_SILENT_COMMENT = "k8sdns-fault-nodelocal-silent"
#: the interface the cache holds its addresses on (its -interfacename)
_INTERFACE = "nodelocaldns"


class NodeLocalFaults(FaultBase):
    """Faults of the node cache; each undoes what it changed and waits until the cache is back."""

    @property
    def _nodelocal(self) -> Target:
        return Target.daemonset(self.cluster, NODELOCAL_NAMESPACE, NODELOCAL_NAME)

    @property
    def _nodelocal_config(self) -> Target:
        return Target.configmap(self.cluster, NODELOCAL_NAMESPACE, NODELOCAL_NAME)

    def _nodelocal_rolled_out(self, timeout_s: float = 180) -> None:
        """Wait until the DaemonSet's controller has seen its latest generation and every pod it
        schedules runs that generation and is Ready, with no pod left where it no longer belongs
        (a node it now excludes) and none terminating."""
        c = self.cluster

        def look() -> tuple[bool, str]:
            ds = self._nodelocal.read()
            st, generation = ds.get("status") or {}, ds["metadata"]["generation"]
            desired = st.get("desiredNumberScheduled") or 0
            pods = c.call("list", "pods", NODELOCAL_NAMESPACE, c.core.list_namespaced_pod, NODELOCAL_NAMESPACE,
                          label_selector=NODELOCAL_LABEL).items
            ready = [p for p in pods if p.metadata.deletion_timestamp is None and is_ready(p)]
            done = (st.get("observedGeneration") == generation and not st.get("numberMisscheduled")
                    and (st.get("updatedNumberScheduled") or 0) == desired == (st.get("numberReady") or 0)
                    and len(pods) == len(ready) == desired)
            states = ", ".join(f"{p.metadata.name} on {p.spec.node_name} "
                               f"{'terminating' if p.metadata.deletion_timestamp else 'Ready' if is_ready(p) else 'not Ready'}"
                               for p in pods) or "no pods"
            return done, (f"generation {st.get('observedGeneration')}/{generation}, desired {desired}, updated "
                          f"{st.get('updatedNumberScheduled') or 0}, ready {st.get('numberReady') or 0}; {states}")

        until(f"daemonset {NODELOCAL_NAMESPACE}/{NODELOCAL_NAME} not rolled out", look, lambda last: last[0],
              timeout_s=timeout_s, seen=lambda last: last[1], every_s=2,
              watched=Watched(c, "pods", NODELOCAL_NAMESPACE, c.core.list_namespaced_pod, label_selector=NODELOCAL_LABEL))

    def _restart_nodelocal(self) -> None:
        self._nodelocal.restart()
        self._nodelocal_rolled_out()

    def _nodelocal_corefile(self, fault: str, edit: Callable[[str, str], str]) -> contextlib.AbstractContextManager[None]:
        """The cache's Corefile edited while the block runs, by edit(text, cluster zone); the cache
        rolled after each change."""
        zone = cluster_domain_of(self.cluster)
        return edited(self._nodelocal_config, COREFILE,
                      editing(fault, self._nodelocal_config, lambda text: edit(text, zone)),
                      settle=self._restart_nodelocal)

    @contextlib.contextmanager
    def nodelocal_without_force_tcp(self) -> Iterator[None]:
        """The NodeLocal cache forwards cluster names to CoreDNS over UDP (force_tcp removed)."""
        def edit(text: str, zone: str) -> str:
            return corefile.remove_option(text, "forward", "force_tcp", block=zone)

        with self._nodelocal_corefile("nodelocal_without_force_tcp", edit):
            yield

    @contextlib.contextmanager
    def nodelocal_long_denial_ttl(self, seconds: int = 120) -> Iterator[None]:
        """The cache keeps NXDOMAIN for the cluster zone `seconds` long: a Service asked for before
        it existed stays invisible through that cache long after it is created."""
        def edit(text: str, zone: str) -> str:
            return corefile.set_cache_denial_ttl(text, seconds, block=zone)

        with self._nodelocal_corefile("nodelocal_long_denial_ttl", edit):
            yield

    @contextlib.contextmanager
    def nodelocal_silent_on(self, node: str, local_ip: str = "169.254.20.10") -> Iterator[None]:
        """One node's cache stops answering on its link-local address: DNS, /health and metrics
        there are dropped, as when its pod hangs. Its liveness probe fails too, so kubelet restarts
        it; undoing waits until it is Ready again."""
        rules = [["INPUT", "-d", f"{local_ip}/32", "-p", proto, "-m", "comment", "--comment", _SILENT_COMMENT,
                  "-j", "DROP"] for proto in ("udp", "tcp")]
        try:
            with self._node_rules(rules, [node]):
                yield
        finally:
            # the pod may still show Ready from before its probes failed, or its liveness probe may
            # just have killed it: wait until the cache itself answers again, then for the rollout
            self._answering_again(node, local_ip)
            self._nodelocal_rolled_out(300)

    def _answering_again(self, node: str, local_ip: str, timeout_s: float = 300) -> None:
        """Wait until the cache on `node` answers /health at local_ip, seen from the node itself, on
        three looks in a row a second apart (a container being restarted answers none)."""
        streak: list[int] = []

        def look() -> int:
            code = self._node_try(node, "curl", "-sf", "-o", "/dev/null", "--max-time", "2",
                                  f"http://{local_ip}:8080/health")
            streak.append(code)
            return code

        until(f"NodeLocal on {node} not answering http://{local_ip}:8080/health", look,
              lambda _: streak[-3:] == [0, 0, 0], timeout_s=timeout_s, every_s=1,
              seen=lambda code: f"curl exit {code}")

    @contextlib.contextmanager
    def nodelocal_absent_from(self, node: str, timeout_s: float = 180) -> Iterator[None]:
        """The NodeLocal DaemonSet no longer schedules on `node` (a node affinity that excludes it,
        as a wrong nodeSelector or an untolerated taint would)."""
        exclude = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node]}]}]}}}
        # rolled out under the affinity: the pod on `node` is gone and the others run the new
        # template; after the undo: a Ready pod on every node again
        with patched(self._nodelocal, {"/spec/template/spec/affinity": exclude},
                     settle=lambda: self._nodelocal_rolled_out(timeout_s)):
            yield

    @contextlib.contextmanager
    def nodelocal_gone_during_rollout(self, node: str, delay_s: int = 15, image: str | None = None,
                                      poll_s: float = 0.3) -> Iterator[None]:
        """A NodeLocal rollout leaves `node` with no cache for about `delay_s`: its old cache exits
        without removing its interface and rules (as when it is OOM-killed, or runs with
        -skipteardown), and the new one starts `delay_s` late (an init container that waits on that
        node only, as a slow image pull does). In between, the node's pods send their queries to an
        address that is bound but where nothing listens (kubernetes/dns#648); every other node rolls
        as usual.

        The old cache's state is the node's at the start: its interface (kind and addresses) and
        the rules carrying its comment. A periodic actor puts them back whenever they are gone. The
        init container runs `image` (any image with sh; by default the first probe image the run
        loaded). Undone by removing the init container and waiting for the rollout."""
        image = image or next(iter(self.kind.loaded_images), None)
        if image is None:
            raise ClusterError("nodelocal_gone_during_rollout needs an image with sh for its init container: pass "
                               "image=, e.g. the glibc probe image")
        restore = self._cache_state_script(node)
        wait = {"name": "k8sdns-fault-late-start", "image": image, "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "command": ["sh", "-c", f'[ "$NODE_NAME" != {shlex.quote(node)} ] || sleep {int(delay_s)}']}
        errors: list[str] = []
        acted: list[int] = []

        def put_back_once() -> None:
            if self._node_try(node, "ip", "link", "show", _INTERFACE) != 0:
                self._node_exec(node, "sh", "-c", restore)
                acted.append(1)

        with patched(self._nodelocal, {"/spec/template/spec/initContainers": [wait]},
                     settle=lambda: self._nodelocal_rolled_out(180 + delay_s)):
            with every(poll_s, put_back_once, "nodelocal-gone-during-rollout", errors):
                yield
        if errors and not acted:
            raise ClusterError(f"fault nodelocal_gone_during_rollout never put the old cache's state back on {node}: "
                               f"{errors[-1]}")

    def _cache_state_script(self, node: str) -> str:
        """A shell script that puts back the cache's interface and rules on `node` as they are now,
        each rule only where it is missing."""
        link = self._node_exec(node, "ip", "-d", "-o", "link", "show", _INTERFACE)
        kinds = [k for k in ("dummy", "ifb") if f" {k} " in f" {link} "]
        addresses = [w[1] for line in self._node_exec(node, "ip", "-o", "-4", "addr", "show", "dev", _INTERFACE)
                     .splitlines() if (w := line.split()[2:4]) and w[0] == "inet"]
        if not kinds or not addresses:
            raise ClusterError(f"no NodeLocal interface {_INTERFACE} with addresses on {node}: is the cache running "
                               f"there? (ip link: {link.strip()[:120]})")
        lines = [f"ip link add {_INTERFACE} type {kinds[0]}", f"ip link set {_INTERFACE} up",
                 *(f"ip addr add {a} dev {_INTERFACE}" for a in addresses)]
        table = ""
        for line in self._node_exec(node, "iptables-save").splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and "k8sdns node-cache" in line:
                rule = shlex.split(line)[1:]
                check = shlex.join(["iptables", "-t", table, "-C", *rule])
                lines.append(f"{check} 2>/dev/null || {shlex.join(['iptables', '-t', table, '-A', *rule])}")
        return "\n".join(lines) + "\n"
