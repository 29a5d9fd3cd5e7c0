"""Corefile analysis: findings with stable codes (loops, caching, NodeLocal's force_tcp, the cluster
zone), each naming the server block and the fix."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from pytest_k8sdns.dns.corefile.loops import forwards, loop_findings, target
from pytest_k8sdns.dns.corefile.parser import (
    CLUSTER_DOMAIN_PILLAR,
    Directive,
    ServerBlock,
    is_placeholder,
    parse,
    split_key,
)
from pytest_k8sdns.dns.corefile.refusals import parse_version, refusal_findings

ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One problem in a Corefile; ``code`` is stable, ``message`` says what, where and the fix."""

    code: str
    severity: str
    message: str
    server_block: str


def _forward_targets(directive: Directive) -> list[str]:
    return directive.args[1:]


def _in_zone(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


def _cache_findings(block: ServerBlock) -> Iterator[Finding]:
    forwarding = any(True for _ in forwards(block))
    if (forwarding or "." in block.zones) and not block.has("cache"):
        what = "forwards queries" if forwarding else "serves the root zone"
        yield Finding(
            "no-cache",
            WARNING,
            f"server block `{block.label}` {what} without `cache`, so every repeated query is resolved again; "
            f"add `cache 30` to the server block `{block.label}`",
            block.label,
        )


def _canon_zone(zone: str, cluster: str) -> str:
    """``zone``, with the NodeLocal template's cluster-domain placeholder read as ``cluster``."""
    return cluster if zone.rstrip(".").upper() == CLUSTER_DOMAIN_PILLAR else zone


def _nodelocal_findings(blocks: list[ServerBlock], cluster: str) -> Iterator[Finding]:
    # NodeLocal-style: a block for the cluster zone itself (not '.') that binds addresses and
    # forwards the zone to cluster DNS instead of serving it with the kubernetes plugin.
    def nodelocal_style(block: ServerBlock, zone_ok: bool) -> bool:
        return zone_ok and block.has("bind") and not block.has("kubernetes") and any(True for _ in forwards(block))

    cluster_blocks = [b for b in blocks if nodelocal_style(b, any(_canon_zone(z, cluster) == cluster for z in b.zones))]
    if not cluster_blocks:
        return
    reverse_blocks = [
        b
        for b in blocks
        if b not in cluster_blocks
        and nodelocal_style(b, any(z.endswith(("in-addr.arpa.", "ip6.arpa.")) for z in b.zones))
    ]
    for block, severity in [(b, ERROR) for b in cluster_blocks] + [(b, WARNING) for b in reverse_blocks]:
        for fwd in forwards(block):
            if fwd.has("force_tcp"):
                continue
            targets = " ".join(_forward_targets(fwd)) or "(no upstream)"
            yield Finding(
                "nodelocal-no-force-tcp",
                severity,
                f"NodeLocal server block `{block.label}` forwards to {targets} without `force_tcp`, so its queries "
                f"to cluster DNS go over UDP through kube-proxy's DNAT and conntrack again; add `force_tcp` inside "
                f"that `forward` block, as nodelocaldns.yaml does",
                block.label,
            )


def _kubernetes_zones(block: ServerBlock, directive: Directive) -> list[str]:
    # kubernetes [ZONES...]: with no zones it takes the server block's (plugin.OriginsFromArgsOrServerBlock).
    zones = [split_key(a)[0] for a in directive.args]
    return zones or block.zones


def _serving(blocks: list[ServerBlock], cluster: str) -> tuple[list[ServerBlock], Directive | None]:
    """The server blocks a query for the cluster domain goes to, and the kubernetes plugin there
    that serves it (None when none does)."""
    def covers(zone: str) -> bool:
        return _in_zone(cluster, _canon_zone(zone, cluster))

    # CoreDNS sends a query to the block with the longest matching zone on its port; the
    # kubernetes plugin there must also list a zone covering the cluster domain.
    by_port: dict[str, list[tuple[int, ServerBlock]]] = {}
    for b in blocks:
        for key in b.keys:
            zone, port = split_key(key)
            if covers(zone):
                by_port.setdefault(port, []).append((len(_canon_zone(zone, cluster)), b))
    routed: list[ServerBlock] = []
    for candidates in by_port.values():
        best = max(rank for rank, _ in candidates)
        routed.extend(b for rank, b in candidates if rank == best and b not in routed)
    for b in routed:
        for d in b.find("kubernetes"):
            if any(covers(z) for z in _kubernetes_zones(b, d)):
                return routed, d
    return routed, None


def pod_records_mode(text: str, cluster_domain: str = "cluster.local") -> str | None:
    """What the kubernetes plugin serving the cluster domain says of pod A records
    (`a-b-c-d.<ns>.pod.<domain>`): its `pods` option, `disabled` when it has none (CoreDNS's
    default); None when no kubernetes plugin serves the domain."""
    _, serving = _serving(parse(text), split_key(cluster_domain.strip())[0])
    if serving is None:
        return None
    modes = [o.args[0] for o in serving.find("pods") if o.args]
    return modes[-1] if modes else "disabled"


def _zone_findings(blocks: list[ServerBlock], cluster: str) -> Iterator[Finding]:
    k8s = [(b, d) for b in blocks for d in b.find("kubernetes")]
    if not k8s:
        return
    words = [k for b in blocks for k in b.keys] + [a for _, d in k8s for a in d.args]
    if any(is_placeholder(w) and CLUSTER_DOMAIN_PILLAR not in w.upper() for w in words):
        # An unfilled {$VAR} could be anything: no verdict.
        return

    routed, serving = _serving(blocks, cluster)
    if serving is not None:
        return
    plugin_zones = sorted({z for b, d in k8s for z in _kubernetes_zones(b, d)})
    shown = cluster.rstrip(".")
    where = routed[0].label if routed else k8s[0][0].label
    target = f"goes to server block `{where}`" if routed else "matches no server block"
    yield Finding(
        "zone-mismatch",
        ERROR,
        f"no `kubernetes` plugin serves the cluster domain `{shown}` (plugin zones: {' '.join(plugin_zones)}; "
        f"a query for it {target}); make the kubernetes plugin and its server block cover `{shown}`, "
        f"or run the suite with the cluster's real domain (kubelet --cluster-domain)",
        where,
    )


def analyse(
    text: str,
    node_resolv_conf: str | None = None,
    cluster_domain: str = "cluster.local",
    *,
    imports: Mapping[str, str] | None = None,
    cluster_dns_ip: str | Sequence[str] | None = None,
    coredns_version: str | None = None,
) -> list[Finding]:
    """Findings for a Corefile, grouped by check; raise ConfigError if it does not parse.

    ``node_resolv_conf`` is the resolv.conf text CoreDNS inherits (a node's, under dnsPolicy
    Default); with it, a ``forward . /etc/resolv.conf`` to a loopback stub is an error.
    ``cluster_dns_ip`` is the cluster DNS Service's address, or all of them (its spec.clusterIPs:
    a dual-stack kube-dns has an IPv4 and an IPv6 one): CoreDNS forwarding to any is a loop.
    ``coredns_version`` (an image tag will do) dates the plugins and options CoreDNS removed.
    """
    blocks = parse(text, imports)
    cluster = split_key(cluster_domain.strip())[0]
    found = [*refusal_findings(blocks, parse_version(coredns_version)),
             *loop_findings(blocks, node_resolv_conf, cluster_dns_ip)]
    findings: list[Finding] = [Finding(code, severity, message, block.label) for code, severity, message, block in found]
    for block in blocks:
        findings.extend(_cache_findings(block))
    findings.extend(_nodelocal_findings(blocks, cluster))
    findings.extend(_zone_findings(blocks, cluster))
    return findings


def forward_hosts(text: str, zone: str) -> list[str]:
    """The hosts a server block for `zone` forwards to, in order (``dns://10.0.0.10:53`` ->
    ``10.0.0.10``; a resolv.conf path stays as written); empty when no block serves that zone."""
    zone = zone.rstrip(".").lower() + "."
    return [target(t).host for block in parse(text) if zone in block.zones for fwd in forwards(block)
            for t in _forward_targets(fwd)]


def forwards_to_resolv_conf(text: str) -> bool:
    """True when a server block forwards to /etc/resolv.conf: CoreDNS then inherits its node's
    nameservers (under dnsPolicy Default), and a loopback one there makes a loop."""
    return any(target(t).is_resolv_conf for block in parse(text) for fwd in forwards(block)
               for t in _forward_targets(fwd))
