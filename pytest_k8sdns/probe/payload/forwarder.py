"""The capturing forwarder behind `capture`: relays the libc's DNS messages and notes each question."""

from __future__ import annotations

import selectors
import socket
import threading
from typing import TYPE_CHECKING, Any, cast

from ..protocol import MAX_CAPTURED, MAX_PENDING_UDP, MAX_TCP_CLIENTS
from . import transport
from .common import mono
from .wire import Reader

if TYPE_CHECKING:  # an alias only for annotations: `dict[...]` is not evaluated on Python 3.8 then
    Pending = dict[socket.socket, dict[str, Any]]



class CapturingForwarder:
    """Relays raw DNS messages between the libc and the upstreams, noting each query's question.

    UDP runs in one selector thread (one connected upstream socket per query, so replies find
    their client); each TCP client gets a thread. Memory is bounded: MAX_CAPTURED questions,
    MAX_PENDING_UDP exchanges in flight, MAX_TCP_CLIENTS connections.
    """

    def __init__(self, listen: str, upstreams: list[str], port: int, timeout_s: float, resend_s: float = 0.0) -> None:
        self.upstreams = upstreams
        self.port = port
        self.timeout_ns = int(timeout_s * 1e9)
        # A UDP query the upstream has not answered after resend_s is sent to it again (0: never),
        # until timeout_s: a lost query on the way to the cluster DNS then costs the instrument a
        # resend, not the libc its own retry, which would change the sequence of names it sends.
        self.resend_ns = int(resend_s * 1e9)
        self.resent = 0
        self.reader = Reader()
        self.lock = threading.Lock()
        self.events: list[list[Any]] = []  # [qname, qtype, proto, rcode or None, arrival_ns]
        self.last_arrival = 0
        self.dropped = 0
        self.unanswered = 0
        self.stopping = False
        self.udp, self.tcp = transport.listen(listen, 53)
        self.wake_r, self.wake_w = socket.socketpair()
        self.tcp_slots = threading.BoundedSemaphore(MAX_TCP_CLIENTS)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass
        self.thread.join(5)
        self.close()

    def close(self) -> None:
        for sock in (self.udp, self.tcp, getattr(self, "wake_r", None), getattr(self, "wake_w", None)):
            if sock is not None:
                sock.close()

    def mark(self) -> tuple[int, int]:
        """(queries noted so far, arrival time of the last one)."""
        with self.lock:
            return len(self.events), self.last_arrival

    def _note(self, wire: bytes, proto: str) -> int:
        try:
            qname, qtype = self.reader.question(wire)
        except Exception:
            qname, qtype = "", "?"
        now = mono()
        with self.lock:
            self.last_arrival = now
            if len(self.events) >= MAX_CAPTURED:
                self.dropped += 1
                return -1
            self.events.append([qname, qtype, proto, None, now])
            return len(self.events) - 1

    def _answered(self, idx: int, reply: bytes) -> None:
        if idx < 0:
            return
        try:
            rcode = self.reader.rcode(reply)
        except Exception:  # relayed as it came; the query's rcode stays unknown
            return
        with self.lock:
            if self.events[idx][3] is None:
                self.events[idx][3] = rcode

    # UDP and the accept loop ----------------------------------------------------------------

    def _send_upstream(self, sel: selectors.BaseSelector, pending: Pending, exchange: dict[str, Any]) -> bool:
        """Send exchange's query to its current upstream; False once no upstream is left."""
        while exchange["upstream"] < len(self.upstreams):
            server = self.upstreams[exchange["upstream"]]
            sock = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect((server, self.port))
                sock.send(exchange["wire"])
            except OSError:
                sock.close()
                exchange["upstream"] += 1
                continue
            exchange["deadline"] = mono() + self.timeout_ns
            exchange["resend"] = mono() + self.resend_ns if self.resend_ns else None
            pending[sock] = exchange
            sel.register(sock, selectors.EVENT_READ, exchange)
            return True
        return False

    def _drop(self, sel: selectors.BaseSelector, pending: Pending, sock: socket.socket) -> None:
        sel.unregister(sock)
        del pending[sock]
        sock.close()

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ, "udp")
        sel.register(self.tcp, selectors.EVENT_READ, "tcp")
        sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        pending: Pending = {}
        try:
            while not self.stopping:
                # The select timeout bounds how late an upstream's deadline is noticed.
                for key, _ in sel.select(0.05):
                    if key.data == "udp":
                        self._udp_queries(sel, pending)
                    elif key.data == "tcp":
                        self._accept()
                    elif key.data == "wake":
                        self.wake_r.recv(64)
                    else:
                        self._udp_reply(sel, pending, cast(socket.socket, key.fileobj), key.data)
                now = mono()
                for sock, exchange in list(pending.items()):
                    if exchange["resend"] is not None and exchange["resend"] <= now < exchange["deadline"]:
                        exchange["resend"] = now + self.resend_ns
                        try:
                            sock.send(exchange["wire"])  # the same ID on the same socket: any reply matches
                            self.resent += 1
                        except OSError:
                            pass
                    if now >= exchange["deadline"]:
                        self._drop(sel, pending, sock)
                        exchange["upstream"] += 1
                        if not self._send_upstream(sel, pending, exchange):
                            self.unanswered += 1  # the libc's own retry will show as a new query
        finally:
            for sock in list(pending):
                self._drop(sel, pending, sock)
            sel.close()

    def _udp_queries(self, sel: selectors.BaseSelector, pending: Pending) -> None:
        while True:
            try:
                wire, client = self.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            idx = self._note(wire, "udp")
            if len(pending) >= MAX_PENDING_UDP:
                self.unanswered += 1
                continue
            exchange = {"client": client, "wire": wire, "upstream": 0, "deadline": 0, "idx": idx}
            if not self._send_upstream(sel, pending, exchange):
                self.unanswered += 1

    def _udp_reply(
        self, sel: selectors.BaseSelector, pending: Pending, sock: socket.socket, exchange: dict[str, Any]
    ) -> None:
        try:
            reply = sock.recv(65535)
        except OSError:  # ICMP unreachable from that upstream: try the next one
            self._drop(sel, pending, sock)
            exchange["upstream"] += 1
            if not self._send_upstream(sel, pending, exchange):
                self.unanswered += 1
            return
        self._drop(sel, pending, sock)
        self._answered(exchange["idx"], reply)
        try:
            self.udp.sendto(reply, exchange["client"])
        except OSError:
            pass

    # TCP (RFC 1035 4.2.2: each message behind a two-byte length) ------------------------------

    def _accept(self) -> None:
        try:
            conn, _ = self.tcp.accept()
        except OSError:
            return
        if not self.tcp_slots.acquire(blocking=False):
            conn.close()
            return
        threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        upstream = None
        try:
            conn.setblocking(True)
            conn.settimeout(10)
            while not self.stopping:
                wire = transport.recv_message(conn)
                if wire is None:
                    return
                idx = self._note(wire, "tcp")
                reply = None
                for server in self.upstreams:
                    try:
                        if upstream is None:
                            upstream = socket.create_connection((server, self.port), self.timeout_ns / 1e9)
                        upstream.sendall(transport.framed(wire))
                        reply = transport.recv_message(upstream)
                    except OSError:
                        reply = None
                    if reply is not None:
                        break
                    if upstream is not None:
                        upstream.close()
                        upstream = None
                if reply is None:
                    self.unanswered += 1
                    return
                self._answered(idx, reply)
                conn.sendall(transport.framed(reply))
        except OSError:
            pass
        finally:
            if upstream is not None:
                upstream.close()
            conn.close()
            self.tcp_slots.release()
