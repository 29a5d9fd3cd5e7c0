"""Corefiles CoreDNS refuses to start with, found from the text alone. Each finding quotes the
error CoreDNS prints (read from its plugin setup code, v1.14) and names the fix. A pod already
running keeps its old configuration when `reload` cannot load the new one, so a refused Corefile in
the ConfigMap is an outage at the next pod restart.

Where the refusal came with a CoreDNS version (a removed plugin or option), a known older version
is not blamed, and an unknown one is warned about rather than failed."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from pytest_k8sdns.dns.corefile.parser import ServerBlock, is_placeholder, split_key

ERROR = "error"
WARNING = "warning"
Version = tuple[int, int, int]

#: The directives of CoreDNS's default build (plugin.cfg, v1.14), plus `proxy` and `federation`
#: for the older versions that had them
DIRECTIVES = frozenset((
    "root metadata geoip cancel proxyproto quic grpc_server https https3 timeouts multisocket reload nsid "
    "bufsize bind debug trace ready health pprof shed prometheus errors log dnstap local dns64 any chaos "
    "loadbalance tsig rewrite autopath acl cache header dnssec tls minimal template transfer hosts route53 "
    "azure clouddns k8s_external kubernetes file auto secondary etcd loop forward grpc erratic whoami on "
    "sign view nomad import").split())
#: plugins moved out of the default build, and the first version without them
REMOVED_PLUGINS: dict[str, Version] = {"proxy": (1, 5, 0), "federation": (1, 6, 3)}
#: plugins that refuse a second stanza in one server block (plugin.ErrOnce)
ONCE = ("kubernetes", "cache", "errors", "hosts", "loop", "prometheus", "ready")
#: the kubernetes plugin's options (setup.go ParseStanza), and the ones removed, with the version
KUBERNETES_OPTIONS = frozenset((
    "endpoint_pod_names pods namespaces endpoint tls labels namespace_labels fallthrough ttl noendpoints "
    "zonal ignore kubeconfig multicluster startup_timeout apiserver_qps apiserver_burst "
    "apiserver_max_inflight").split())
REMOVED_KUBERNETES_OPTIONS: dict[str, Version] = {"upstream": (1, 7, 0), "resyncperiod": (1, 7, 0),
                                                   "transfer": (1, 8, 0)}
FORWARD_SCHEMES = ("dns", "tls", "https")
MAX_FORWARD_TOS = 15
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def parse_version(text: str | None) -> Version | None:
    """``v1.11.1`` or ``1.12.1-eks-...`` -> (1, 11, 1); None when the text holds no version."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def _since(removed: Version, version: Version | None) -> str | None:
    """ERROR when the running version has the removal, WARNING when it is unknown, None if older."""
    if version is None:
        return WARNING
    return ERROR if version >= removed else None


def _v(version: Version) -> str:
    return ".".join(map(str, version))


def _duration_ok(word: str) -> bool:
    return is_placeholder(word) or bool(_DURATION.match(word)) or word == "0"


Refusal = tuple[str, str, str, ServerBlock]


def _directive_findings(block: ServerBlock, version: Version | None) -> Iterator[Refusal]:
    label = block.label
    for d in block.directives:
        if d.name in DIRECTIVES:
            continue
        removed = REMOVED_PLUGINS.get(d.name)
        if removed is not None:
            severity = _since(removed, version)
            if severity:
                yield ("unknown-directive", severity,
                       f"server block `{label}` uses `{d.name}`, which CoreDNS dropped in {_v(removed)}: it refuses "
                       f"to start with \"Unknown directive '{d.name}'\"; use `forward`"
                       + ("" if d.name == "proxy" else " or remove it"), block)
        else:
            yield ("unknown-directive", WARNING,
                   f"server block `{label}` uses `{d.name}`, not a plugin of CoreDNS's default build: a standard "
                   f"build refuses to start (\"Unknown directive '{d.name}'\"); fine if your CoreDNS is built with it",
                   block)
    for name in ONCE:
        if len(block.find(name)) > 1:
            yield ("plugin-twice", ERROR,
                   f"server block `{label}` has `{name}` {len(block.find(name))} times: CoreDNS refuses to start "
                   f"(\"plugin/{name}: this plugin can only be used once per Server Block\"); merge them into one",
                   block)


