"""`query`: raw dnspython queries to one server over UDP or TCP, each reply as structured records."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..protocol import RDATA_FIELDS
from .common import ArgError, arg, dnspython, ip_arg, mono


def _field(value: Any) -> Any:
    """One rdata attribute as JSON: names as absolute text, character strings decoded."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (tuple, list)):
        return [_field(part) for part in value]
    return value.to_text() if hasattr(value, "to_text") else str(value)


def records(dns: Any, section: Iterable[Any]) -> list[dict[str, Any]]:
    """Every record of a message section, one object each, in the message's order."""
    out: list[dict[str, Any]] = []
    for rrset in section:
        name = rrset.name.to_text()
        rdclass = dns.rdataclass.to_text(rrset.rdclass)
        rdtype = dns.rdatatype.to_text(rrset.rdtype)
        keys = RDATA_FIELDS.get(rdtype, ())
        for rdata in rrset:
            record: dict[str, Any] = {
                "name": name,
                "ttl": rrset.ttl,
                "class": rdclass,
                "type": rdtype,
                "rdata": rdata.to_text(),
            }
            if keys:
                record["fields"] = {key: _field(getattr(rdata, key)) for key in keys}
            out.append(record)
    return out


def _no_reply(latency: int, error: str) -> dict[str, Any]:
    return {
        "latency_ns": latency,
        "rcode": None,
        "error": error,
        "flags": [],
        "answer": [],
        "authority": [],
        "additional": [],
    }


def cmd_query(args: dict[str, Any]) -> dict[str, Any]:
    server = ip_arg(args, "server", required=True)
    port = arg(args, "port", int, 53, lo=1, hi=65535)
    name = arg(args, "name", str, required=True)
    rdtype_text = arg(args, "rdtype", str, "A").upper()
    tcp = arg(args, "tcp", bool, False)
    timeout = arg(args, "timeout", float, 2.0, lo=0.001, hi=60.0)
    count = arg(args, "count", int, 1, lo=1, hi=100000)
    interval_ns = int(arg(args, "interval_s", float, 0.0, lo=0.0, hi=60.0) * 1e9)
    dns = dnspython()
    try:
        rdtype = dns.rdatatype.from_text(rdtype_text)
    except Exception:
        raise ArgError(f"argument 'rdtype'={rdtype_text!r} is not a DNS record type") from None
    qname = name
    if rdtype == dns.rdatatype.PTR:
        try:  # PTR of an address: ask for its reverse name
            qname = dns.reversename.from_address(name).to_text()
        except Exception:
            pass
    replies = []
    start = 0
    for i in range(count):
        message = dns.message.make_query(qname, rdtype)
        wait = start + interval_ns - mono() if i else 0  # from the last query's start: no catch-up bursts
        if wait > 0:
            time.sleep(wait / 1e9)  # pacing to the asked rate, not a wait for a condition
        start = mono()
        try:
            if tcp:
                response = dns.query.tcp(message, server, timeout=timeout, port=port)
            else:
                response = dns.query.udp(message, server, timeout=timeout, port=port, ignore_unexpected=True)
        except dns.exception.Timeout:
            replies.append(_no_reply(mono() - start, f"timeout after {timeout}s"))
            continue
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            replies.append(_no_reply(mono() - start, f"{type(exc).__name__}: {exc}"))
            continue
        latency = mono() - start
        replies.append(
            {
                "latency_ns": latency,
                "rcode": dns.rcode.to_text(response.rcode()),
                "error": None,
                "flags": dns.flags.to_text(response.flags).split(),
                "answer": records(dns, response.answer),
                "authority": records(dns, response.authority),
                "additional": records(dns, response.additional),
            }
        )
    ok = sum(1 for reply in replies if reply["error"] is None)
    return {
        "server": server,
        "port": port,
        "name": name,
        "qname": qname,
        "rdtype": dns.rdatatype.to_text(rdtype),
        "tcp": tcp,
        "timeout": timeout,
        "replies": replies,
        "totals": {"queries": len(replies), "ok": ok, "failed": len(replies) - ok},
    }
