"""The glibc/musl search-candidate model: which names a pod's libc asks for, in which order, and
where the two libcs part ways (resolv.conf itself is read by dns/resolvconf.py, as each libc reads it)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from pytest_k8sdns.dns.resolvconf import (
    LIBCS,
    MUSL_MAX_LINE,
    ResolvConf,
    is_loopback,
    legacy_glibc_search_list,
    nameservers_of,
    parse_resolv_conf,
)
from pytest_k8sdns.errors import ConfigError

#: A set of names, or a predicate over them (absolute names).
NameSet = Callable[[str], bool] | Collection[str]

__all__ = ["LIBCS", "ResolvConf", "NameSet", "divergences", "expected_queries", "is_loopback",
           "legacy_glibc_search_list", "nameservers_of", "parse_resolv_conf", "search_candidates"]


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _wire_ok(name: str) -> bool:
    """True when ``name`` (absolute) fits a query: labels of 1..63 bytes, 253 bytes in all."""
    body = name.removesuffix(".")
    if not body or len(body.encode()) > 253:
        return False
    return all(0 < len(label.encode()) <= 63 for label in body.split("."))


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or ".." in name:
        raise ConfigError(f"invalid DNS name {name!r}; give a name like 'svc.ns' or 'host.example.com.'")


def _join(name: str, domain: str) -> str:
    return _absolute(f"{name}.{domain}")


def _glibc_candidates(conf: ResolvConf, name: str) -> list[str]:
    # glibc resolv/res_query.c __res_context_search: the trailing dot counts as a dot.
    dots = name.count(".")
    trailing = name.endswith(".")
    out: list[str] = []
    tried_as_is = False
    if dots >= conf.ndots or trailing:
        out.append(_absolute(name))
        if trailing:
            return out
        tried_as_is = True
    searched = False
    root_on_list = False
    for domain in conf.search:
        searched = True
        domain = domain.removeprefix(".")
        if not domain:
            # A "." in the list queries the name itself (res_query.c root_on_list).
            root_on_list = True
            out.append(_absolute(name))
            continue
        candidate = _join(name, domain)
        if not _wire_ok(candidate):
            # res_nmkquery fails (NO_RECOVERY), which ends the search loop.
            break
        out.append(candidate)
    if (dots or not searched or not conf.no_tld_query) and not (tried_as_is or root_on_list):
        out.append(_absolute(name))
    return out


def _musl_candidates(conf: ResolvConf, name: str) -> list[str]:
    # musl v1.2.5 src/network/lookup_name.c name_from_dns_search.
    dots = name.count(".")
    search = [] if dots >= conf.ndots or name.endswith(".") else conf.search
    bare = name.removesuffix(".")
    out: list[str] = []
    for domain in search:
        if len(domain) >= 256 - len(bare) - 1:
            continue
        candidate = f"{bare}.{domain}"
        # res_mkquery rejects a doubled final dot ("." in the list) or an over-long
        # name, and name_from_dns treats that as NXDOMAIN: the suffix is skipped.
        if candidate.endswith("..") or not _wire_ok(_absolute(candidate)):
            continue
        out.append(_absolute(candidate))
    out.append(_absolute(bare))
    return out


def _candidates(conf: ResolvConf, name: str) -> list[str]:
    _check_name(name)
    return _glibc_candidates(conf, name) if conf.libc == "glibc" else _musl_candidates(conf, name)


def search_candidates(libc: str, resolv_conf_text: str, name: str) -> list[str]:
    """The absolute names ``libc`` queries for ``name``, in order, if every one is NXDOMAIN."""
    return _candidates(parse_resolv_conf(resolv_conf_text, libc), name)


def _member(names: NameSet) -> Callable[[str], bool]:
    if callable(names):
        test = names
        return lambda qname: bool(test(qname))
    folded = {_absolute(n.lower()) for n in names}
    return lambda qname: qname.lower() in folded


def _tried(conf: ResolvConf, name: str, existing: NameSet, nodata: NameSet, servfail: NameSet) -> list[str]:
    has_data, no_data, fails = _member(existing), _member(nodata), _member(servfail)
    tried: list[str] = []
    for qname in _candidates(conf, name):
        tried.append(qname)
        if has_data(qname):
            return tried
        # musl stops on any answer that is not NXDOMAIN: NODATA (EAI_NODATA) and SERVFAIL
        # (EAI_AGAIN) both end the search (lookup_name.c name_from_dns). glibc keeps
        # searching past both (res_query.c: NO_DATA and SERVFAIL "keep trying").
        if conf.libc == "musl" and (no_data(qname) or fails(qname)):
            return tried
    return tried


def expected_queries(
    libc: str,
    resolv_conf_text: str,
    name: str,
    existing: NameSet,
    *,
    nodata: NameSet = (),
    servfail: NameSet = (),
) -> list[str]:
    """The names ``libc`` queries (each as A and AAAA for AF_UNSPEC) until it stops.

    ``existing`` names answer with an A or AAAA record; ``nodata`` names exist with neither;
    ``servfail`` names fail; every other name is NXDOMAIN. Each may be a collection of names
    (trailing dot optional, case-insensitive) or a predicate over absolute names. /etc/hosts,
    which both libcs read first, is not modelled.
    """
    conf = parse_resolv_conf(resolv_conf_text, libc)
    return _tried(conf, name, existing, nodata, servfail)


def _outcome(tried: list[str], existing: NameSet) -> str | None:
    has_data = _member(existing)
    return tried[-1] if tried and has_data(tried[-1]) else None


def _config_divergences(glibc: ResolvConf, musl: ResolvConf, text: str) -> list[str]:
    reasons: list[str] = []
    lines = text.split("\n")
    for number in musl.ignored_lines:
        line = lines[number - 1]
        size = len(line.encode("utf-8", "surrogateescape"))
        word = line.split()[0] if line.split() else ""
        reasons.append(
            f"line {number} (`{word} ...`) is {size} bytes, more than the {MUSL_MAX_LINE} musl reads per line: "
            f"musl ignores the whole line, glibc uses it; shorten it (fewer search domains)"
        )
    if glibc.search != musl.search and not musl.ignored_lines:
        reasons.append(
            f"search list differs: glibc uses {glibc.search}, musl uses {musl.search} "
            f"(a `domain` line gives glibc its first word only, musl every word)"
        )
    for flag in sorted(glibc.options):
        reasons.append(f"option `{flag}`: glibc honours it, musl ignores it")
    for key in ("ndots", "timeout", "attempts"):
        g, m = getattr(glibc, key), getattr(musl, key)
        if g != m:
            reasons.append(f"{key}: glibc uses {g}, musl uses {m} (different caps or parsing)")
    return reasons


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def divergences(
    resolv_conf_text: str,
    names: Iterable[str],
    existing: NameSet | None = None,
) -> list[str]:
    """One-line reasons why musl and glibc would behave differently with this resolv.conf.

    Without ``existing`` each name is compared on the names each libc would try; with it,
    on the name each resolves to and the number of names each sends.
    """
    glibc = parse_resolv_conf(resolv_conf_text, "glibc")
    musl = parse_resolv_conf(resolv_conf_text, "musl")
    reasons = _config_divergences(glibc, musl, resolv_conf_text)
    for name in names:
        if existing is None:
            g, m = _candidates(glibc, name), _candidates(musl, name)
            if g == m:
                continue
            dots = name.count(".")
            if not name.endswith(".") and dots >= musl.ndots and musl.search == glibc.search and glibc.search:
                reasons.append(
                    f"`{name}` has {_plural(dots, 'dot')} (ndots {musl.ndots}): musl queries only `{m[-1]}`, "
                    f"glibc then also tries {_plural(len(g) - 1, 'search domain')} if it does not exist"
                )
            else:
                reasons.append(
                    f"`{name}`: glibc tries {_plural(len(g), 'name')} (`{g[0]}` first), "
                    f"musl {_plural(len(m), 'name')} (`{m[0]}` first)"
                )
            continue
        g_tried = _tried(glibc, name, existing, (), ())
        m_tried = _tried(musl, name, existing, (), ())
        g_hit, m_hit = _outcome(g_tried, existing), _outcome(m_tried, existing)
        if g_hit != m_hit:
            g_text = f"resolves it as `{g_hit}`" if g_hit else "fails"
            m_text = f"resolves it as `{m_hit}`" if m_hit else "fails"
            why = ""
            if not name.endswith(".") and name.count(".") >= musl.ndots and len(m_tried) == 1:
                dot_text = _plural(name.count("."), "dot")
                why = f" (it has {dot_text} >= ndots {musl.ndots}, so musl skips the search list)"
            reasons.append(
                f"`{name}`: glibc {g_text} after {_plural(len(g_tried), 'name')}, "
                f"musl {m_text} after {_plural(len(m_tried), 'name')}{why}"
            )
        elif len(g_tried) != len(m_tried):
            reasons.append(
                f"`{name}`: both resolve it, but glibc sends {_plural(len(g_tried), 'name')} "
                f"and musl {_plural(len(m_tried), 'name')} (each as A and AAAA)"
            )
    return reasons
