"""Corefile parser and analyser: server blocks, plugins, and findings with stable codes."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.dns.resolver import is_loopback, nameservers_of

ERROR = "error"
WARNING = "warning"
INFO = "info"

# The NodeLocal template (kubernetes cluster/addons/dns/nodelocaldns/nodelocaldns.yaml) holds
# __PILLAR__X__ words that node-cache fills in; CoreDNS itself fills {$VAR} and {%VAR%}.
_PILLAR = re.compile(r"__PILLAR__[A-Z0-9_]*__")
_CLUSTER_DOMAIN_PILLAR = "__PILLAR__DNS__DOMAIN__"
_DEFAULT_PORTS = {"dns": "53", "tls": "853", "quic": "853", "grpc": "443", "https": "443", "https3": "443"}
_FORWARDERS = ("forward", "proxy")
# Snippets may import snippets; the bound stops a cycle (coredns/caddy caddyfile/parse.go
# caps expansions at 1000 for the same reason).
_MAX_EXPANSIONS = 1000


@dataclass(frozen=True)
class Directive:
    """One plugin line: ``name args... { nested directives }``."""

    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)
    line: int = 0

    def find(self, name: str) -> list[Directive]:
        """The nested directives called ``name``."""
        return [d for d in self.block if d.name == name]

    def has(self, name: str) -> bool:
        return any(d.name == name for d in self.block)


@dataclass(frozen=True)
class ServerBlock:
    """A server block: its keys (``.:53``, ``cluster.local in-addr.arpa``) and its plugins."""

    keys: list[str]
    directives: list[Directive]
    line: int = 0

    @property
    def label(self) -> str:
        return " ".join(self.keys)

    @property
    def zones(self) -> list[str]:
        """The keys' zones, lower-case and absolute (``.``, ``cluster.local.``)."""
        return [split_key(k)[0] for k in self.keys]

    def find(self, name: str) -> list[Directive]:
        """The top-level directives called ``name``."""
        return [d for d in self.directives if d.name == name]

    def has(self, name: str) -> bool:
        return any(d.name == name for d in self.directives)


@dataclass(frozen=True)
class Finding:
    """One problem in a Corefile; ``code`` is stable, ``message`` says what, where and the fix."""

    code: str
    severity: str
    message: str
    server_block: str


@dataclass(frozen=True)
class _Token:
    text: str
    line: int
    end_line: int
    src: str
    starts_line: bool = False


def _at(tok: _Token) -> str:
    """Where a token came from, for error messages: ``Corefile line 3`` or an imported file's."""
    return f"{tok.src or 'Corefile'} line {tok.line}"


def is_placeholder(text: str) -> bool:
    """True for words that are filled in later: ``{$VAR}``, ``{%VAR%}``, ``__PILLAR__X__``."""
    return "{$" in text or "{%" in text or bool(_PILLAR.search(text))


def split_key(key: str) -> tuple[str, str]:
    """A server block key as (zone, port): ``dns://.:53`` -> (``.``, ``53``)."""
    scheme = "dns"
    if "://" in key:
        scheme, key = key.split("://", 1)
    port = _DEFAULT_PORTS.get(scheme.lower(), "53")
    if ":" in key:
        key, port = key.rsplit(":", 1)
    zone = key.lower() or "."
    if zone != "." and not zone.endswith("."):
        zone += "."
    return zone, port


def _lex(text: str, src: str = "") -> list[_Token]:
    # The Caddyfile rules coredns/caddy caddyfile/lexer.go implements: words split on
    # whitespace, "..." quotes (only \" is an escape), '#' outside quotes ends the line.
    tokens: list[_Token] = []
    line = 1
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch == '"':
            start = line
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    where = f"{src or 'Corefile'} line {start}"
                    raise ConfigError(f"{where}: quoted string is never closed; add the closing '\"'")
                ch = text[i]
                if ch == "\\" and i + 1 < n and text[i + 1] == '"':
                    chars.append('"')
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                if ch == "\n":
                    line += 1
                chars.append(ch)
                i += 1
            tokens.append(_Token("".join(chars), start, line, src))
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] != "#":
                j += 1
            tokens.append(_Token(text[i:j], line, line, src))
            i = j
    return tokens