def _kubernetes_findings(block: ServerBlock, version: Version | None) -> Iterator[Refusal]:
    label = block.label
    for k in block.find("kubernetes"):
        for opt in k.block:
            removed = REMOVED_KUBERNETES_OPTIONS.get(opt.name)
            if removed is not None:
                severity = _since(removed, version)
                if severity:
                    yield ("unknown-property", severity,
                           f"server block `{label}`: kubernetes option `{opt.name}` was removed in CoreDNS "
                           f"{_v(removed)}, which refuses to start (\"unknown property '{opt.name}'\"); delete it",
                           block)
            elif opt.name not in KUBERNETES_OPTIONS:
                yield ("unknown-property", ERROR,
                       f"server block `{label}`: kubernetes has no option `{opt.name}`: CoreDNS refuses to start "
                       f"(\"unknown property '{opt.name}'\")", block)
            elif opt.name == "pods" and opt.args and opt.args[0] not in ("disabled", "verified", "insecure") \
                    and not is_placeholder(opt.args[0]):
                yield ("bad-value", ERROR,
                       f"server block `{label}`: `pods {opt.args[0]}`: CoreDNS refuses to start (\"wrong value for "
                       f"pods\"); use disabled, verified or insecure", block)
            elif opt.name == "ttl" and opt.args and not is_placeholder(opt.args[0]) and \
                    not (opt.args[0].isdigit() and 0 <= int(opt.args[0]) <= 3600):
                yield ("bad-value", ERROR,
                       f"server block `{label}`: kubernetes `ttl {opt.args[0]}`: CoreDNS refuses to start (it must "
                       f"be a whole number of seconds in [0, 3600])", block)


def _forward_findings(block: ServerBlock) -> Iterator[Refusal]:
    label = block.label
    for fwd in (d for d in block.directives if d.name == "forward"):
        tos = fwd.args[1:]
        if not tos:
            yield ("forward-args", ERROR,
                   f"server block `{label}`: `forward {' '.join(fwd.args)}` names no upstream: CoreDNS refuses to "
                   f"start (\"Wrong argument count\"); write `forward FROM TO...`, e.g. `forward . 10.0.0.2`", block)
            continue
        if len(tos) > MAX_FORWARD_TOS:
            yield ("forward-args", ERROR,
                   f"server block `{label}` forwards to {len(tos)} upstreams: CoreDNS refuses to start "
                   f"(\"more than {MAX_FORWARD_TOS} TOs configured\"); keep at most {MAX_FORWARD_TOS}", block)
        for to in tos:
            scheme = to.split("://", 1)[0].lower() if "://" in to else "dns"
            if scheme not in FORWARD_SCHEMES and not is_placeholder(to):
                yield ("forward-args", ERROR,
                       f"server block `{label}` forwards to {to}: CoreDNS refuses to start (\"'{scheme}' is not "
                       f"supported as a destination protocol in forward\"); use dns://, tls:// or https://", block)
        for opt in fwd.block:
            if opt.name in ("health_check", "expire", "max_age") and opt.args and not _duration_ok(opt.args[0]):
                yield ("duration-without-unit", ERROR,
                       f"server block `{label}`: forward `{opt.name} {opt.args[0]}`: CoreDNS refuses to start (\"time: "
                       f"missing unit in duration\"); write e.g. `{opt.name} {opt.args[0]}s`", block)


#: how a `rewrite name` rule of three or more words must begin (plugin/rewrite/name.go)
NAME_MATCH_TYPES = ("exact", "prefix", "suffix", "substring", "regex")
#: the first version that takes more than one `forward` in a server block
MULTI_FORWARD: Version = (1, 9, 4)


def _rewrite_findings(block: ServerBlock) -> Iterator[Refusal]:
    label = block.label
    for r in block.find("rewrite"):
        rule = list(r.args)
        if rule and rule[0].lower() in ("stop", "continue"):
            rule = rule[1:]
        if not rule or rule[0].lower() != "name" or any(is_placeholder(w) for w in rule):
            continue  # the block form (`rewrite stop { ... }`) and the other rule types are not judged
        words = rule[1:]
        if len(words) < 2:
            why = "too few arguments for a name rule"
        elif len(words) >= 3 and words[0].lower() not in NAME_MATCH_TYPES:
            why = (f"name rule supports only exact, prefix, suffix, substring, and regex name matching, received: "
                   f"{words[0]}")
        else:
            continue
        yield ("rewrite-args", ERROR,
               f"server block `{label}`: `rewrite {' '.join(r.args)}`: CoreDNS refuses to start (\"plugin/rewrite: "
               f"{why}\"); write `rewrite [stop|continue] name [exact|prefix|suffix|substring|regex] FROM TO`", block)


def _forward_zone_findings(block: ServerBlock, version: Version | None) -> Iterator[Refusal]:
    label = block.label
    fwds = [d for d in block.directives if d.name == "forward"]
    if len(fwds) > 1 and version is not None and version < MULTI_FORWARD:
        yield ("plugin-twice", ERROR,
               f"server block `{label}` has `forward` {len(fwds)} times: CoreDNS {_v(version)} refuses to start "
               f"(\"plugin/forward: this plugin can only be used once per Server Block\"; allowed from "
               f"{_v(MULTI_FORWARD)}); merge them or upgrade", block)
    for fwd in fwds:
        if not fwd.args or is_placeholder(fwd.args[0]):
            continue
        origin = split_key(fwd.args[0])[0]
        if origin != "." and not any(z == "." or origin == z or origin.endswith("." + z) for z in block.zones):
            yield ("forward-outside-zone", WARNING,
                   f"server block `{label}`: `forward {fwd.args[0]} ...` forwards a zone outside the block's "
                   f"({' '.join(block.zones)}), so it never matches and the block's queries end in SERVFAIL; "
                   f"forward `.` here, or move it into a block for {origin}", block)


