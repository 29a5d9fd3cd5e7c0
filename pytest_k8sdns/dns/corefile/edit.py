"""Edit a Corefile through its parse, not with text patterns: find the server block and the plugin,
change their words, and get the text back with everything else (comments, snippets, imports) as
it was. Each edit raises a one-line ConfigError naming the block or plugin it could not find."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_k8sdns.dns.corefile.parser import (
    Directive,
    ServerBlock,
    Span,
    parse_literal,
    split_key,
)
from pytest_k8sdns.errors import ConfigError

_REVERSE = ("in-addr.arpa.", "ip6.arpa.")


def is_reverse_zone(zone: str) -> bool:
    """True for in-addr.arpa / ip6.arpa and zones under them."""
    return split_key(zone)[0].endswith(_REVERSE)


def _matches(block: ServerBlock, which: str) -> bool:
    # "cluster.local" matches every key of that zone, "cluster.local:53" only the one on that port
    zone, port = split_key(which)
    with_port = ":" in which.split("://", 1)[-1]
    return any(split_key(k) == (zone, port) if with_port else split_key(k)[0] == zone for k in block.keys)


def server_block(text: str, which: str = ".") -> ServerBlock:
    """The one server block serving `which` (a zone such as `.` or `cluster.local`, or a key with its
    port), read literally."""
    blocks = parse_literal(text)
    found = [b for b in blocks if _matches(b, which)]
    if len(found) > 1:
        raise ConfigError(f"several server blocks serve `{which}` ({', '.join(b.label for b in found)}); "
                          f"name the one to edit by its key with the port")
    if not found:
        labels = ", ".join(f"`{b.label}`" for b in blocks) or "none"
        raise ConfigError(f"the Corefile has no server block for `{which}` (its blocks: {labels}); "
                          f"name one of those")
    return found[0]


def plugin(text: str, name: str, *, block: str = ".", first_arg: str | None = None) -> Directive:
    """The `name` plugin of a server block (the one whose first argument is `first_arg`, if given:
    `forward .`), as written there."""
    sb = server_block(text, block)
    found = [d for d in sb.directives if d.name == name and (first_arg is None or d.args[:1] == [first_arg])]
    if not found:
        what = f"`{name} {first_arg}`" if first_arg else f"`{name}`"
        # a plugin that comes from a snippet is not written in the block, and is edited in the snippet
        imported = [" ".join(d.args) for d in sb.directives if d.name == "import"]
        also = f" (it imports {', '.join(imported)}: edit the plugin where it is written)" if imported else ""
        raise ConfigError(f"server block `{sb.label}` has no {what} plugin{also}; add it, or edit a block that has it")
    return found[0]


def _span(d: Directive) -> Span:
    assert d.span is not None, "directives from parse_literal carry their span"
    return d.span


def _word(word: str) -> str:
    """A word as the Corefile must write it: quoted when it holds what would split it."""
    if word and word not in ("{", "}") and not any(c.isspace() or c in '"#' for c in word):
        return word
    return '"' + word.replace('"', '\\"') + '"'


def _checked(text: str) -> str:
    parse_literal(text)  # an edit never leaves a Corefile CoreDNS would refuse to read
    return text


def _set_args(text: str, d: Directive, kept: int, words: Sequence[str]) -> str:
    """Replace the arguments of `d` after its first `kept` ones with `words`."""
    sp = _span(d)
    if len(sp.args) < kept:
        raise ConfigError(f"`{d.name}` on Corefile line {d.line} has fewer than {kept} arguments; give it those first")
    start = sp.args[kept - 1][1] if kept else sp.name_end
    end = sp.args[-1][1] if len(sp.args) > kept else start
    return _checked(text[:start] + "".join(" " + _word(w) for w in words) + text[end:])


def _cut(text: str, start: int, end: int) -> str:
    """Remove text[start:end]; on a line of its own (a comment after it included), the whole line."""
    left = start
    while left > 0 and text[left - 1] in " \t":
        left -= 1
    right = end
    while right < len(text) and text[right] in " \t":
        right += 1
    if left == 0 or text[left - 1] == "\n":
        stop = text.find("\n", right) if right < len(text) and text[right] == "#" else right
        stop = len(text) if stop < 0 else stop
        if stop >= len(text) or text[stop] == "\n":
            return text[:left] + text[stop + 1:]
    return text[:start] + text[right:]


def set_forward(text: str, upstreams: Sequence[str], *, block: str = ".", zone: str = ".") -> str:
    """Make `forward <zone>` in `block` send to `upstreams` (its options block is kept)."""
    if not upstreams:
        raise ConfigError("set_forward needs at least one upstream (an IP, a file such as /etc/resolv.conf)")
    return _set_args(text, plugin(text, "forward", block=block, first_arg=zone), 1, upstreams)


def remove_plugin(text: str, name: str, *, block: str = ".") -> str:
    """Remove the `name` plugin (and its options block) from `block`."""
    sp = _span(plugin(text, name, block=block))
    return _checked(_cut(text, sp.start, sp.end))


def set_kubernetes_zones(text: str, zones: Sequence[str], *, block: str = ".") -> str:
    """Make the kubernetes plugin of `block` serve `zones` (none: the block's own zones)."""
    return _set_args(text, plugin(text, "kubernetes", block=block), 0, zones)


def drop_reverse_zones(text: str, *, block: str = ".") -> str:
    """Stop the kubernetes plugin of `block` serving in-addr.arpa and ip6.arpa (Service PTRs)."""
    k8s = plugin(text, "kubernetes", block=block)
    kept = [z for z in k8s.args if not is_reverse_zone(z)]
    if len(kept) == len(k8s.args):
        raise ConfigError(f"the kubernetes plugin on Corefile line {k8s.line} serves no reverse zone "
                          f"({' '.join(k8s.args) or 'its block zones'}); there is nothing to drop")
    return set_kubernetes_zones(text, kept, block=block)


def remove_option(text: str, plugin_name: str, option: str, *, block: str = ".") -> str:
    """Remove the `option` line (force_tcp, say) from the options block of a plugin of `block`; an
    options block left empty goes with it."""
    d = plugin(text, plugin_name, block=block)
    found = [o for o in d.block if o.name == option]
    if not found:
        raise ConfigError(f"`{plugin_name}` in server block `{server_block(text, block).label}` has no `{option}` "
                          f"option; there is nothing to remove")
    sp = _span(d)
    if len(d.block) == len(found) and sp.braces is not None:
        start = sp.args[-1][1] if sp.args else sp.name_end
        return _checked(text[:start] + text[sp.braces[1]:])
    for o in reversed(found):  # from the end, so the earlier offsets still hold
        text = _cut(text, _span(o).start, _span(o).end)
    return _checked(text)


def set_plugin_args(text: str, name: str, words: Sequence[str], *, block: str = ".") -> str:
    """Replace the arguments of the `name` plugin of `block` (`cache 30` -> `cache 120`)."""
    return _set_args(text, plugin(text, name, block=block), 0, words)


def set_option(text: str, plugin_name: str, option: str, words: Sequence[str], *, block: str = ".") -> str:
    """Set the arguments of the `option` line of a plugin's options block (`ttl 30` in kubernetes)."""
    d = plugin(text, plugin_name, block=block)
    found = [o for o in d.block if o.name == option]
    if not found:
        raise ConfigError(f"`{plugin_name}` in server block `{server_block(text, block).label}` has no `{option}` "
                          f"option; add one (`{option} {' '.join(words)}`)")
    return _set_args(text, found[0], 0, words)


def set_cache_denial_ttl(text: str, seconds: int, *, block: str = ".") -> str:
    """Make the cache of `block` keep negative answers (NXDOMAIN, NODATA) at most `seconds`
    (`cache { denial CAPACITY TTL }`)."""
    cache = plugin(text, "cache", block=block)
    denial = [o for o in cache.block if o.name == "denial"]
    if not denial or not denial[0].args:
        raise ConfigError(f"`cache` in server block `{server_block(text, block).label}` has no `denial CAPACITY` line; "
                          f"add one (`denial 9984 {seconds}`)")
    return _set_args(text, denial[0], 1, [str(seconds)])


def add_cluster_templates(text: str, qtypes: Sequence[str], body: Sequence[str], *, purpose: str,
                          block: str = ".") -> str:
    """Put one `template IN <qtype> <cluster zone> { body }` block per qtype in front of the
    kubernetes plugin of `block` (template runs before kubernetes), indented as that plugin is.
    `purpose` ends the error when the plugin names no cluster zone ("to suppress AAAA in")."""
    k8s = plugin(text, "kubernetes", block=block)
    zone = next((z for z in k8s.args if not is_reverse_zone(z)), None)
    if zone is None or k8s.span is None:
        raise ConfigError(f"the kubernetes plugin names no cluster zone {purpose}")
    start = k8s.span.start
    indent = text[text.rfind("\n", 0, start) + 1:start]
    inner = "".join(f"{indent}   {line}\n" for line in body)
    templates = "".join(f"template IN {qtype} {zone} {{\n{inner}{indent}}}\n{indent}" for qtype in qtypes)
    return _checked(text[:start] + templates + text[start:])
