"""Faults to inject into kind clusters the plugin created, so each check can be shown to fail.

Users validate their own gate with them ("does my upgrade gate catch a loop?"). Every fault is a
context manager: entering applies it, leaving undoes it exactly. They refuse clusters the plugin
did not create, because they write to kube-system and into the nodes.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

from kubernetes.client import DiscoveryV1Api
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.kube.client import MANAGED_BY, Cluster
from pytest_k8sdns.errors import ClusterError, WaitTimeout
from pytest_k8sdns.kube.kind import KindCluster, run_tool, wait_deployment
from pytest_k8sdns.dns.nodelocal import (
    NODELOCAL_LABEL,
    NODELOCAL_NAME,
    NODELOCAL_NAMESPACE,
    wait_daemonset_ready,
)

#: The loopback stub resolver address systemd-resolved uses, and the loop fault imitates.
STUB_IP = "127.0.0.53"
_LOSS_COMMENT = "k8sdns-fault-packet-loss"
#: The manager label of EndpointSlices the not_ready_published fault writes.
FAULT_MANAGER = "k8sdns-faults"

#: Which conformance checks (test functions of the packaged suite) each fault must make fail.
#: tests/e2e/test_negative_controls.py proves every entry on a real kind cluster, and
#: tests/unit/test_fault_catalogue.py that every check of the suite has at least one fault.
TARGETS: dict[str, tuple[str, ...]] = {
    "loop": ("test_dns_pods_ready", "test_no_loop_in_logs", "test_node_resolv_conf_not_loopback",
             "test_ready_endpoint"),
    "coredns_killed_during_run": ("test_no_restarts_during_run",),
    "loopback_upstream_without_loop": ("test_corefile_analysis",),
    "packet_loss": ("test_lookup_latency", "test_retry_signature"),
    "coredns_cpu_starved": ("test_server_latency",),
    "musl_search_limit": ("test_resolv_conf_shape", "test_dns_config_applied", "test_partial_names"),
    "musl_image_runs_glibc": ("test_queries_per_lookup",),
    "cluster_domain_mismatch": ("test_cluster_name_raw", "test_cluster_name_libc", "test_partial_names",
                                "test_service_a", "test_service_srv", "test_service_ptr", "test_headless_a",
                                "test_dns_version", "test_pod_hostname_subdomain", "test_external_name_cname"),
    "tcp_refused": ("test_cluster_name_raw",),
    "no_reverse_zone": ("test_service_ptr",),
    "not_ready_published": ("test_headless_a",),
    "upstream_down": ("test_upstream_name",),
    "nodelocal_without_force_tcp": ("test_cluster_zone_forwards_over_tcp",),
    "nodelocal_silent_on": ("test_answers_on_every_node", "test_health_and_setup_errors", "test_caches"),
    "nodelocal_absent_from": ("test_daemonset_on_every_node",),
    "nodelocal_long_denial_ttl": ("test_new_service_visible_within_denial_ttl",),
}

#: Faults that are a run's input, not a change to the cluster: how to give them.
RUN_INPUT_FAULTS: dict[str, str] = {
    # an "Alpine" image whose programs resolve through glibc (as glibc-on-Alpine images do): the
    # queries its pods send follow glibc's search rules, not the musl ones the suite holds it to
    "musl_image_runs_glibc": "--k8sdns-musl-image=<a glibc image>",
}


@contextlib.contextmanager
def _every(period_s: float, action: Callable[[], None], name: str, errors: list[str] | None = None) -> Iterator[None]:
    """Run `action` every `period_s` in a thread while the block runs (a fault that keeps acting);
    its exceptions go to `errors` and do not stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - keep acting; the caller judges `errors`
                if errors is not None:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
            stop.wait(period_s)

    worker = threading.Thread(target=loop, name=f"k8sdns-fault-{name}", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=60)


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

    def _coredns_pod_ips(self) -> list[str]:
        c = self.cluster
        pods = c.call("list", "pods", "kube-system", c.core.list_namespaced_pod, "kube-system",
                      label_selector="k8s-app=kube-dns").items
        return [p.status.pod_ip for p in pods if p.status.pod_ip]

    @contextlib.contextmanager
    def _node_rules(self, rules: list[list[str]], nodes: list[str] | None = None) -> Iterator[None]:
        """iptables rules inserted in the nodes while the block runs, deleted after."""
        nodes = self.kind.node_containers() if nodes is None else nodes
        done: list[tuple[str, list[str]]] = []
        try:
            for node in nodes:
                for rule in rules:
                    self._node_exec(node, "iptables", "-I", *rule)
                    done.append((node, rule))
            yield
        finally:
            for node, rule in reversed(done):
                self._node_exec(node, "iptables", "-D", *rule)

    @contextlib.contextmanager
    def _corefile_edit(self, pattern: str, replacement: str, what: str) -> Iterator[None]:
        saved = self._corefile()
        text, n = re.subn(pattern, replacement, saved, count=1, flags=re.MULTILINE)
        if not n:
            raise ClusterError(f"cannot apply fault {what}: the CoreDNS Corefile in kube-system/coredns has no "
                               f"line matching {pattern!r}; is it kind's default Corefile?")
        self._set_corefile(text)
        try:
            yield
        finally:
            self._set_corefile(saved)

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
        rules = [["FORWARD", "-d", ip, "-p", "udp", "--dport", "53", "-m", "statistic", "--mode", "random",
                  "--probability", f"{share}", "-m", "comment", "--comment", _LOSS_COMMENT, "-j", "DROP"]
                 for ip in self._coredns_pod_ips()]
        with self._node_rules(rules):
            yield

    @contextlib.contextmanager
    def tcp_refused(self) -> Iterator[None]:
        """DNS over TCP to the CoreDNS pods is refused (a TCP reset), UDP still answers: what a
        firewall or a Service without its TCP port does to truncated answers and TCP clients."""
        rules = [["FORWARD", "-d", ip, "-p", "tcp", "--dport", "53", "-m", "comment", "--comment",
                  "k8sdns-fault-tcp-refused", "-j", "REJECT", "--reject-with", "tcp-reset"]
                 for ip in self._coredns_pod_ips()]
        with self._node_rules(rules):
            yield

    @contextlib.contextmanager
    def coredns_cpu_starved(self, millicores: int = 1) -> Iterator[None]:
        """CoreDNS runs under a CPU limit of `millicores` (CFS throttling, a common field failure):
        answers wait for CPU, so the server's own request-duration p99 grows (253 ms measured with
        1m on kind, against 1 ms healthy)."""
        c = self.cluster
        dep = c.call("get", "deployments", "kube-system", c.apps.read_namespaced_deployment, "coredns", "kube-system")
        container = dep.spec.template.spec.containers[0]
        saved = c.api_client.sanitize_for_serialization(container.resources) or {}
        cpu = f"{millicores}m"
        limited = {**saved, "limits": {**saved.get("limits", {}), "cpu": cpu},
                   "requests": {**saved.get("requests", {}), "cpu": cpu}}
        c.call("patch", "deployments", "kube-system", c.apps.patch_namespaced_deployment, "coredns", "kube-system",
               {"spec": {"template": {"spec": {"containers": [{"name": container.name, "resources": limited}]}}}})
        self._wait_coredns_running(timeout_s=180)
        try:
            yield
        finally:
            # a strategic merge keeps keys it is not given: replace the whole resources block
            c.call("patch", "deployments", "kube-system", c.apps.patch_namespaced_deployment, "coredns",
                   "kube-system", [{"op": "replace", "path": "/spec/template/spec/containers/0/resources",
                                    "value": saved}])
            wait_deployment(c, "kube-system", "coredns", 300)

    def _wait_coredns_running(self, timeout_s: float) -> None:
        """Wait for the rollout's new pods to run (not to be Ready: a starved CoreDNS may never be)."""
        c = self.cluster
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dep = c.call("get", "deployments", "kube-system", c.apps.read_namespaced_deployment, "coredns",
                         "kube-system")
            pods = c.call("list", "pods", "kube-system", c.core.list_namespaced_pod, "kube-system",
                          label_selector="k8s-app=kube-dns").items
            running = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
            if (dep.status.observed_generation == dep.metadata.generation
                    and (dep.status.updated_replicas or 0) == dep.spec.replicas and len(running) == len(pods)
                    and len(pods) == dep.spec.replicas):
                return
            time.sleep(1)
        raise WaitTimeout(f"CoreDNS pods did not run under the CPU limit within {timeout_s:.0f} s")

    @contextlib.contextmanager
    def cluster_domain_mismatch(self, served: str = "k8sdns-other.local") -> Iterator[None]:
        """CoreDNS's kubernetes plugin serves `served` while the kubelets hand pods the cluster
        domain in their search list: every cluster name falls through to the upstream (NXDOMAIN)."""
        with self._corefile_edit(r"^(\s*kubernetes\s+)(\S+)", rf"\g<1>{served}", "cluster_domain_mismatch"):
            yield

    @contextlib.contextmanager
    def no_reverse_zone(self) -> Iterator[None]:
        """The kubernetes plugin no longer serves in-addr.arpa/ip6.arpa: Service IPs lose their PTR."""
        with self._corefile_edit(r"^(\s*kubernetes\s+\S+)[^{\n]*", r"\g<1> ", "no_reverse_zone"):
            yield

    @contextlib.contextmanager
    def upstream_down(self) -> Iterator[None]:
        """The upstream DNS server stops answering (its container is paused): names outside the
        cluster fail, cluster names keep answering."""
        container = self.kind.upstream_container
        run_tool(["docker", "pause", container], option="--k8sdns-kind")
        try:
            self.restart_coredns()  # empty its cache, which would hide the outage for up to 30 s
            yield
        finally:
            run_tool(["docker", "unpause", container], option="--k8sdns-kind")

    @contextlib.contextmanager
    def coredns_killed_during_run(self, poll_s: float = 0.5) -> Iterator[None]:
        """The CoreDNS processes are SIGKILLed once in every node as soon as a run's probe pods are
        up (as the OOM killer would in the middle of a run); kubelet restarts them at once. Killing
        again and again would not do: the restart back-off soon keeps them down, and that is
        test_dns_pods_ready's fault (CrashLoopBackOff), not a restart during the run."""
        nodes = self.kind.node_containers()
        c = self.cluster
        done = threading.Event()

        def kill_once_a_run_is_up() -> None:
            if done.is_set():
                return
            pods = c.call("list", "pods", "", c.core.list_pod_for_all_namespaces,
                          label_selector=",".join([*(f"{k}={v}" for k, v in MANAGED_BY.items()), "k8sdns.io/run"]),
                          _request_timeout=10).items
            if any(p.status.phase == "Running" for p in pods):
                for node in nodes:
                    subprocess.run(["docker", "exec", node, "pkill", "-KILL", "-x", "coredns"],
                                   capture_output=True, check=False)
                done.set()

        try:
            with _every(poll_s, kill_once_a_run_is_up, "coredns-killed"):
                yield
        finally:
            wait_deployment(c, "kube-system", "coredns", 300)
        if not done.is_set():
            raise ClusterError("fault coredns_killed_during_run never saw a run's probe pods, so it killed nothing")

    @contextlib.contextmanager
    def not_ready_published(self, poll_s: float = 0.3) -> Iterator[None]:
        """A faulty endpoints controller: every endpoint that is not ready, in any namespace but
        kube-system, gets a second EndpointSlice of its Service that marks it ready. The cluster
        DNS then publishes the address of a pod that fails its readiness probe."""
        api = DiscoveryV1Api(self.cluster.api_client)
        copied: set[tuple[str, str]] = set()
        errors: list[str] = []

        def mirror_once() -> None:
            slices = api.list_endpoint_slice_for_all_namespaces(
                label_selector="endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
                _request_timeout=10).items
            for sl in slices:
                ns, name = sl.metadata.namespace, sl.metadata.name
                service = (sl.metadata.labels or {}).get("kubernetes.io/service-name")
                unready = [e for e in sl.endpoints or [] if e.conditions and e.conditions.ready is False]
                if ns == "kube-system" or not service or not unready or (ns, name) in copied:
                    continue
                body = {
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
            with _every(poll_s, mirror_once, "not-ready-published", errors):
                yield
        finally:
            for sl in api.list_endpoint_slice_for_all_namespaces(
                    label_selector=f"endpointslice.kubernetes.io/managed-by={FAULT_MANAGER}", _request_timeout=10).items:
                with contextlib.suppress(ApiException):
                    api.delete_namespaced_endpoint_slice(sl.metadata.name, sl.metadata.namespace, _request_timeout=10)
        if len(errors) > 3:  # a busy API server may time out now and then; more is a real failure
            raise ClusterError(f"fault not_ready_published could not mirror EndpointSlices: {errors[-1]}")

    @contextlib.contextmanager
    def musl_search_limit(self, length: int = 300) -> Iterator[None]:
        """Give the nodes search domains that make pods' search line longer than 256 bytes: musl
        ignores such a line, glibc does not. Affects pods created while it holds."""
        saved = self._resolv_confs()
        labels: list[str] = []
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

    # -- NodeLocal DNSCache (pytest_k8sdns.dns.nodelocal.deploy_nodelocal must have run) -------------
    def _restart_nodelocal(self) -> None:

        c = self.cluster
        c.call("patch", "daemonsets", NODELOCAL_NAMESPACE, c.apps.patch_namespaced_daemon_set, NODELOCAL_NAME,
               NODELOCAL_NAMESPACE,
               {"spec": {"template": {"metadata": {"annotations": {"k8sdns.io/restarted-at": f"{time.time():.3f}"}}}}})
        time.sleep(2)  # let the controller see the new generation before waiting on it
        wait_daemonset_ready(c, NODELOCAL_NAMESPACE, NODELOCAL_NAME, 180)

    @contextlib.contextmanager
    def nodelocal_without_force_tcp(self) -> Iterator[None]:
        """The NodeLocal cache forwards cluster names to CoreDNS over UDP (force_tcp removed)."""
        with self._nodelocal_corefile(r"forward (\S+) (\S+) \{\s*force_tcp\s*\}", r"forward \1 \2"):
            yield

    @contextlib.contextmanager
    def nodelocal_silent_on(self, node: str, local_ip: str = "169.254.20.10") -> Iterator[None]:
        """One node's cache stops answering on its link-local address: DNS, /health and metrics
        there are dropped, as when its pod hangs. Its liveness probe fails too, so kubelet restarts
        it; undoing waits until it is Ready again."""

        rules = [["INPUT", "-d", f"{local_ip}/32", "-p", proto, "-m", "comment", "--comment",
                  "k8sdns-fault-nodelocal-silent", "-j", "DROP"] for proto in ("udp", "tcp")]
        try:
            with self._node_rules(rules, [node]):
                yield
        finally:
            time.sleep(2)  # let kubelet's next probe see it answer again
            wait_daemonset_ready(self.cluster, NODELOCAL_NAMESPACE, NODELOCAL_NAME, 300)

    @contextlib.contextmanager
    def nodelocal_absent_from(self, node: str, timeout_s: float = 180) -> Iterator[None]:
        """The NodeLocal DaemonSet no longer schedules on `node` (a node affinity that excludes it,
        as a wrong nodeSelector or an untolerated taint would)."""

        c = self.cluster
        ds = c.call("get", "daemonsets", NODELOCAL_NAMESPACE, c.apps.read_namespaced_daemon_set, NODELOCAL_NAME,
                    NODELOCAL_NAMESPACE)
        saved = c.api_client.sanitize_for_serialization(ds.spec.template.spec.affinity)
        exclude = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node]}]}]}}}
        c.call("patch", "daemonsets", NODELOCAL_NAMESPACE, c.apps.patch_namespaced_daemon_set, NODELOCAL_NAME,
               NODELOCAL_NAMESPACE, {"spec": {"template": {"spec": {"affinity": exclude}}}})
        deadline = time.monotonic() + timeout_s
        while any(p.spec.node_name == node for p in c.call(
                "list", "pods", NODELOCAL_NAMESPACE, c.core.list_namespaced_pod, NODELOCAL_NAMESPACE,
                label_selector=NODELOCAL_LABEL).items):
            if time.monotonic() > deadline:
                raise WaitTimeout(f"the NodeLocal pod on {node} was not removed within {timeout_s:.0f} s")
            time.sleep(1)
        try:
            yield
        finally:
            op = ({"op": "replace", "path": "/spec/template/spec/affinity", "value": saved} if saved
                  else {"op": "remove", "path": "/spec/template/spec/affinity"})
            c.call("patch", "daemonsets", NODELOCAL_NAMESPACE, c.apps.patch_namespaced_daemon_set, NODELOCAL_NAME,
                   NODELOCAL_NAMESPACE, [op])
            time.sleep(2)
            wait_daemonset_ready(c, NODELOCAL_NAMESPACE, NODELOCAL_NAME, timeout_s)

    @contextlib.contextmanager
    def nodelocal_long_denial_ttl(self, seconds: int = 120) -> Iterator[None]:
        """The cache keeps NXDOMAIN for the cluster zone `seconds` long: a Service asked for before
        it existed stays invisible through that cache long after it is created."""
        with self._nodelocal_corefile(r"denial (\d+) \d+", rf"denial \1 {seconds}"):
            yield

    @contextlib.contextmanager
    def _nodelocal_corefile(self, pattern: str, replacement: str) -> Iterator[None]:

        c = self.cluster
        cm = c.call("get", "configmaps", NODELOCAL_NAMESPACE, c.core.read_namespaced_config_map, NODELOCAL_NAME,
                    NODELOCAL_NAMESPACE)
        saved = str(cm.data["Corefile"])
        patched, n = re.subn(pattern, replacement, saved, count=1)
        if not n:
            raise ClusterError(f"cannot apply the fault: the NodeLocal Corefile in {NODELOCAL_NAMESPACE}/"
                               f"{NODELOCAL_NAME} has nothing matching {pattern!r}")
        c.call("patch", "configmaps", NODELOCAL_NAMESPACE, c.core.patch_namespaced_config_map, NODELOCAL_NAME,
               NODELOCAL_NAMESPACE, {"data": {"Corefile": patched}})
        self._restart_nodelocal()
        try:
            yield
        finally:
            c.call("patch", "configmaps", NODELOCAL_NAMESPACE, c.core.patch_namespaced_config_map, NODELOCAL_NAME,
                   NODELOCAL_NAMESPACE, {"data": {"Corefile": saved}})
            self._restart_nodelocal()
