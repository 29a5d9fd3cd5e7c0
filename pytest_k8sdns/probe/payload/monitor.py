"""`monitor`: libc lookups and raw queries from one UDP socket at steady rates, streamed as NDJSON
rows while a change runs (a CoreDNS rollout), until a line or end-of-file on stdin."""

from __future__ import annotations

import collections
import ipaddress
import itertools
import os
import sys
import threading
import time
from typing import Any

from ..protocol import (
    CLIENTS,
    ERR_OTHER,
    FAMILIES,
    MAX_DURATION_S,
    MAX_MONITOR_QPS,
    MAX_THREADS,
    MONITOR_COLUMNS,
    MONITOR_DRAIN_S,
    PROBE_VERSION,
)
from .common import ArgError, arg, emit, ip_arg, mono, read_resolv_conf
from .lookup import Lookups
from .udpsocket import QTYPES, SOCKET, SocketClient

LIBC = CLIENTS.index("libc")  # the client column of its rows


def first_nameserver(text: str | None) -> str | None:
    """The first `nameserver` of resolv.conf text that is an IP address, as the libc takes it."""
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                return str(ipaddress.ip_address(fields[1]))
            except ValueError:
                continue
    return None


def watch_stdin(stopped: threading.Event) -> None:
    """Set `stopped` at the first line or at end-of-file on stdin. Raw reads of fd 0, so no lock of
    sys.stdin is held by this (daemon) thread when the interpreter exits."""
    try:
        fd = sys.stdin.fileno()
        while True:
            chunk = os.read(fd, 4096)
            if not chunk or b"\n" in chunk:
                break
    except (AttributeError, OSError, ValueError):  # no stdin at all: nothing could ever stop us
        pass
    stopped.set()


class Rows:
    """Finished rows waiting for the next rows line, counts and first error texts, shared by the
    threads of both clients."""

    def __init__(self) -> None:
        self.pending: collections.deque[list[int]] = collections.deque()  # appends and pops are atomic
        self.errors: dict[int, str] = {}
        self.count = {key: 0 for key in ("libc_ok", "libc_failed", "skipped", "socket_ok", "socket_failed", "late")}
        self._lock = threading.Lock()

    def add(self, client: int, idx: int, start: int, latency: int, code: int) -> None:
        ok = 1 if code == 0 else 0
        key = ("libc_" if client == LIBC else "socket_") + ("ok" if ok else "failed")
        with self._lock:
            self.count[key] += 1
        self.pending.append([client, idx, start, latency, ok, code])

    def tally(self, key: str) -> None:
        with self._lock:
            self.count[key] += 1

    def error(self, code: int, text: str) -> None:
        with self._lock:
            self.errors.setdefault(code, text)

    def take(self) -> list[list[int]]:
        return [self.pending.popleft() for _ in range(len(self.pending))]


class LibcClient:
    """Open-loop getaddrinfo: each lookup in its own daemon thread, at most max_in_flight at once."""

    def __init__(self, rows: Rows, names: list[str], family: int, max_in_flight: int, t0: int) -> None:
        self.rows = rows
        self.lookups = Lookups(names, family, 0)
        self.max_in_flight = max_in_flight
        self.t0 = t0
        self.turn = itertools.count()
        self.in_flight = 0
        self.closed = False
        self.cond = threading.Condition()

    def start(self) -> None:
        with self.cond:
            if self.in_flight >= self.max_in_flight:
                self.rows.tally("skipped")
                return
            self.in_flight += 1
        idx = next(self.turn) % len(self.lookups.names)
        try:
            threading.Thread(target=self._one, args=(idx,), daemon=True).start()
        except RuntimeError as exc:  # the pod's thread limit: counted like a lookup not started
            with self.cond:
                self.in_flight -= 1
                self.rows.tally("skipped")
            self.rows.error(ERR_OTHER, f"cannot start a lookup thread: {exc}")

    def _one(self, idx: int) -> None:
        row = self.lookups.one(idx, self.t0)  # [name_index, start_offset_ns, latency_ns, ok, error_code, n_addrs]
        with self.cond:
            self.in_flight -= 1
            if not self.closed:  # after close the end document is being written: too late to count
                self.rows.add(LIBC, row[0], row[1], row[2], row[4])
            self.cond.notify_all()

    def close(self) -> int:
        """No row counts any more; the number of lookups still running (unfinished)."""
        with self.cond:
            self.closed = True
            return self.in_flight


