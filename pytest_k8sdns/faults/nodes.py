"""Faults in the kind nodes and their network: packets to CoreDNS dropped or refused, stale UDP
conntrack, DNS to pods other than CoreDNS dropped, search domains too long for musl, the upstream
DNS server gone."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.errors import ClusterError
from pytest_k8sdns.faults.base import COREFILE, FaultBase, editing, every
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube.kind import CONTAINER_LABEL, run_tool
from pytest_k8sdns.kube.patch import edited

_LOSS_COMMENT = "k8sdns-fault-packet-loss"
_TCP_REFUSED_COMMENT = "k8sdns-fault-tcp-refused"
_CLIENT_LOSS_COMMENT = "k8sdns-fault-node-client-loss"
_REPLICA_SILENT_COMMENT = "k8sdns-fault-replica-silent"
_STALE_COMMENT = "k8sdns-fault-stale-conntrack"
_DNS_ONLY_CHAIN = "K8SDNS-DNS-ONLY"
#: etc_hosts_unmanaged: save each pod's kubelet-written hosts file once, then keep only localhost
_ETC_HOSTS_STRIP = (
    'for f in /var/lib/kubelet/pods/*/etc-hosts; do [ -f "$f" ] && [ ! -e "$f.k8sdns-saved" ] || continue; '
    'cp "$f" "$f.k8sdns-saved" && grep -E "^(#|$|127\\.|::1|fe00::|fe02::)" "$f.k8sdns-saved" > "$f" || true; done')
_ETC_HOSTS_RESTORE = ('for s in /var/lib/kubelet/pods/*/etc-hosts.k8sdns-saved; do [ -f "$s" ] || continue; '
                      'cat "$s" > "${s%.k8sdns-saved}" && rm -f "$s"; done')
#: one conntrack -L line: the original direction's source and port, then the reply's source (the
#: endpoint the flow was DNATed to)
_FLOW = re.compile(r"src=(?P<src>\S+) dst=\S+ sport=(?P<sport>\d+) dport=53 .*?src=(?P<endpoint>\S+) ")


class NodeFaults(FaultBase):
    """Faults made with iptables, resolv.conf and docker in the nodes; each undoes exactly what it did."""

    @contextlib.contextmanager
    def packet_loss(self, share: float = 0.3) -> Iterator[None]:
        """Drop `share` of UDP/53 packets to the CoreDNS pods, in every node (iptables statistic)."""
        rules = [["FORWARD", "-d", ip, "-p", "udp", "--dport", "53", "-m", "statistic", "--mode", "random",
                  "--probability", f"{share}", "-m", "comment", "--comment", _LOSS_COMMENT, "-j", "DROP"]
                 for ip in self._coredns_pod_ips()]
        with self._node_rules(rules):
            yield

    @contextlib.contextmanager
    def node_client_loss(self, node: str, share: float = 0.3) -> Iterator[None]:
        """Drop `share` of the UDP/53 packets that the pods of one node send to the CoreDNS pods, in
        that node's FORWARD chain (as a full conntrack table or a bad NIC does to one node's clients).
        Every other node's clients, and the replicas' own upstream queries, are untouched."""
        cidr = self._pod_cidr(node)
        rules = [["FORWARD", "-s", cidr, "-d", ip, "-p", "udp", "--dport", "53", "-m", "statistic", "--mode",
                  "random", "--probability", f"{share}", "-m", "comment", "--comment", _CLIENT_LOSS_COMMENT,
                  "-j", "DROP"] for ip in self._coredns_pod_ips()]
        with self._node_rules(rules, [node]):
            yield

    @contextlib.contextmanager
    def replica_silent(self, pod: str | None = None) -> Iterator[str]:
        """One CoreDNS pod (the first by name unless `pod` names one) stops answering on :53, UDP and
        TCP, from every client; its /ready and /health stay up, so it stays Ready. Yields its name."""
        pods = sorted(self._serving_coredns_pods(), key=lambda p: p.metadata.name)
        chosen = next((p for p in pods if p.metadata.name == pod), None) if pod else (pods[0] if pods else None)
        if chosen is None or not chosen.status.pod_ip:
            raise ClusterError(f"no CoreDNS pod {pod or ''} with an IP in kube-system to silence; pods there: "
                               f"{[p.metadata.name for p in pods]}")
        ip = chosen.status.pod_ip
        rules = [["FORWARD", "-d", ip, "-p", proto, "--dport", "53", "-m", "comment", "--comment",
                  _REPLICA_SILENT_COMMENT, "-j", "DROP"] for proto in ("udp", "tcp")]
        with self._node_rules(rules, [chosen.spec.node_name]):
            yield str(chosen.metadata.name)

    @contextlib.contextmanager
    def stale_udp_conntrack(self, poll_s: float = 0.5) -> Iterator[list[str]]:
        """A removed CoreDNS endpoint keeps the long-lived UDP flows it served, as when the conntrack
        entries of a deleted UDP endpoint are not flushed (kubernetes/kubernetes#125467): a client
        socket that keeps its source port stays sent to the old pod's address, while every new
        socket reaches a live replica.

        A periodic actor in every node notes each UDP flow to the cluster DNS address that lived
        past 2 s (conntrack ASSURED; a resolver's one-shot query socket never does) and the replica
        it reached. Once that replica is no longer a CoreDNS pod (deleted or being deleted), a DNAT
        rule pins the flow to its address and the flow's fresh conntrack entry is dropped. Yields
        the pinned flows ("node src:port -> old address"); undone by deleting the rules and the
        pinned flows' entries, so each socket reaches a live replica again at once."""
        dns_ip = self._cluster_dns_ip()
        nodes = self.kind.node_containers()
        reached: dict[tuple[str, str, str], str] = {}  # (node, src, sport) -> the replica's address
        rules: list[tuple[str, list[str], list[str]]] = []  # (node, rule, the flow's conntrack filter)
        pinned: list[str] = []
        errors: list[str] = []

        def flow_filter(src: str, sport: str) -> list[str]:
            return ["-p", "udp", "--orig-src", src, "--orig-dst", dns_ip, "--sport", sport, "--dport", "53"]

        def pin_once() -> None:
            live = {p.status.pod_ip for p in self._coredns_pods() if p.metadata.deletion_timestamp is None}
            for node in nodes:
                listed = self._node_exec(node, "conntrack", "-L", "-p", "udp", "--orig-dst", dns_ip, "--dport", "53",
                                         "--status", "ASSURED")
                for m in _FLOW.finditer(listed):
                    reached.setdefault((node, m["src"], m["sport"]), m["endpoint"])
            for (node, src, sport), endpoint in list(reached.items()):
                flow = f"{node} {src}:{sport} -> {endpoint}"
                if endpoint in live or flow in pinned:
                    continue
                rule = ["PREROUTING", "-t", "nat", "-s", f"{src}/32", "-p", "udp", "--sport", sport, "-d",
                        f"{dns_ip}/32", "--dport", "53", "-m", "comment", "--comment", _STALE_COMMENT,
                        "-j", "DNAT", "--to-destination", f"{endpoint}:53"]
                self._node_exec(node, "iptables", "-I", *rule)
                rules.append((node, rule, flow_filter(src, sport)))
                pinned.append(flow)
                # kube-proxy flushed the old entry; a query sent since made one to a live replica
                self._node_try(node, "conntrack", "-D", *flow_filter(src, sport))

        try:
            with every(poll_s, pin_once, "stale-udp-conntrack", errors):
                yield pinned
        finally:
            for node, rule, flow in reversed(rules):
                self._node_exec(node, "iptables", "-D", *rule)
                self._node_try(node, "conntrack", "-D", *flow)
        if errors and not pinned:  # a poll that failed once, under load, is retried by the next
            raise ClusterError(f"fault stale_udp_conntrack never pinned a flow; its last error: {errors[-1]}")

    @contextlib.contextmanager
    def tcp_refused(self) -> Iterator[None]:
        """DNS over TCP to the CoreDNS pods is refused (a TCP reset), UDP still answers: what a
        firewall or a Service without its TCP port does to truncated answers and TCP clients."""
        rules = [["FORWARD", "-d", ip, "-p", "tcp", "--dport", "53", "-m", "comment", "--comment",
                  _TCP_REFUSED_COMMENT, "-j", "REJECT", "--reject-with", "tcp-reset"]
                 for ip in self._coredns_pod_ips()]
        with self._node_rules(rules):
            yield

    @contextlib.contextmanager
    def dns_only_to_cluster_dns(self) -> Iterator[list[str]]:
        """A node firewall that lets pods send DNS (UDP and TCP :53) to no pod but the CoreDNS pods,
        as a default-deny egress NetworkPolicy that allows DNS only to kube-dns does: a pod whose
        dnsConfig names another DNS server pod gets no answer, while lookups through the cluster DNS
        Service (DNATed to a CoreDNS pod) and CoreDNS's own upstream queries (to no pod) pass. In
        every node's FORWARD chain, a jump per pod CIDR to a chain that returns for the CoreDNS pods'
        IPs (those serving when it starts) and drops the rest. Yields those IPs; undone by deleting
        the jumps and the chain."""
        nodes = self.kind.node_containers()
        cidrs = sorted({self._pod_cidr(node) for node in nodes})
        allowed = self._coredns_pod_ips()
        if not allowed:
            raise ClusterError("fault dns_only_to_cluster_dns found no serving CoreDNS pod in kube-system to allow")
        chain = [["-d", ip, "-j", "RETURN"] for ip in allowed] + [["-j", "DROP"]]
        made: list[str] = []
        try:
            for node in nodes:
                self._node_exec(node, "iptables", "-N", _DNS_ONLY_CHAIN)
                made.append(node)
                for rule in chain:
                    self._node_exec(node, "iptables", "-A", _DNS_ONLY_CHAIN, *rule)
            jumps = [["FORWARD", "-d", cidr, "-p", proto, "--dport", "53", "-j", _DNS_ONLY_CHAIN]
                     for cidr in cidrs for proto in ("udp", "tcp")]
            with self._node_rules(jumps, nodes):
                yield allowed
        finally:
            for node in made:
                self._node_exec(node, "iptables", "-F", _DNS_ONLY_CHAIN)
                self._node_exec(node, "iptables", "-X", _DNS_ONLY_CHAIN)

    @contextlib.contextmanager
    def etc_hosts_unmanaged(self, poll_s: float = 1.0) -> Iterator[None]:
        """A node runtime that gives pods a hosts file of its own instead of the kubelet's: every
        kubelet-managed /etc/hosts (/var/lib/kubelet/pods/<uid>/etc-hosts, bind-mounted into the
        pod) keeps only its localhost lines, so a pod no longer finds its own FQDN and hostname
        there. It keeps acting on pods that start while it holds; undone by writing each file's
        saved text back into it (in place: the pods see the same inode)."""
        errors: list[str] = []
        nodes = self.kind.node_containers()

        def strip_once() -> None:
            for node in nodes:
                self._node_exec(node, "sh", "-c", _ETC_HOSTS_STRIP)

        try:
            with every(poll_s, strip_once, "etc-hosts-unmanaged", errors):
                yield
        finally:
            for node in nodes:
                self._node_exec(node, "sh", "-c", _ETC_HOSTS_RESTORE)
        if len(errors) > 3:
            raise ClusterError(f"fault etc_hosts_unmanaged could not rewrite the pods' hosts files: {errors[-1]}")

    @contextlib.contextmanager
    def musl_search_limit(self, length: int = 300) -> Iterator[None]:
        """Give the nodes search domains that make pods' search line longer than 256 bytes: musl
        ignores such a line, glibc does not. Affects pods created while it holds."""
        labels: list[str] = []
        while sum(len(x) + 1 for x in labels) < length:
            labels.append(f"k8sdns-long-search-domain-{len(labels):02d}.example.test")

        def long_search(text: str) -> str:
            kept = "".join(line for line in text.splitlines(True) if not line.startswith(("search", "domain")))
            return kept + "search " + " ".join(labels) + "\n"

        with self._resolv_conf_held(long_search):
            yield

    @contextlib.contextmanager
    def upstream_slow(self, delay_ms: float = 300, image: str | None = None) -> Iterator[None]:
        """The upstream DNS server answers every query `delay_ms` late: a relay that holds each
        message (fixtures/upstream/slow_relay.py, in a container of the glibc probe image on kind's
        network; `image` is any image with python3, by default the first probe image the run loaded)
        stands in front of the test upstream, and CoreDNS forwards to it. Cluster names, which
        CoreDNS answers itself, are as fast as before."""
        name = f"{self.kind.name}-upstream-slow"
        relay = fixture_path("upstream")
        image = image or next(iter(self.kind.loaded_images), None)
        if image is None:
            raise ClusterError("upstream_slow needs an image with python3 for its relay: pass image=, e.g. the "
                               "glibc probe image")
        run_tool(["docker", "rm", "-f", name], option="--k8sdns-kind")
        try:
            run_tool(["docker", "run", "-d", "--name", name, "--network", "kind", "--label",
                      f"{CONTAINER_LABEL}={self.kind.name}", "-v", f"{relay}:/relay:ro", "--entrypoint", "python3",
                      image, "/relay/slow_relay.py", "0.0.0.0", self.kind.upstream_ip, f"{delay_ms:g}"],
                     option="--k8sdns-glibc-image")
            inspected = json.loads(run_tool(["docker", "inspect", name], option="--k8sdns-kind"))
            ip = inspected[0]["NetworkSettings"]["Networks"]["kind"]["IPAddress"]
            edit = editing("upstream_slow", self.coredns_config, lambda t: corefile.set_forward(t, [ip]))
            with edited(self.coredns_config, COREFILE, edit, settle=self.restart_coredns):
                yield
        finally:
            run_tool(["docker", "rm", "-f", name], option="--k8sdns-kind")

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
