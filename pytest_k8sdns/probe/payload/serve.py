"""`serve`: a DNS server on the pod's address that answers one test name, for pods whose dnsConfig
names this pod as their nameserver (the e2e test "configurable pod DNS nameservers").

Authoritative for the test name's parent zone: the name gets its A record (other types: no data),
other names in the zone NXDOMAIN, names outside it REFUSED; over UDP and TCP. It prints a start
line once listening, a line per query, and runs until any line or end-of-file on stdin."""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
import threading
from typing import Any

from ..protocol import MAX_DURATION_S, MAX_SERVED_LINES, MAX_TCP_CLIENTS, SERVE_OUTCOMES
from . import transport
from .common import ArgError, arg, dnspython, emit, ip_arg, mono

_TCP_IDLE_S = 10.0



class Zone:
    """The replies: one A record at `name`, the zone's SOA for negative answers."""

    def __init__(self, name: str, address: str, ttl: int) -> None:
        dnspython()  # the bundled dnspython's modules, or ProbeFailure naming why they do not import
        import dns.name
        import dns.opcode
        import dns.rrset

        self.dns = dns
        try:
            self.name = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise ArgError(f"argument 'name'={name!r} is no DNS name: {exc}") from None
        if len(self.name.labels) < 3:  # a label and a parent zone, then the root
            raise ArgError(f"argument 'name'={name!r} needs a parent zone to serve (e.g. test.k8sdns.example.)")
        self.zone = self.name.parent()
        self.a = dns.rrset.from_text(self.name, ttl, "IN", "A", address)
        self.soa = dns.rrset.from_text(self.zone, ttl, "IN", "SOA",
                                       f"ns.{self.zone} hostmaster.{self.zone} 1 3600 600 86400 {ttl}")

    def reply(self, wire: bytes) -> tuple[bytes | None, list[Any]]:
        """(reply wire or None to stay silent, [qname, qtype, outcome]) of one query message."""
        dns = self.dns
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - any malformed message: FORMERR if its header can be read
            if len(wire) < 12:
                return None, ["", "?", "formerr"]
            flags = (struct.unpack("!H", wire[2:4])[0] & 0x7900) | 0x8000 | dns.rcode.FORMERR
            return wire[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0), ["", "?", "formerr"]
        response = dns.message.make_response(query)
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            outcome = "notimp" if query.opcode() != dns.opcode.QUERY else "formerr"
            return response.to_wire(), ["", "?", outcome]
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        seen = [qname.to_text(), dns.rdatatype.to_text(qtype)]
        if question.rdclass != dns.rdataclass.IN or not qname.is_subdomain(self.zone):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire(), seen + ["refused"]
        response.flags |= dns.flags.AA
        if qname == self.name and qtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            response.answer.append(self.a)
            outcome = "answer"
        elif qname == self.zone and qtype == dns.rdatatype.SOA:
            response.answer.append(self.soa)
            outcome = "answer"
        else:
            outcome = "nodata" if qname in (self.name, self.zone) else "nxdomain"
            if outcome == "nxdomain":
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self.soa)
        return response.to_wire(), seen + [outcome]


class Server:
    """UDP answered in the main loop, each TCP client in a thread (at most MAX_TCP_CLIENTS)."""

    def __init__(self, zone: Zone, listen: str, port: int) -> None:
        self.zone = zone
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(SERVE_OUTCOMES, 0)
        self.protos = {"udp": 0, "tcp": 0}
        self.lines = 0
        self.udp, self.tcp = transport.listen(listen, port)
        self.tcp_slots = threading.BoundedSemaphore(MAX_TCP_CLIENTS)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()

    def _answer(self, wire: bytes, proto: str, client: str) -> bytes | None:
        reply, (qname, qtype, outcome) = self.zone.reply(wire)
        with self.lock:
            self.protos[proto] += 1
            self.counts[outcome] += 1
            self.lines += 1
            if self.lines <= MAX_SERVED_LINES:
                emit({"event": "query", "qname": qname, "qtype": qtype, "proto": proto, "client": client,
                      "outcome": outcome})
        return reply

    def run(self, deadline_ns: int) -> str:
        """Serve until stdin has a line or ends ("stdin") or the deadline passes ("duration")."""
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ, "udp")
        sel.register(self.tcp, selectors.EVENT_READ, "tcp")
        stdin = sys.stdin.fileno()
        sel.register(stdin, selectors.EVENT_READ, "stdin")
        try:
            while mono() < deadline_ns:
                for key, _ in sel.select(min(1.0, max(0.0, (deadline_ns - mono()) / 1e9))):
                    if key.data == "stdin":
                        os.read(stdin, 65536)  # whatever it says (or end-of-file): stop
                        return "stdin"
                    if key.data == "udp":
                        self._udp()
                    else:
                        self._accept()
            return "duration"
        finally:
            sel.close()

    def _udp(self) -> None:
        while True:
            try:
                wire, client = self.udp.recvfrom(65535)
            except OSError:  # nothing more to read now (BlockingIOError), or an ICMP error
                return
            reply = self._answer(wire, "udp", str(client[0]))
            if reply is not None:
                try:
                    self.udp.sendto(reply, client)
                except OSError:
                    pass

    def _accept(self) -> None:
        try:
            conn, client = self.tcp.accept()
        except OSError:
            return
        if not self.tcp_slots.acquire(blocking=False):
            conn.close()
            return
        threading.Thread(target=self._serve_tcp, args=(conn, str(client[0])), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket, client: str) -> None:
        """RFC 1035 4.2.2: each message behind a two-byte length, several on one connection."""
        try:
            conn.setblocking(True)
            conn.settimeout(_TCP_IDLE_S)
            while True:
                wire = transport.recv_message(conn)
                if wire is None:
                    return
                reply = self._answer(wire, "tcp", client)
                if reply is None:
                    return
                conn.sendall(transport.framed(reply))
        except OSError:
            pass
        finally:
            conn.close()
            self.tcp_slots.release()


def cmd_serve(args: dict[str, Any]) -> dict[str, Any]:
    name = arg(args, "name", str, required=True)
    address = ip_arg(args, "address", required=True)
    if ":" in address:
        raise ArgError(f"argument 'address'={address!r} must be an IPv4 address (the test name's A record)")
    listen = ip_arg(args, "listen", "0.0.0.0")
    port = arg(args, "port", int, 53, lo=1, hi=65535)
    ttl = arg(args, "ttl", int, 30, lo=0, hi=86400)
    duration_s = arg(args, "duration_s", float, MAX_DURATION_S, lo=1.0, hi=MAX_DURATION_S)
    zone = Zone(name, address, ttl)
    server = Server(zone, listen, port)
    start = mono()
    try:
        emit({"event": "start", "listen": listen, "port": port, "name": zone.name.to_text(),
              "zone": zone.zone.to_text(), "address": address})
        stopped = server.run(start + int(duration_s * 1e9))
    finally:
        server.close()
    with server.lock:
        return {"event": "end", "name": zone.name.to_text(), "address": address, "stopped": stopped,
                "elapsed_ns": mono() - start, "queries": dict(server.protos), "outcomes": dict(server.counts),
                "lines_dropped": max(0, server.lines - MAX_SERVED_LINES)}
