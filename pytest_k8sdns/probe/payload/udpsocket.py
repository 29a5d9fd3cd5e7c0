"""The monitor's socket client: raw A/AAAA queries from one UDP socket bound once, so its source
port never changes (as Go's and Java's resolvers and nscd keep theirs), matched by ID and question."""

from __future__ import annotations

import collections
import ipaddress
import itertools
import random
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

from ..protocol import CLIENTS, ERR_EMPTY, ERR_ENCODE, ERR_SEND, ERR_TIMEOUT
from .common import mono
from .wire import rcode_builtin

if TYPE_CHECKING:
    from .monitor import Rows

SOCKET = CLIENTS.index("socket")  # the client column of its rows
QTYPES = {"A": 1, "AAAA": 28}
DNS_PORT = 53
LATE_WINDOW_NS = 10 * 10**9  # how long a timed-out query's ID is remembered, to count its late reply
MAX_REMEMBERED = 16384  # timed-out IDs remembered at most (of 65536), so free IDs stay easy to draw


def question(name: str, qtype: int) -> bytes:
    """The question section for `name` (taken as absolute: no search list), class IN."""
    labels = name.rstrip(".").split(".") if name != "." else []
    out = b""
    for label in labels:
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"label {label!r} of {name!r} is not 1 to 63 bytes")
        out += bytes([len(raw)]) + raw
    out += b"\0"
    if len(out) > 255:
        raise ValueError(f"{name!r} is longer than 255 bytes in wire form")
    return out + struct.pack("!HH", qtype, 1)


def query_message(qid: int, wire_question: bytes) -> bytes:
    """A query with ID qid, RD set and the one question `question()` built."""
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire_question




class SocketClient:
    """Queries sent from one UDP socket, bound once, so its source port never changes (as Go's and
    Java's resolvers and nscd keep theirs); a receiver thread matches replies and times out the rest."""

    def __init__(self, rows: Rows, names: list[str], qtype: int, server: str, timeout_s: float, t0: int) -> None:
        self.rows = rows
        self.names = names
        self.server = server
        self.timeout_ns = int(timeout_s * 1e9)
        self.t0 = t0
        self.questions: list[bytes | None] = []
        for name in names:
            try:
                self.questions.append(question(name, qtype))
            except (UnicodeError, ValueError) as exc:
                self.questions.append(None)
                rows.error(ERR_ENCODE, f"{type(exc).__name__}: {exc}")
        family = socket.AF_INET6 if ipaddress.ip_address(server).version == 6 else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        self.source_port: int = self.sock.getsockname()[1]
        self.turn = itertools.count()
        self.lock = threading.Lock()
        self.waiting: dict[int, tuple[int, int, bytes]] = {}  # id -> (name_index, start, question)
        self.deadlines: collections.deque[tuple[int, int, int]] = collections.deque()  # (deadline, id, start)
        self.expired: dict[int, int] = {}  # id of a timed-out query -> until when a reply counts as late
        self.draining = threading.Event()
        self.receiver = threading.Thread(target=self._receive, daemon=True)
        self.receiver.start()

    def send(self) -> None:
        idx = next(self.turn) % len(self.names)
        wire_question = self.questions[idx]
        if wire_question is None:
            self.rows.add(SOCKET, idx, mono() - self.t0, 0, ERR_ENCODE)
            return
        with self.lock:
            qid = random.getrandbits(16)
            while qid in self.waiting or qid in self.expired:
                qid = random.getrandbits(16)
            start = mono()
            # registered before sending: the reply may come before sendto returns
            self.waiting[qid] = (idx, start, wire_question)
            self.deadlines.append((start + self.timeout_ns, qid, start))
        message = query_message(qid, wire_question)
        try:
            self.sock.sendto(message, (self.server, DNS_PORT))
        except OSError as exc:
            end = mono()
            with self.lock:
                self.waiting.pop(qid, None)
            self.rows.add(SOCKET, idx, start - self.t0, end - start, ERR_SEND)
            self.rows.error(ERR_SEND, f"{type(exc).__name__}: {exc}")

    def _expire(self, now: int) -> int | None:
        """Time out the queries past their deadline (under the lock); the next deadline, if any."""
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, qid, start = deadlines.popleft()
            entry = self.waiting.get(qid)
            if entry is None or entry[1] != start:
                continue  # answered (or a send that failed)
            del self.waiting[qid]
            self.expired[qid] = now + LATE_WINDOW_NS
            self.rows.add(SOCKET, entry[0], start - self.t0, now - start, ERR_TIMEOUT)
            self.rows.error(ERR_TIMEOUT, f"no reply from {self.server}:{DNS_PORT} within {self.timeout_ns / 1e9} s")
        expired = self.expired
        while expired:
            oldest = next(iter(expired))
            if expired[oldest] > now and len(expired) <= MAX_REMEMBERED:
                break
            del expired[oldest]
        return deadlines[0][0] if deadlines else None

    def _receive(self) -> None:
        sock = self.sock
        try:
            while True:
                with self.lock:
                    next_deadline = self._expire(mono())
                    if self.draining.is_set() and not self.waiting:
                        return
                wait_ns = next_deadline - mono() if next_deadline is not None else 10**8
                sock.settimeout(min(max(wait_ns, 10**6), 10**8) / 1e9)
                try:
                    data, source = sock.recvfrom(4096)
                except socket.timeout:
                    continue
                except OSError:
                    time.sleep(0.01)  # an ICMP error surfacing; the queries time out by themselves
                    continue
                end = mono()
                if source[1] == DNS_PORT and source[0] == self.server and len(data) >= 12:
                    self._reply(data, end)
        finally:
            self.draining.set()

    def _reply(self, data: bytes, end: int) -> None:
        qid, flags, qdcount, ancount = struct.unpack_from("!HHHH", data)
        if not flags & 0x8000:  # not a response
            return
        with self.lock:
            entry = self.waiting.get(qid)
            if entry is None:
                if self.expired.pop(qid, None) is not None:
                    self.rows.tally("late")
                return
            idx, start, wire_question = entry
            # a reply to another question under a reused ID is not this query's (case aside)
            if qdcount and data[12 : 12 + len(wire_question)].lower() != wire_question.lower():
                return
            del self.waiting[qid]
        rcode = flags & 0x000F
        code = rcode if rcode else (0 if ancount else ERR_EMPTY)
        self.rows.add(SOCKET, idx, start - self.t0, end - start, code)
        if code == ERR_EMPTY:
            self.rows.error(code, f"NOERROR without an answer for {self.names[idx]} from {self.server}")
        elif code:
            self.rows.error(code, f"{rcode_builtin(data)} for {self.names[idx]} from {self.server}")

    def drain(self, wait_s: float) -> bool:
        """Send no more; True once every query sent has its reply or its timeout row."""
        self.draining.set()
        self.receiver.join(wait_s)
        return not self.receiver.is_alive()

    def close(self) -> None:
        self.sock.close()
