"""Faults of the cluster DNS server: its Corefile (a loop, a loopback upstream, the wrong zone, no
reverse zone, no AAAA), its CPU, its processes, and its reachability over IPv6."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.errors import ClusterError, ConfigError
from pytest_k8sdns.faults.base import (
    COREDNS_NAMESPACE,
    COREDNS_SELECTOR,
    COREFILE,
    FaultBase,
    editing,
    every,
)
from pytest_k8sdns.kube.client import MANAGED_BY
from pytest_k8sdns.kube.patch import edited, patched
from pytest_k8sdns.kube.wait import Watched, until

#: The loopback stub resolver address systemd-resolved uses, and the loop fault imitates.
STUB_IP = "127.0.0.53"
_STUB_PID = "/run/k8sdns-stub.pid"
_LOOP_LINE = "plugin/loop: Loop ("


class CoreDNSFaults(FaultBase):
    """Faults of CoreDNS itself; each undoes exactly what it changed."""

    def _pods_watched(self) -> Watched:
        c = self.cluster
        return Watched(c, "pods", COREDNS_NAMESPACE, c.core.list_namespaced_pod, label_selector=COREDNS_SELECTOR)

    def _corefile_edit(self, fault: str, edit: Any) -> contextlib.AbstractContextManager[None]:
        """The CoreDNS Corefile edited while the block runs; CoreDNS rolled after each change."""
        return edited(self.coredns_config, COREFILE, editing(fault, self.coredns_config, edit),
                      settle=self.restart_coredns)

    @contextlib.contextmanager
    def _loopback_stub(self) -> Iterator[None]:
        """Nodes resolve through a stub on 127.0.0.53 that relays to the cluster DNS."""
        dns_ip = self._cluster_dns_ip()
        with self._resolv_conf_held(lambda _: f"nameserver {STUB_IP}\n") as nodes:
            try:
                for node in nodes:
                    self._node_exec(node, "sh", "-c",
                                    f"nohup socat UDP4-RECVFROM:53,bind={STUB_IP},fork UDP4-SENDTO:{dns_ip}:53 "
                                    f">/dev/null 2>&1 & echo $! > {_STUB_PID}")
                yield
            finally:
                for node in nodes:
                    self._node_exec(node, "sh", "-c", f"kill $(cat {_STUB_PID}) 2>/dev/null; rm -f {_STUB_PID}")

    @contextlib.contextmanager
    def loop(self) -> Iterator[None]:
        """Nodes resolve through a loopback stub (127.0.0.53) that forwards to the cluster DNS, and
        CoreDNS keeps the default `forward . /etc/resolv.conf`: its pods inherit 127.0.0.53, query
        themselves, and the loop plugin exits with `[FATAL] plugin/loop: Loop ... detected`."""
        to_resolv_conf = editing("loop", self.coredns_config, lambda t: corefile.set_forward(t, ["/etc/resolv.conf"]))
        try:
            # no settle: the looping pods never become Ready; they are rolled once the stub is up,
            # so that they inherit it, and the undo waits for the rollout after both are restored
            with edited(self.coredns_config, COREFILE, to_resolv_conf), self._loopback_stub():
                self.restart_coredns(wait=False)
                yield
        finally:
            self.restart_coredns()

    def wait_for_loop(self, timeout_s: float = 180) -> str:
        """Wait until a CoreDNS pod has logged the loop plugin's FATAL line; return that line."""
        c = self.cluster

        def look() -> tuple[str | None, str]:
            pods = self._coredns_pods()
            seen = ", ".join(f"{p.metadata.name} restarts {sum(cs.restart_count for cs in p.status.container_statuses or [])}"
                             for p in pods) or "no pods"
            for p in pods:
                for previous in (False, True):
                    try:
                        text = c.core.read_namespaced_pod_log(p.metadata.name, COREDNS_NAMESPACE, previous=previous,
                                                              _request_timeout=10)
                    except Exception:  # noqa: BLE001, S112 - the container may be between restarts
                        continue
                    # a container that has logged nothing yet answers with no body at all
                    line = next((ln for ln in (text or "").splitlines() if _LOOP_LINE in ln), None)
                    if line:
                        return line, seen
            return None, seen

        # a crash restarts the container, which the pods' watch sees; the log is read again then
        line, _ = until("no CoreDNS pod logged a loop", look, lambda found: found[0] is not None, timeout_s=timeout_s,
                        seen=lambda found: found[1], every_s=2, watched=self._pods_watched())
        assert line is not None
        return line

    @contextlib.contextmanager
    def loopback_upstream_without_loop(self) -> Iterator[None]:
        """`forward . 127.0.0.1` with the loop plugin removed: nothing crashes, queries circle."""
        def edit(text: str) -> str:
            return corefile.remove_plugin(corefile.set_forward(text, ["127.0.0.1"]), "loop")

        with self._corefile_edit("loopback_upstream_without_loop", edit):
            yield

    @contextlib.contextmanager
    def cluster_domain_mismatch(self, served: str = "k8sdns-other.local") -> Iterator[None]:
        """CoreDNS's kubernetes plugin serves `served` while the kubelets hand pods the cluster
        domain in their search list: every cluster name falls through to the upstream (NXDOMAIN)."""
        def edit(text: str) -> str:
            reverse = [z for z in corefile.plugin(text, "kubernetes").args if corefile.is_reverse_zone(z)]
            return corefile.set_kubernetes_zones(text, [served, *reverse])

        with self._corefile_edit("cluster_domain_mismatch", edit):
            yield

    @contextlib.contextmanager
    def no_reverse_zone(self) -> Iterator[None]:
        """The kubernetes plugin no longer serves in-addr.arpa/ip6.arpa: Service IPs lose their PTR."""
        with self._corefile_edit("no_reverse_zone", corefile.drop_reverse_zones):
            yield

    @contextlib.contextmanager
    def no_ip6_reverse_zone(self) -> Iterator[None]:
        """The kubernetes plugin serves in-addr.arpa but no longer ip6.arpa (a Corefile written for
        IPv4): IPv6 Service IPs lose their PTR, IPv4 ones keep theirs."""
        def edit(text: str) -> str:
            zones = corefile.plugin(text, "kubernetes").args
            kept = [z for z in zones if z.rstrip(".").lower() != "ip6.arpa"]
            if len(kept) == len(zones):
                raise ConfigError(f"the kubernetes plugin serves no ip6.arpa ({' '.join(zones) or 'its block zones'})")
            return corefile.set_kubernetes_zones(text, kept)

        with self._corefile_edit("no_ip6_reverse_zone", edit):
            yield

    @contextlib.contextmanager
    def aaaa_suppressed(self) -> Iterator[None]:
        """CoreDNS answers every AAAA of the cluster zone with no record (NOERROR, empty): the
        `template IN AAAA <zone> { rcode NOERROR }` block that "disable IPv6 in CoreDNS" guides add.
        The template plugin runs before kubernetes, so a dual-stack Service loses its AAAA."""
        def edit(text: str) -> str:
            return corefile.add_cluster_templates(text, ["AAAA"], ["rcode NOERROR"], purpose="to suppress AAAA in")

        with self._corefile_edit("aaaa_suppressed", edit):
            yield

    @contextlib.contextmanager
    def underscore_refused(self) -> Iterator[None]:
        """A host-name filter in front of the kubernetes plugin: CoreDNS answers REFUSED to A and
        AAAA queries of the cluster zone whose name has a label starting with `_` (no RFC 952 host
        name has one); SRV names are still answered. A search path with underscores then ends the
        lookup: glibc stops at REFUSED, musl ignores it and times out."""
        def edit(text: str) -> str:
            return corefile.add_cluster_templates(text, ["A", "AAAA"], ['match "(^|[.])_"', "rcode REFUSED", "fallthrough"],
                                                  purpose="to filter underscore names in")

        with self._corefile_edit("underscore_refused", edit):
            yield

    @contextlib.contextmanager
    def ipv6_dns_dropped(self) -> Iterator[None]:
        """Every node drops DNS over IPv6 (UDP and TCP to port 53 in ip6tables FORWARD, as a
        firewall written for IPv4 leaves it): pods reach the cluster DNS over IPv4 only. Rules
        inserted first, so they also drop replies of flows that were already open."""
        rules = [["FORWARD", "-p", proto, "--dport", "53", "-m", "comment", "--comment", "k8sdns-fault-ipv6-dns",
                  "-j", "DROP"] for proto in ("udp", "tcp")]
        with self._node_rules(rules, tool="ip6tables"):
            yield

    @contextlib.contextmanager
    def pods_disabled(self) -> Iterator[None]:
        """The kubernetes plugin's `pods insecure` (or verified) becomes `pods disabled`: pod A
        records, a-b-c-d.<ns>.pod.<domain>, are no longer served."""
        with self._corefile_edit("pods_disabled", lambda text: corefile.set_option(text, "kubernetes", "pods",
                                                                                  ["disabled"])):
            yield

    @contextlib.contextmanager
    def coredns_without_lameduck(self, grace_s: int = 1) -> Iterator[None]:
        """CoreDNS's health plugin without `lameduck` and a termination grace period of `grace_s`: a
        pod told to stop exits at once, while kube-proxy still sends it queries until the endpoint
        change reaches every node (the rollout drop of kubernetes/kubernetes#129617). The pods run it
        once the block starts; a change (a rollout restart) shows it."""
        drop = editing("coredns_without_lameduck", self.coredns_config,
                       lambda text: corefile.remove_option(text, "health", "lameduck"))
        grace = {"/spec/template/spec/terminationGracePeriodSeconds": grace_s}
        # the Corefile first and unsettled: the grace patch's rollout starts pods that read both
        try:
            with edited(self.coredns_config, COREFILE, drop, settle=lambda: None), \
                    patched(self.coredns, grace, settle=self.coredns_rolled_out):
                yield
        finally:
            self.restart_coredns()  # pods that read the restored Corefile, not the reload plugin's later pick-up

    @contextlib.contextmanager
    def coredns_long_denial_ttl(self, seconds: int = 60) -> Iterator[None]:
        """CoreDNS keeps NXDOMAIN of the cluster zone `seconds` long: the kubernetes plugin's `ttl`
        (the zone's negative TTL) and the cache's ceiling raised, its cluster-zone exemptions dropped.
        A name asked before its Service existed then stays NXDOMAIN that long after it is created."""
        def edit(text: str) -> str:
            with contextlib.suppress(ConfigError):  # a cache without `disable` lines has nothing to drop
                text = corefile.remove_option(text, "cache", "disable")
            text = corefile.set_plugin_args(text, "cache", [str(seconds)])
            return corefile.set_option(text, "kubernetes", "ttl", [str(seconds)])

        with self._corefile_edit("coredns_long_denial_ttl", edit):
            yield

    @contextlib.contextmanager
    def coredns_api_cut(self) -> Iterator[None]:
        """The CoreDNS pods lose the API server (their TCP to it is reset, in every node's INPUT and
        FORWARD chains): they keep answering what they knew, and never learn a new Service or pod.
        Undoing rolls CoreDNS, so its informers start afresh."""
        rules = [[chain, "-s", f"{ip}/32", "-p", "tcp", "--dport", str(port), "-m", "comment", "--comment",
                  "k8sdns-fault-api-cut", "-j", "REJECT", "--reject-with", "tcp-reset"]
                 for ip in self._coredns_pod_ips() for chain in ("INPUT", "FORWARD") for port in (6443, 443)]
        try:
            with self._node_rules(rules):
                yield
        finally:
            self.restart_coredns()

    @contextlib.contextmanager
    def coredns_cpu_starved(self, millicores: int = 1) -> Iterator[None]:
        """CoreDNS runs under a CPU limit of `millicores` (CFS throttling, a common field failure):
        answers wait for CPU, so the server's own request-duration p99 grows (253 ms measured with
        1m on kind, against 1 ms healthy)."""
        path = "/spec/template/spec/containers/0/resources"
        saved: dict[str, Any] = self.coredns.read()["spec"]["template"]["spec"]["containers"][0].get("resources") or {}
        cpu = f"{millicores}m"
        limited = {**saved, "limits": {**saved.get("limits", {}), "cpu": cpu},
                   "requests": {**saved.get("requests", {}), "cpu": cpu}}
        try:
            # the whole resources block is replaced, and put back as it was
            with patched(self.coredns, {path: limited}):
                self._wait_coredns_running(timeout_s=180)
                yield
        finally:
            self.coredns_rolled_out(300)

    @contextlib.contextmanager
    def coredns_scaled(self, replicas: int = 1, cpu_millicores: int | None = None) -> Iterator[None]:
        """CoreDNS runs `replicas` pods (one instead of kubeadm's two: half the capacity where each
        replica is bound by its own CPU), each under a CPU limit of `cpu_millicores` if given; the
        replica count and the resources block are put back as they were."""
        dep = self.coredns.read()
        path = "/spec/template/spec/containers/0/resources"
        saved: dict[str, Any] = dep["spec"]["template"]["spec"]["containers"][0].get("resources") or {}
        patch: dict[str, Any] = {"/spec/replicas": replicas}
        if cpu_millicores is not None:
            cpu = f"{cpu_millicores}m"
            patch[path] = {**saved, "limits": {**saved.get("limits", {}), "cpu": cpu},
                           "requests": {**saved.get("requests", {}), "cpu": cpu}}
        with patched(self.coredns, patch, settle=self.coredns_rolled_out):
            yield

    def _wait_coredns_running(self, timeout_s: float) -> None:
        """Wait for the rollout's new pods to run (not to be Ready: a starved CoreDNS may never be)."""
        def look() -> tuple[bool, str]:
            dep = self.coredns.read()
            want = dep["spec"].get("replicas") or 0
            st = dep.get("status") or {}
            pods = self._coredns_pods()
            running = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
            done = (st.get("observedGeneration") == dep["metadata"]["generation"]
                    and (st.get("updatedReplicas") or 0) == want and len(running) == len(pods) == want)
            return done, (f"generation {st.get('observedGeneration')}/{dep['metadata']['generation']}, updated "
                          f"{st.get('updatedReplicas') or 0} of {want}, running {len(running)} of {len(pods)} pods")

        until("CoreDNS pods not running under the CPU limit", look, lambda last: last[0], timeout_s=timeout_s,
              seen=lambda last: last[1], watched=self._pods_watched())

    @contextlib.contextmanager
    def coredns_killed_during_run(self, poll_s: float = 0.5) -> Iterator[None]:
        """The CoreDNS processes are SIGKILLed once in every node as soon as a run's probe pods are
        up (as the OOM killer would in the middle of a run); kubelet restarts them at once. Killing
        again and again would not do: the restart back-off soon keeps them down, and that is
        test_dns_pods_ready's fault (CrashLoopBackOff), not a restart during the run."""
        nodes = self.kind.node_containers()
        c = self.cluster
        done = threading.Event()
        run_pods = ",".join([*(f"{k}={v}" for k, v in MANAGED_BY.items()), "k8sdns.io/run"])

        def kill_once_a_run_is_up() -> None:
            if done.is_set():
                return
            pods = c.call("list", "pods", None, c.core.list_pod_for_all_namespaces, label_selector=run_pods,
                          _request_timeout=10).items
            if any(p.status.phase == "Running" for p in pods):
                for node in nodes:
                    self._node_try(node, "pkill", "-KILL", "-x", "coredns")
                done.set()

        try:
            # a periodic actor, not a wait: it acts once when it sees the run, whenever that is
            with every(poll_s, kill_once_a_run_is_up, "coredns-killed"):
                yield
        finally:
            self.coredns_rolled_out(300)
        if not done.is_set():
            raise ClusterError("fault coredns_killed_during_run never saw a run's probe pods, so it killed nothing")
