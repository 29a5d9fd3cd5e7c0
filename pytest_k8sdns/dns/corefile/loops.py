"""Forwarding loops in a Corefile, judged by where each server block forwards: a loop needs a path
back to this same server. A forward is followed when its target is an address this server listens
on: a loopback address (a block without `bind` listens on every address of the pod), an address a
block binds, or a cluster DNS Service address (any of its spec.clusterIPs: each leads back to the
CoreDNS pods); and it reaches the blocks of this Corefile that serve that port and the forwarded
names. `/etc/resolv.conf` is followed through the node's nameservers when they are known.

A block that forwards to a loopback port no block serves talks to a sidecar: a warning, since this
Corefile alone cannot say where the sidecar sends its queries. A block that forwards to outside
addresses (a stub domain) needs no `loop` plugin."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pytest_k8sdns.dns.corefile.parser import (
    Directive,
    ServerBlock,
    is_placeholder,
    split_key,
)
from pytest_k8sdns.dns.resolvconf import is_loopback, nameservers_of, same_ip

ERROR = "error"
WARNING = "warning"
#: The plugins that send queries on (proxy: CoreDNS before 1.5)
FORWARDERS = ("forward", "proxy")
#: A forward target's default port by scheme
_PORTS = {"dns": "53", "tls": "853", "https": "443", "grpc": "443"}
RESOLV_CONF = "/etc/resolv.conf"
#: Host names every resolver maps to the loopback address
_LOCALHOST = ("localhost", "localhost.")
#: ... and those Debian's /etc/hosts (and so a node's, and kubelet's pod /etc/hosts) map to ::1
_LOCALHOST6 = ("ip6-localhost", "ip6-loopback")


@dataclass(frozen=True)
class Target:
    """One forward target as CoreDNS reads it."""

    text: str
    host: str  # an address, a host name, or a file path
    port: str

    @property
    def is_file(self) -> bool:
        return self.host.startswith("/") or self.host.startswith(".")

    @property
    def is_resolv_conf(self) -> bool:
        """The pod's /etc/resolv.conf: under dnsPolicy Default, its node's (other files are the pod's own)."""
        return self.host == RESOLV_CONF

    @property
    def address(self) -> str | None:
        """The target's IP address (`localhost` counts as 127.0.0.1, `ip6-localhost` as ::1), or None
        for a name or a file."""
        if self.host.lower() in _LOCALHOST or self.host.lower().endswith(".localhost"):
            return "127.0.0.1"
        if self.host.lower().rstrip(".") in _LOCALHOST6:
            return "::1"
        try:
            return str(ipaddress.ip_address(self.host.split("%", 1)[0]))
        except ValueError:
            return None


def target(text: str) -> Target:
    """``dns://127.0.0.1:5301`` -> (127.0.0.1, 5301); ``[::1]:53``; ``tls://1.1.1.1``; a file as is."""
    scheme, rest = ("dns", text)
    if "://" in text:
        scheme, rest = text.split("://", 1)
    port = _PORTS.get(scheme.lower(), "53")
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        return Target(text, host, after[1:] if after.startswith(":") else port)
    if rest.count(":") == 1:
        host, port = rest.split(":", 1)
        return Target(text, host, port)
    return Target(text, rest, port)


def forwards(block: ServerBlock) -> Iterator[Directive]:
    for d in block.directives:
        if d.name in FORWARDERS:
            yield d


def targets(directive: Directive) -> list[Target]:
    return [target(a) for a in directive.args[1:] if not is_placeholder(a)]


def _overlaps(a: str, b: str) -> bool:
    """One zone lies within the other: names of one can be asked of the other."""
    return a == b or a == "." or b == "." or a.endswith("." + b) or b.endswith("." + a)


@dataclass(frozen=True)
class _Listener:
    block: ServerBlock
    port: str
    binds: tuple[str, ...]  # empty: every address of the pod


def _listeners(blocks: Sequence[ServerBlock]) -> list[_Listener]:
    out = []
    for b in blocks:
        binds = tuple(a for d in b.find("bind") for a in d.args)
        for key in b.keys:
            out.append(_Listener(b, split_key(key)[1], binds))
    return out


def dns_addresses(cluster_dns_ip: str | Sequence[str] | None) -> tuple[str, ...]:
    """The cluster DNS Service's addresses as a tuple: one address, its spec.clusterIPs (a
    dual-stack kube-dns has an IPv4 and an IPv6 one), or none."""
    if cluster_dns_ip is None:
        return ()
    return (cluster_dns_ip,) if isinstance(cluster_dns_ip, str) else tuple(cluster_dns_ip)


class LoopGraph:
    """Which blocks a block's forwards reach, inside this Corefile."""

    def __init__(self, blocks: Sequence[ServerBlock], cluster_dns_ip: str | Sequence[str] | None = None,
                 node_nameservers: Sequence[str] = ()) -> None:
        self.blocks = list(blocks)
        self.cluster_dns_ips = dns_addresses(cluster_dns_ip)
        self.node_nameservers = list(node_nameservers)
        self._listeners = _listeners(blocks)

    def served(self, address: str, port: str) -> list[ServerBlock]:
        """The blocks that answer a query sent to address:port from inside the pod."""
        out: list[ServerBlock] = []
        for lst in self._listeners:
            if lst.port != port or lst.block in out:
                continue
            if lst.binds and not any(same_ip(b, "0.0.0.0") or same_ip(b, "::") for b in lst.binds):
                # compared as addresses: `bind ::1` takes [0:0::1]:53, `bind 127.0.0.1` ::ffff:127.0.0.1
                # (`bind 0.0.0.0` or `::` is every address, as no bind: Go listens on both families)
                hit = any(same_ip(address, b) for b in lst.binds)
            else:  # all addresses: loopback, the pod's own, and the cluster DNS Service in front of it
                hit = is_loopback(address) or any(same_ip(address, ip) for ip in self.cluster_dns_ips)
            if hit:
                out.append(lst.block)
        return out

    def addresses(self, t: Target) -> list[str]:
        """The addresses a target sends to: its own, or a resolv.conf file's (the node's nameservers)."""
        if t.is_file:
            return list(self.node_nameservers) if t.is_resolv_conf else []
        return [a] if (a := t.address) is not None else []

    def reached(self, block: ServerBlock) -> list[tuple[Target, ServerBlock]]:
        """(target, block of this Corefile it reaches) for every forward of `block`."""
        out = []
        for fwd in forwards(block):
            for t in targets(fwd):
                port = t.port if not t.is_file else "53"
                for address in self.addresses(t):
                    for other in self.served(address, port):
                        if any(_overlaps(z, y) for z in block.zones for y in other.zones):
                            out.append((t, other))
        return out

    def cycle_from(self, start: ServerBlock) -> list[ServerBlock] | None:
        """A path of blocks from `start` back to it, or None."""
        stack: list[tuple[ServerBlock, list[ServerBlock]]] = [(start, [start])]
        seen: set[int] = set()
        while stack:
            block, path = stack.pop()
            for _, nxt in self.reached(block):
                if nxt is start:
                    return path + [start]
                if id(nxt) not in seen:
                    seen.add(id(nxt))
                    stack.append((nxt, path + [nxt]))
        return None


def loop_findings(blocks: Sequence[ServerBlock], node_resolv_conf: str | None = None,
                  cluster_dns_ip: str | Sequence[str] | None = None) -> Iterator[tuple[str, str, str, ServerBlock]]:
    """(code, severity, message, block) for every forwarding loop, sidecar forward and unverifiable
    resolv.conf forward; rules.analyse turns them into Findings."""
    node_servers = nameservers_of(node_resolv_conf or "")
    graph = LoopGraph(blocks, cluster_dns_ip, node_servers)
    for block in blocks:
        label = block.label
        path = graph.cycle_from(block)
        reached = graph.reached(block)
        if path is not None:
            via = sorted({t.text for t, nxt in reached if nxt is path[1]})
            how = " -> ".join(f"`{b.label}`" for b in path)
            back = (f"the node's loopback nameserver {', '.join(s for s in node_servers if is_loopback(s))}"
                    if any(t.is_file for t, _ in reached) and any(is_loopback(s) for s in node_servers) else "")
            yield ("loopback-upstream", ERROR,
                   f"server block `{label}` forwards to {', '.join(via)}"
                   + (f" ({back})" if back else "")
                   + f", which is this CoreDNS again ({how}): a forwarding loop; forward to the upstream "
                   f"resolvers' IPs instead" + ("" if not any(t.is_file for t, _ in reached) else
                                                 ", or point kubelet resolvConf at the real upstream file "
                                                 "(e.g. /run/systemd/resolve/resolv.conf)"), block)
            if not block.has("loop"):
                yield ("no-loop-plugin", ERROR,
                       f"server block `{label}` forwards into a loop and has no `loop` plugin to detect it, so "
                       f"queries circle until they time out; add `loop` to the server block `{label}`", block)
        for fwd in forwards(block):
            for t in targets(fwd):
                address = t.address
                if t.is_resolv_conf:
                    loopback = [s for s in node_servers if is_loopback(s)]
                    yield ("forward-resolv-conf", ERROR if loopback else WARNING,
                           f"server block `{label}` forwards to {t.host}, which under dnsPolicy Default is the "
                           f"node's resolv.conf"
                           + (f" and lists loopback nameserver {', '.join(loopback)}" if loopback else "")
                           + "; forward to the upstream resolvers' IPs or point kubelet resolvConf at the real "
                           "upstream file, with no 127.0.0.0/8 or ::1 nameserver"
                           + ("" if block.has("loop") or loopback else
                              "; without a `loop` plugin in this block a loop through that file goes undetected"),
                           block)
                elif address is not None and is_loopback(address) and not graph.served(address, t.port):
                    yield ("loopback-sidecar", WARNING,
                           f"server block `{label}` forwards to {t.text}, a loopback port no block of this Corefile "
                           f"serves: a sidecar in the CoreDNS pod (or nothing); check that it does not forward "
                           f"back to CoreDNS", block)
                elif address is None and not t.is_file:
                    yield ("forward-hostname", WARNING,
                           f"server block `{label}` forwards to host name {t.host}: CoreDNS before 1.14.4 refuses "
                           f"to start (not an IP address or file), later versions resolve it once at start; "
                           f"forward to its IP address", block)