def _address_findings(block: ServerBlock) -> Iterator[Refusal]:
    label = block.label
    for name in ("health", "ready", "prometheus"):
        for d in block.find(name):
            if d.args and d.args[0].isdigit():
                yield ("address-without-port", ERROR,
                       f"server block `{label}`: `{name} {d.args[0]}`: CoreDNS refuses to start (\"address "
                       f"{d.args[0]}: missing port in address\"); write `{name} :{d.args[0]}`", block)
    for h in block.find("health"):
        for opt in h.find("lameduck"):
            if opt.args and not _duration_ok(opt.args[0]):
                yield ("duration-without-unit", ERROR,
                       f"server block `{label}`: `lameduck {opt.args[0]}`: CoreDNS refuses to start (\"time: missing "
                       f"unit in duration\"); write e.g. `lameduck {opt.args[0]}s`", block)
    for r in block.find("reload"):
        if r.args and not _duration_ok(r.args[0]):
            yield ("duration-without-unit", ERROR,
                   f"server block `{label}`: `reload {r.args[0]}`: CoreDNS refuses to start (\"time: missing unit in "
                   f"duration\"); write e.g. `reload {r.args[0]}s`", block)


def _cache_refusals(block: ServerBlock) -> Iterator[Refusal]:
    label = block.label
    for c in block.find("cache"):
        first = c.args[0] if c.args else None
        if first is not None and re.fullmatch(r"-?\d+", first) and int(first) <= 0:
            yield ("bad-value", ERROR,
                   f"server block `{label}`: `cache {first}`: CoreDNS refuses to start (\"cache TTL can not be zero "
                   f"or negative\"); give a positive number of seconds", block)
        elif first is not None and _DURATION.match(first) and not first.isdigit():
            yield ("cache-zone", WARNING,
                   f"server block `{label}`: `cache {first}` reads `{first}` as a zone to cache, not a TTL, so "
                   f"nothing of this block is cached; write `cache {first.rstrip('smh')}` (seconds)", block)
        for opt in c.block:
            if opt.name in ("success", "denial") and len(opt.args) >= 2 and re.fullmatch(r"-?\d+", opt.args[1]) \
                    and int(opt.args[1]) <= 0:
                yield ("bad-value", ERROR,
                       f"server block `{label}`: cache `{opt.name} {' '.join(opt.args)}`: CoreDNS refuses to start "
                       f"(\"cache TTL can not be zero or negative\")", block)


def _server_findings(blocks: Sequence[ServerBlock]) -> Iterator[Refusal]:
    """The same zone and port twice, or once bound to an address and once to all of them."""
    seen: dict[tuple[str, str, str], list[tuple[tuple[str, ...], ServerBlock]]] = {}
    for b in blocks:
        binds = tuple(sorted(a for d in b.find("bind") for a in d.args))
        for key in b.keys:
            scheme = key.split("://", 1)[0].lower() if "://" in key else "dns"
            zone, port = split_key(key)
            if is_placeholder(key):
                continue
            seen.setdefault((scheme, zone, port), []).append((binds, b))
    for (scheme, zone, port), found in seen.items():
        for i, (binds, b) in enumerate(found):
            for other_binds, other in found[:i]:
                where = f"{scheme}://{zone}:{port}"
                if binds == other_binds or set(binds) & set(other_binds):
                    yield ("duplicate-zone", ERROR,
                           f"server blocks `{other.label}` and `{b.label}` both serve {where}: CoreDNS refuses to "
                           f"start (\"cannot serve {where} - it is already defined\"); merge them", b)
                elif not binds or not other_binds:
                    yield ("zone-overlap", ERROR,
                           f"server blocks `{other.label}` and `{b.label}` both serve {where}, one bound to an address "
                           f"and one to all: CoreDNS refuses to start (\"zone overlap listener capacity\"); give both "
                           f"a `bind`, or merge them", b)


def refusal_findings(blocks: Sequence[ServerBlock], version: Version | None = None) -> Iterator[Refusal]:
    """(code, severity, message, block) for every reason CoreDNS would refuse this Corefile."""
    yield from _server_findings(blocks)
    for block in blocks:
        yield from _directive_findings(block, version)
        yield from _kubernetes_findings(block, version)
        yield from _forward_findings(block)
        yield from _forward_zone_findings(block, version)
        yield from _rewrite_findings(block)
        yield from _address_findings(block)
        yield from _cache_refusals(block)

