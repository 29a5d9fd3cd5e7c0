"""`capture`: one libc lookup per name through the capturing forwarder, and the queries each caused."""

from __future__ import annotations

import socket
import time
from typing import Any

from ..protocol import CAPTURE_COLUMNS, ERR_ENCODE, ERR_OTHER, FAMILIES
from .common import RESOLV_CONF, ArgError, arg, ip_arg, key_of, mono, read_resolv_conf
from .forwarder import CapturingForwarder


def _nameservers(text: str | None) -> list[str]:
    servers = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def _settle(forwarder: CapturingForwarder, end: int, quiet_ns: int, max_quiet_ns: int) -> None:
    """Hold until no query came for quiet_ns (at most max_quiet_ns after `end`): a query the libc
    sent late (a retry) belongs to the name just looked up, not to the next."""
    while True:
        _, last = forwarder.mark()
        now = mono()
        until = min(max(end, last) + quiet_ns, end + max_quiet_ns)
        if now >= until:
            return
        time.sleep((until - now) / 1e9)  # to the deadline; a query meanwhile moves it


def _lookup(name: str, family: int) -> dict[str, Any]:
    outcome: dict[str, Any] = {"name": name, "ok": True, "error_code": 0, "error": None, "addresses": []}
    try:
        res = socket.getaddrinfo(name, None, family)
        outcome["addresses"] = sorted({str(ai[4][0]) for ai in res})
    except socket.gaierror as exc:
        outcome.update(ok=False, error_code=exc.errno or ERR_OTHER, error=str(exc))
    except UnicodeError as exc:
        outcome.update(ok=False, error_code=ERR_ENCODE, error=str(exc))
    return outcome


def cmd_capture(args: dict[str, Any]) -> dict[str, Any]:
    upstreams = arg(args, "upstream", list, required=True)
    for server in upstreams:
        ip_arg({"upstream": server}, "upstream")
    port = arg(args, "port", int, 53, lo=1, hi=65535)
    listen = ip_arg(args, "listen", "127.0.0.1")
    names = arg(args, "names", list, required=True)
    family = FAMILIES[arg(args, "family", str, "any", choices=FAMILIES)]
    quiet_s = arg(args, "quiet_s", float, 0.2, lo=0.0, hi=5.0)
    timeout = arg(args, "timeout", float, 3.0, lo=0.01, hi=30.0)
    resend_s = arg(args, "resend_s", float, 0.0, lo=0.0, hi=30.0)
    if listen in upstreams and port == 53:
        raise ArgError(f"upstream {listen}:53 is the forwarder's own address; that would loop")
    text, error = read_resolv_conf()
    warnings = []
    if error:
        warnings.append(error)
    elif listen not in _nameservers(text):
        warnings.append(
            f"{RESOLV_CONF} lists nameservers {_nameservers(text)}, not {listen}: "
            "the libc will not send its queries through the forwarder"
        )
    forwarder = CapturingForwarder(listen, upstreams, port, timeout, resend_s)
    forwarder.start()
    quiet_ns = int(quiet_s * 1e9)
    max_quiet_ns = max(2 * quiet_ns, int(2e9))
    lookups = []
    try:
        first, _ = forwarder.mark()
        for name in names:
            begin, _ = forwarder.mark()
            start = mono()
            outcome = _lookup(name, family)
            end = mono()
            _settle(forwarder, end, quiet_ns, max_quiet_ns)
            with forwarder.lock:
                events = [list(event) for event in forwarder.events[begin:]]
            outcome["latency_ns"] = end - start
            outcome["queries"] = [event[:3] for event in events]
            outcome["rcodes"] = [event[3] for event in events]
            outcome["late_queries"] = sum(1 for event in events if event[4] > end)
            lookups.append(outcome)
    finally:
        forwarder.stop()
    return {
        "listen": listen,
        "upstream": upstreams,
        "port": port,
        "family": key_of(FAMILIES, family),
        "resolv_conf": text,
        "warnings": warnings,
        "parser": forwarder.reader.name,
        "columns": list(CAPTURE_COLUMNS),
        "lookups": lookups,
        "unattributed": [event[:3] for event in forwarder.events[:first]],
        "dropped": forwarder.dropped,
        "unanswered": forwarder.unanswered,
        "resent": forwarder.resent,
    }
