"""Reading the messages the forwarder relays: a query's first question and a reply's rcode.

dnspython reads them. The bundled dnspython needs Python 3.10, and the payload runs on 3.8 and
3.9 too, so there (and only there) a minimal reader of the header and the first question stands
in; tests/probe checks that both agree.
"""

from __future__ import annotations

import struct
from typing import Any

from .common import ProbeFailure, dnspython

# Names the builtin reader gives; anything else is RCODE<n> / TYPE<n> (RFC 3597 style).
_RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
           "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE")
_QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
           28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}


def question_builtin(wire: bytes) -> tuple[str, str]:
    """(qname, qtype) of a query's first question, without dnspython (compressed names refused:
    a query's question is the first name in the message, so no client compresses it)."""
    if len(wire) < 17 or struct.unpack_from("!H", wire, 4)[0] < 1:
        raise ValueError("no question")
    pos = 12
    labels: list[str] = []
    while True:
        length = wire[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed name in question")
        labels.append(wire[pos : pos + length].decode("ascii", "backslashreplace"))
        pos += length
    (qtype,) = struct.unpack_from("!H", wire, pos)
    return ".".join(labels) + ".", _QTYPES.get(qtype, f"TYPE{qtype}")


def rcode_builtin(wire: bytes) -> str:
    code = wire[3] & 0x0F  # the header's low four bits; extended rcodes live in EDNS, not asked for
    return _RCODES[code] if code < len(_RCODES) else f"RCODE{code}"


class Reader:
    """Reads relayed messages with dnspython, or with the builtin reader where it cannot import."""

    def __init__(self) -> None:
        try:
            self._dns: Any = dnspython()
            self.name = "dnspython"
        except ProbeFailure:
            self._dns = None
            self.name = "builtin"

    def question(self, wire: bytes) -> tuple[str, str]:
        """(qname, qtype) of the first question; raises on a message without one."""
        if self._dns is None:
            return question_builtin(wire)
        question = self._dns.message.from_wire(wire, question_only=True).question
        if not question:
            raise ValueError("no question")
        return question[0].name.to_text(), self._dns.rdatatype.to_text(question[0].rdtype)

    def rcode(self, wire: bytes) -> str:
        """The reply's rcode name; raises on a message too short for a header."""
        if self._dns is None:
            if len(wire) < 12:
                raise ValueError("no header")
            return rcode_builtin(wire)
        message = self._dns.message.from_wire(wire, question_only=True)
        return str(self._dns.rcode.to_text(message.rcode()))