def cmd_monitor(args: dict[str, Any]) -> dict[str, Any]:
    names = arg(args, "names", list, required=True)
    qps = arg(args, "qps", float, 10.0, lo=0.0, hi=MAX_MONITOR_QPS)
    socket_qps = arg(args, "socket_qps", float, 0.0, lo=0.0, hi=MAX_MONITOR_QPS)
    family = FAMILIES[arg(args, "family", str, "any", choices=FAMILIES)]
    qtype = QTYPES[arg(args, "qtype", str, "A", choices=QTYPES)]
    timeout_s = arg(args, "timeout_s", float, 2.0, lo=0.05, hi=30.0)
    max_in_flight = arg(args, "max_in_flight", int, 64, lo=1, hi=MAX_THREADS)
    duration_s = arg(args, "duration_s", float, 600.0, lo=0.0, hi=MAX_DURATION_S)
    flush_s = arg(args, "flush_s", float, 0.5, lo=0.05, hi=10.0)
    server = ip_arg(args, "server")
    if server is None:
        text, error = read_resolv_conf()
        server = first_nameserver(text)
        if server is None and socket_qps > 0:
            why = error or "it has no nameserver line"
            raise ArgError(f"socket_qps needs a server: argument 'server' is missing and /etc/resolv.conf gives none "
                           f"({why}); pass server")
    else:
        server = str(ipaddress.ip_address(server))  # as recvfrom gives the source, for the match

    rows = Rows()
    stdin_line = threading.Event()
    t0 = mono()
    libc = LibcClient(rows, names, family, max_in_flight, t0) if qps > 0 else None
    sock = SocketClient(rows, names, qtype, server, timeout_s, t0) if socket_qps > 0 else None
    emit(
        {
            "command": "monitor",
            "probe_version": PROBE_VERSION,
            "event": "start",
            "t0_unix_ns": time.time_ns() - (mono() - t0),
            "columns": list(MONITOR_COLUMNS),
            "clients": list(CLIENTS),
            "names": names,
            "server": server,
            "source_port": sock.source_port if sock is not None else None,
            "qps": qps,
            "socket_qps": socket_qps,
            "timeout_s": timeout_s,
        }
    )
    threading.Thread(target=watch_stdin, args=(stdin_line,), daemon=True).start()
    try:
        stopped = _run(rows, libc, sock, qps, socket_qps, t0, duration_s, flush_s, stdin_line)
        unfinished = _drain(rows, libc, sock, flush_s, timeout_s)
    finally:
        if sock is not None:
            sock.close()
    batch = rows.take()
    if batch:
        emit({"event": "rows", "rows": batch})
    count = rows.count
    # the clients' codes do not overlap but for ERR_ENCODE and ERR_OTHER: libc's text comes first
    errors = {**rows.errors, **(libc.lookups.errors if libc is not None else {})}
    return {
        "event": "end",
        "stopped": stopped,
        "elapsed_ns": mono() - t0,
        "totals": {
            "libc": {
                "lookups": count["libc_ok"] + count["libc_failed"],
                "ok": count["libc_ok"],
                "failed": count["libc_failed"],
                "skipped": count["skipped"],
                "unfinished": unfinished,
            },
            "socket": {
                "queries": count["socket_ok"] + count["socket_failed"],
                "ok": count["socket_ok"],
                "failed": count["socket_failed"],
                "late": count["late"],
            },
        },
        "errors": {str(code): text for code, text in sorted(errors.items())},
    }


def _run(
    rows: Rows,
    libc: LibcClient | None,
    sock: SocketClient | None,
    qps: float,
    socket_qps: float,
    t0: int,
    duration_s: float,
    flush_s: float,
    stdin_line: threading.Event,
) -> str:
    """Start lookups and send queries on their schedules and write rows lines, until stdin or the
    duration says stop; which one did."""
    period = {LIBC: 1e9 / qps if qps else 0.0, SOCKET: 1e9 / socket_qps if socket_qps else 0.0}
    due: dict[int, float] = {}
    if libc is not None:
        due[LIBC] = float(t0)
    if sock is not None:
        due[SOCKET] = float(t0)
    deadline = t0 + int(duration_s * 1e9)
    flush_ns = int(flush_s * 1e9)
    next_flush = t0 + flush_ns
    while True:
        if stdin_line.is_set():
            return "stdin"
        now = mono()
        if now >= deadline:
            return "duration"
        for client, when in due.items():
            if now >= when:
                if client == LIBC and libc is not None:
                    libc.start()
                elif sock is not None:
                    sock.send()
                # a schedule held up (a slow thread start) is not made up in a burst afterwards
                due[client] = max(when, now - period[client]) + period[client]
        if now >= next_flush:
            batch = rows.take()
            if batch:
                emit({"event": "rows", "rows": batch})
            next_flush = max(next_flush + flush_ns, now)
        wake = min([deadline, next_flush, *due.values()])
        wait = wake - mono()
        if wait > 0:
            stdin_line.wait(wait / 1e9)  # the schedule's next step, cut short by a stop line


def _drain(rows: Rows, libc: LibcClient | None, sock: SocketClient | None, flush_s: float, timeout_s: float) -> int:
    """After the stop: wait for lookups in flight (up to MONITOR_DRAIN_S) and the socket's pending
    queries (their timeout), still writing rows lines; the number of lookups left unfinished."""
    flush_ns = int(flush_s * 1e9)
    start = mono()
    libc_deadline = start + int(MONITOR_DRAIN_S * 1e9)
    next_flush = start + flush_ns
    if sock is not None:
        sock.draining.set()
    while True:
        now = mono()
        sock_done = sock is None or sock.drain(0)
        libc_done = libc is None or now >= libc_deadline
        if libc is not None and not libc_done:
            with libc.cond:
                libc_done = libc.in_flight == 0
        if sock_done and libc_done:
            return libc.close() if libc is not None else 0
        if now >= next_flush:
            batch = rows.take()
            if batch:
                emit({"event": "rows", "rows": batch})
            next_flush = now + flush_ns
        wait_ns = min(next_flush - mono(), 5 * 10**7)
        if sock is not None and not sock_done:
            sock.receiver.join(max(wait_ns, 10**6) / 1e9)
        elif libc is not None:
            with libc.cond:
                if libc.in_flight:
                    libc.cond.wait(max(wait_ns, 10**6) / 1e9)