class _Parser:
    def __init__(self, text: str, imports: Mapping[str, str]) -> None:
        self.tokens = _lex(text)
        self.pos = 0
        self.imports = imports
        self.snippets: dict[str, list[_Token]] = {}
        self.expansions = 0

    # -- token stream ---------------------------------------------------------------
    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def new_line(self, at: int) -> bool:
        """Whether the token at ``at`` starts a line (coredns/caddy Dispenser.isNewLine)."""
        if at == 0:
            return True
        tok, prev = self.tokens[at], self.tokens[at - 1]
        return tok.starts_line or prev.src != tok.src or prev.end_line < tok.line

    def splice(self, tokens: list[_Token], at: _Token) -> None:
        self.expansions += 1
        if self.expansions > _MAX_EXPANSIONS:
            raise ConfigError(f"{_at(at)}: imports expand without end (a snippet imports itself?); break the cycle")
        if tokens:
            tokens = [_Token(tokens[0].text, tokens[0].line, tokens[0].end_line, tokens[0].src, True), *tokens[1:]]
        self.tokens[self.pos:self.pos] = tokens

    def do_import(self, tok: _Token) -> Directive | None:
        """Splice in a snippet or a given file; an unknown file is kept as an ``import`` directive."""
        if self.peek() is None or self.new_line(self.pos):
            raise ConfigError(f"{_at(tok)}: `import` needs a snippet name or file pattern")
        pattern = self.take().text
        if pattern in self.snippets:
            self.splice(self.snippets[pattern], tok)
            return None
        # A relative pattern is relative to the Corefile's folder, which we do not know: let it
        # match any folder. (fnmatch's '*' also crosses '/', unlike Go's filepath.Glob.)
        patterns = [pattern] if pattern.startswith("/") else [pattern, "*/" + pattern]
        matches = sorted(name for name in self.imports if any(fnmatch.fnmatchcase(name, p) for p in patterns))
        if matches:
            spliced: list[_Token] = []
            for name in matches:
                spliced.extend(_lex(self.imports[name], src=name))
            self.splice(spliced, tok)
            return None
        return Directive("import", [pattern], [], tok.line)

    # -- grammar ----------------------------------------------------------------------
    def body(self, opened: _Token | None) -> list[Directive]:
        """Directives up to the matching '}' (or end of text when ``opened`` is None)."""
        out: list[Directive] = []
        while True:
            tok = self.peek()
            if tok is None:
                if opened is not None:
                    raise ConfigError(f"{_at(opened)}: '{{' is never closed; add the matching '}}'")
                return out
            at = self.pos
            self.take()
            if tok.text == "}":
                if opened is None:
                    raise ConfigError(f"{_at(tok)}: '}}' has no matching '{{'; check the braces")
                return out
            if tok.text == "{":
                raise ConfigError(
                    f"{_at(tok)}: '{{' must be on the line of the plugin or key it opens"
                )
            if tok.text == "import" and self.new_line(at):
                kept = self.do_import(tok)
                if kept is not None:
                    out.append(kept)
                continue
            out.append(self.directive(tok))

    def directive(self, first: _Token) -> Directive:
        args: list[str] = []
        block: list[Directive] = []
        while True:
            tok = self.peek()
            # A '}' on the same line closes the enclosing block (CoreDNS wants a newline
            # there, but reading it is harmless and keeps one-line blocks parseable).
            if tok is None or self.new_line(self.pos) or tok.text == "}":
                return Directive(first.text, args, block, first.line)
            self.take()
            if tok.text == "{":
                block.extend(self.body(tok))
            else:
                args.append(tok.text)

    def keys(self) -> tuple[list[str], _Token]:
        first = self.take()
        found: list[str] = []
        tok: _Token | None = first
        more = False
        while tok is not None and tok.text != "{":
            if tok.text == "}":
                raise ConfigError(f"{_at(tok)}: '}}' has no matching '{{'; check the braces")
            text = tok.text
            more = text.endswith(",")
            text = text.rstrip(",")
            if text:
                found.append(text)
            if self.peek() is None or (not more and self.new_line(self.pos)):
                break
            tok = self.take()
            if tok.text == "{":
                self.pos -= 1
                break
        if more:
            raise ConfigError(f"{_at(first)}: a server block key ends with ',' but no key follows")
        return found, first

    def parse(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while (tok := self.peek()) is not None:
            if tok.text == "import" and self.new_line(self.pos):
                self.take()
                # A file import at top level brings whole server blocks; one that matches
                # none of the given files is skipped, as CoreDNS skips an empty glob.
                self.do_import(tok)
                continue
            if tok.text == "}":
                raise ConfigError(f"{_at(tok)}: '}}' has no matching '{{'; check the braces")
            if tok.text == "{":
                raise ConfigError(f"{_at(tok)}: '{{' opens a server block with no key; add one (.:53)")
            keys, first = self.keys()
            opener = self.peek()
            if len(keys) == 1 and keys[0].startswith("(") and keys[0].endswith(")"):
                self.snippet(keys[0][1:-1], first)
                continue
            if opener is not None and opener.text == "{":
                self.take()
                directives = self.body(opener)
            else:
                directives = self.body(None)
            blocks.append(ServerBlock(keys, directives, first.line))
        return blocks

    def snippet(self, name: str, first: _Token) -> None:
        opener = self.peek()
        if opener is None or opener.text != "{":
            raise ConfigError(f"{_at(first)}: snippet ({name}) needs a '{{' block")
        if name in self.snippets:
            raise ConfigError(f"{_at(first)}: snippet ({name}) is declared twice; rename one")
        self.take()
        nesting = 1
        tokens: list[_Token] = []
        while (tok := self.peek()) is not None:
            self.take()
            if tok.text == "{":
                nesting += 1
            elif tok.text == "}":
                nesting -= 1
                if nesting == 0:
                    self.snippets[name] = tokens
                    return
            tokens.append(tok)
        raise ConfigError(f"{_at(opener)}: '{{' of snippet ({name}) is never closed; add '}}'")


def parse(text: str, imports: Mapping[str, str] | None = None) -> list[ServerBlock]:
    """Parse a Corefile into server blocks; raise ConfigError (with the line) if malformed.

    Snippets are expanded. ``imports`` maps file names to their text (say the keys of AKS's
    ``coredns-custom`` ConfigMap mounted under /etc/coredns/custom): an ``import`` whose pattern
    matches some of them is expanded; one inside a block that matches none is kept as an
    ``import`` directive. Placeholders (``{$VAR}``, ``__PILLAR__X__``) are kept verbatim.
    """
    return _Parser(text, imports or {}).parse()


# -- analysis -----------------------------------------------------------------------------


def _upstream_host(target: str) -> str:
    """The host part of a forward target: ``dns://127.0.0.1:53`` -> ``127.0.0.1``."""
    if "://" in target:
        target = target.split("://", 1)[1]
    if target.startswith("["):
        return target[1:].split("]", 1)[0]
    if target.count(":") == 1:
        return target.split(":", 1)[0]
    return target


def _forward_targets(directive: Directive) -> list[str]:
    return directive.args[1:]


def _in_zone(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


def _forwards(block: ServerBlock) -> Iterator[Directive]:
    for d in block.directives:
        if d.name in _FORWARDERS:
            yield d


def _loop_findings(block: ServerBlock, node_resolv_conf: str | None) -> Iterator[Finding]:
    label = block.label
    forwards = list(_forwards(block))
    if forwards and not block.has("loop"):
        yield Finding(
            "no-loop-plugin",
            ERROR,
            f"server block `{label}` forwards queries but has no `loop` plugin, so a forwarding loop would "
            f"go undetected and queries circle until they time out; add `loop` to the server block `{label}`",
            label,
        )
    node_loopback = [ns for ns in nameservers_of(node_resolv_conf or "") if is_loopback(ns)]
    for fwd in forwards:
        for target in _forward_targets(fwd):
            if is_placeholder(target):
                continue
            if target == "/etc/resolv.conf":
                if node_loopback:
                    servers = ", ".join(node_loopback)
                    yield Finding(
                        "loopback-upstream",
                        ERROR,
                        f"server block `{label}` forwards to /etc/resolv.conf, whose nameserver {servers} is a "
                        f"loopback address: from the CoreDNS pod that is CoreDNS itself, a forwarding loop; "
                        f"forward to the upstream resolvers' IPs or point kubelet resolvConf at the real "
                        f"upstream file (e.g. /run/systemd/resolve/resolv.conf)",
                        label,
                    )
                yield Finding(
                    "forward-resolv-conf",
                    ERROR if node_loopback else WARNING,
                    f"server block `{label}` forwards to /etc/resolv.conf, which under dnsPolicy Default is the "
                    f"node's resolv.conf"
                    + (f" and lists loopback nameserver {', '.join(node_loopback)}" if node_loopback else "")
                    + "; forward to the upstream resolvers' IPs or point kubelet resolvConf at the real "
                    "upstream file, with no 127.0.0.0/8 or ::1 nameserver",
                    label,
                )
            elif is_loopback(_upstream_host(target)):
                yield Finding(
                    "loopback-upstream",
                    ERROR,
                    f"server block `{label}` forwards to {target}, a loopback address: from the CoreDNS pod that "
                    f"is CoreDNS itself, a forwarding loop; forward to the upstream resolvers' IPs instead",
                    label,
                )


def _cache_findings(block: ServerBlock) -> Iterator[Finding]:
    forwards = any(True for _ in _forwards(block))
    if (forwards or "." in block.zones) and not block.has("cache"):
        what = "forwards queries" if forwards else "serves the root zone"
        yield Finding(
            "no-cache",
            WARNING,
            f"server block `{block.label}` {what} without `cache`, so every repeated query is resolved again; "
            f"add `cache 30` to the server block `{block.label}`",
            block.label,
        )


def _canon_zone(zone: str, cluster: str) -> str:
    """``zone``, with the NodeLocal template's cluster-domain placeholder read as ``cluster``."""
    return cluster if zone.rstrip(".").upper() == _CLUSTER_DOMAIN_PILLAR else zone


def _nodelocal_findings(blocks: list[ServerBlock], cluster: str) -> Iterator[Finding]:
    # NodeLocal-style: a block for the cluster zone itself (not '.') that binds addresses and
    # forwards the zone to cluster DNS instead of serving it with the kubernetes plugin.
    def nodelocal_style(block: ServerBlock, zone_ok: bool) -> bool:
        return zone_ok and block.has("bind") and not block.has("kubernetes") and any(True for _ in _forwards(block))

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
        for fwd in _forwards(block):
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


def _zone_findings(blocks: list[ServerBlock], cluster: str) -> Iterator[Finding]:
    k8s = [(b, d) for b in blocks for d in b.find("kubernetes")]
    if not k8s:
        return
    words = [k for b in blocks for k in b.keys] + [a for _, d in k8s for a in d.args]
    if any(is_placeholder(w) and _CLUSTER_DOMAIN_PILLAR not in w.upper() for w in words):
        # An unfilled {$VAR} could be anything: no verdict.
        return

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
) -> list[Finding]:
    """Findings for a Corefile, grouped by check; raise ConfigError if it does not parse.

    ``node_resolv_conf`` is the resolv.conf text CoreDNS inherits (a node's, under dnsPolicy
    Default); with it, a ``forward . /etc/resolv.conf`` to a loopback stub is an error.
    """
    blocks = parse(text, imports)
    cluster = split_key(cluster_domain.strip())[0]
    findings: list[Finding] = []
    for block in blocks:
        findings.extend(_loop_findings(block, node_resolv_conf))
        findings.extend(_cache_findings(block))
    findings.extend(_nodelocal_findings(blocks, cluster))
    findings.extend(_zone_findings(blocks, cluster))
    return findings
