"""resolv.conf as each libc reads it: glibc's res_init rules and musl's __get_resolv_conf rules."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pytest_k8sdns.errors import ConfigError

LIBCS = ("glibc", "musl")

# Both libcs keep three servers (glibc resolv/resolv_conf.c truncates to MAXNS from
# resolv/bits/types/res_state.h; musl src/network/lookup.h MAXNS).
MAXNS = 3
# musl src/network/resolvconf.c reads with fgets(line, 256): a line of 255 bytes or more
# (newline not counted) never fits, and musl skips it whole rather than use a truncated line.
MUSL_MAX_LINE = 254
# glibc resolv/resolv.h: RES_MAXNDOTS 15, RES_MAXRETRANS 30, RES_MAXRETRY 5.
# musl resolvconf.c: ndots 15, attempts 10, timeout 60.
_CAPS = {"glibc": {"ndots": 15, "timeout": 30, "attempts": 5}, "musl": {"ndots": 15, "timeout": 60, "attempts": 10}}
# glibc resolv/res_init.c res_setoptions: matched as prefixes, in this order (so
# single-request-reopen is tested before single-request); a leading '-' clears the flag.
_GLIBC_FLAGS = (
    ("rotate", "rotate"),
    ("edns0", "edns0"),
    ("single-request-reopen", "single-request-reopen"),
    ("single-request", "single-request"),
    ("no_tld_query", "no-tld-query"),
    ("no-tld-query", "no-tld-query"),
    ("no-reload", "no-reload"),
    ("use-vc", "use-vc"),
    ("trust-ad", "trust-ad"),
    ("no-aaaa", "no-aaaa"),
    ("strict-error", "strict-error"),
)
# Before glibc 2.26 (bug 19569) res_state held the search line in a 256-byte defdname and at
# most MAXDNSRCH=6 pointers into it (glibc-2.25 resolv/res_init.c, resolv/resolv.h).
LEGACY_GLIBC_SEARCH_DOMAINS = 6
LEGACY_GLIBC_SEARCH_CHARS = 255

_C_SPACE = " \t\n\v\f\r"



@dataclass(frozen=True)
class ResolvConf:
    """What one libc makes of a resolv.conf text.

    ``nameservers`` are the usable ones listed (at most three; see ``effective_nameservers``);
    ``options`` holds the glibc flags in effect (always empty for musl, which has none);
    ``ignored_options`` the option words this libc reads past; ``ignored_lines`` the 1-based
    numbers of lines musl skips for being too long; ``dropped_nameservers`` servers past the
    third or not an IP literal; ``search_line`` the raw line whose domains won.
    """

    libc: str
    nameservers: list[str]
    search: list[str]
    ndots: int = 1
    timeout: int = 5
    attempts: int = 2
    options: dict[str, bool] = field(default_factory=dict)
    ignored_options: list[str] = field(default_factory=list)
    ignored_lines: list[int] = field(default_factory=list)
    dropped_nameservers: list[str] = field(default_factory=list)
    search_line: str | None = None

    @property
    def effective_nameservers(self) -> list[str]:
        """The servers the libc queries: with none listed, both fall back to 127.0.0.1."""
        return self.nameservers or ["127.0.0.1"]

    @property
    def no_tld_query(self) -> bool:
        return bool(self.options.get("no-tld-query"))


def check_libc(libc: str) -> str:
    """Return ``libc`` if it is one this module models, else raise ConfigError."""
    if libc not in LIBCS:
        raise ConfigError(f"unknown libc {libc!r}; use 'glibc' or 'musl'")
    return libc


def _is_ip(text: str) -> bool:
    # A scope id (fe80::1%eth0) is accepted by both libcs and not part of the address.
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _keyword(line: str, word: str, spaces: str) -> bool:
    return line.startswith(word) and len(line) > len(word) and line[len(word)] in spaces


def _strtol(text: str) -> int:
    """C strtol/strtoul on a prefix: leading digits (after an optional sign), 0 if none."""
    i = 0
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        i = 1
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    return sign * int(text[i:j]) if j > i else 0


def _parse_glibc(text: str) -> ResolvConf:
    # Modelled on glibc resolv/res_init.c res_vinit_1 and res_setoptions; LOCALDOMAIN,
    # RES_OPTIONS and the hostname fallback for an empty search list are not modelled.
    caps = _CAPS["glibc"]
    servers: list[str] = []
    dropped: list[str] = []
    search: list[str] = []
    search_line: str | None = None
    ndots, timeout, attempts = 1, 5, 2
    flags: dict[str, bool] = {}
    ignored: list[str] = []
    for line in text.split("\n"):
        if line[:1] in (";", "#"):
            continue
        if _keyword(line, "domain", " \t"):
            words = line[6:].split()
            if words:
                # The domain line sets a one-element search list: the first word only.
                search, search_line = [words[0]], line
        elif _keyword(line, "search", " \t"):
            words = line[6:].split()
            if words:
                search, search_line = words, line
        elif _keyword(line, "nameserver", " \t"):
            words = line[10:].split()
            if not words or not _is_ip(words[0]):
                dropped.extend(words[:1])
            elif len(servers) < MAXNS:
                servers.append(words[0])
            else:
                dropped.append(words[0])
        elif _keyword(line, "options", " \t"):
            for word in line[7:].split():
                if word.startswith("ndots:"):
                    ndots = min(_strtol(word[6:]), caps["ndots"])
                elif word.startswith("timeout:"):
                    timeout = min(_strtol(word[8:]), caps["timeout"])
                elif word.startswith("attempts:"):
                    attempts = min(_strtol(word[9:]), caps["attempts"])
                else:
                    negate = word.startswith("-")
                    body = word[1:] if negate else word
                    for prefix, flag in _GLIBC_FLAGS:
                        if body.startswith(prefix):
                            flags[flag] = not negate
                            break
                    else:
                        ignored.append(word)
    # The ndots field is unsigned: a negative value is treated as 0 here.
    return ResolvConf(
        libc="glibc",
        nameservers=servers,
        search=search,
        ndots=max(ndots, 0),
        timeout=max(timeout, 0),
        attempts=max(attempts, 0),
        options={k: v for k, v in flags.items() if v},
        ignored_options=ignored,
        dropped_nameservers=dropped,
        search_line=search_line,
    )


def _musl_number(line: str, key: str) -> int | None:
    # musl uses strstr on the whole options line, so the key may appear anywhere in it, and
    # it needs a digit right after the colon (timeout also lets "." through to strtoul,
    # which then reads nothing: the same outcome).
    at = line.find(key)
    if at < 0:
        return None
    rest = line[at + len(key):]
    return _strtol(rest) if rest[:1].isdigit() else None


def _parse_musl(text: str) -> ResolvConf:
    # Modelled on musl v1.2.5 src/network/resolvconf.c __get_resolv_conf.
    caps = _CAPS["musl"]
    servers: list[str] = []
    dropped: list[str] = []
    search: list[str] = []
    search_line: str | None = None
    ndots, timeout, attempts = 1, 5, 2
    ignored: list[str] = []
    skipped: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line.encode("utf-8", "surrogateescape")) > MUSL_MAX_LINE:
            skipped.append(number)
            continue
        line_nl = line + "\n"
        if _keyword(line_nl, "options", _C_SPACE):
            value = _musl_number(line, "ndots:")
            if value is not None:
                ndots = min(value, caps["ndots"])
            value = _musl_number(line, "attempts:")
            if value is not None:
                attempts = min(value, caps["attempts"])
            value = _musl_number(line, "timeout:")
            if value is not None:
                timeout = min(value, caps["timeout"])
            ignored.extend(
                w for w in line[7:].split() if not w.startswith(("ndots:", "attempts:", "timeout:"))
            )
        elif _keyword(line_nl, "nameserver", _C_SPACE):
            words = line_nl[11:].split()
            if not words or not _is_ip(words[0]):
                dropped.extend(words[:1])
            elif len(servers) < MAXNS:
                servers.append(words[0])
            else:
                dropped.append(words[0])
        elif _keyword(line_nl, "domain", _C_SPACE) or _keyword(line_nl, "search", _C_SPACE):
            # Unlike glibc, musl takes every word of a domain line, and an empty
            # search line clears the list.
            search, search_line = line_nl[7:].split(), line
    return ResolvConf(
        libc="musl",
        nameservers=servers,
        search=search,
        ndots=ndots,
        timeout=timeout,
        attempts=attempts,
        options={},
        ignored_options=ignored,
        ignored_lines=skipped,
        dropped_nameservers=dropped,
        search_line=search_line,
    )


def parse_resolv_conf(text: str, libc: str = "glibc") -> ResolvConf:
    """Parse resolv.conf ``text`` the way ``libc`` ("glibc" or "musl") does."""
    check_libc(libc)
    return _parse_glibc(text) if libc == "glibc" else _parse_musl(text)


def nameservers_of(text: str) -> list[str]:
    """Every ``nameserver`` address in ``text``, uncapped (CoreDNS's forward reads them all)."""
    found: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and _is_ip(words[1]):
            found.append(words[1])
    return found


def is_loopback(address: str) -> bool:
    """True for an address a query sent to it reaches this host by: 127.0.0.0/8, ::1 (however
    spelt, with a scope id or not), their IPv4-mapped forms (::ffff:127.0.0.53), and the
    unspecified 0.0.0.0 and :: (Linux delivers a datagram sent there to the host itself, so a
    CoreDNS pod that inherits `nameserver ::` queries itself). False for anything not an IP."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def same_ip(a: str, b: str) -> bool:
    """One address however spelt: 0:0::1 is ::1, ::ffff:10.96.0.10 is 10.96.0.10; names compare as text."""
    def norm(text: str) -> str:
        try:
            ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
        except ValueError:
            return text
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return str(ip)

    return norm(a) == norm(b)


def legacy_glibc_search_list(search: list[str]) -> list[str]:
    """The search list a glibc before 2.26 would use: 6 domains from the first 255 characters.

    The domains are re-joined with single spaces, so original runs of blanks are not counted.
    """
    kept = " ".join(search)[:LEGACY_GLIBC_SEARCH_CHARS].split()
    return kept[:LEGACY_GLIBC_SEARCH_DOMAINS]
