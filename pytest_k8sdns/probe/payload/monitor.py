"""`monitor`: libc lookups and raw queries from one UDP socket at steady rates, streamed as NDJSON
rows while a change runs (a CoreDNS rollout), until a line or end-of-file on stdin; names sent on
stdin (or as `chase`) are asked through the libc until they answer (chase.py)."""

from __future__ import annotations

import collections
import ipaddress
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

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
from .chase import Chase, Stdin
from .common import ArgError, arg, emit, ip_arg, mono, read_resolv_conf
from .lookup import Lookups
from .udpsocket import QTYPES, SOCKET, SocketClient

if TYPE_CHECKING:
    from collections.abc import Callable

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
    """getaddrinfo, each lookup in its own daemon thread, at most max_in_flight at once: open loop
    over the run's names (start), and the chased names' lookups (start_chase)."""

    def __init__(self, rows: Rows, names: list[str], family: int, max_in_flight: int, t0: int,
                 wake: threading.Event) -> None:
        self.rows = rows
        self.lookups = Lookups(list(names), family, 0)  # its own list: chased names are appended to it
        self.n_names = len(names)  # the open loop's, which it takes in turn
        self.max_in_flight = max_in_flight
        self.t0 = t0
        self.wake = wake
        self.slot_wanted = False  # a chased name waits for a free slot: wake the run when one frees
        self.turn = itertools.count()
        self.in_flight = 0
        self.closed = False
        self.cond = threading.Condition()

    def start(self) -> None:
        if not self._slot():
            self.rows.tally("skipped")
            return
        self._thread(next(self.turn) % self.n_names, None)

    def start_chase(self, idx: int, ended: Callable[[int, bool, int], None]) -> bool:
        """One lookup of a chased name, `ended(idx, ok, end)` after its row; False if none started."""
        return self._slot() and self._thread(idx, ended)

    def _slot(self) -> bool:
        with self.cond:
            if self.in_flight >= self.max_in_flight:
                return False
            self.in_flight += 1
            return True

    def _thread(self, idx: int, ended: Callable[[int, bool, int], None] | None) -> bool:
        try:
            threading.Thread(target=self._one, args=(idx, ended), daemon=True).start()
        except RuntimeError as exc:  # the pod's thread limit: counted like a lookup not started
            with self.cond:
                self.in_flight -= 1
            if ended is None:
                self.rows.tally("skipped")
            self.rows.error(ERR_OTHER, f"cannot start a lookup thread: {exc}")
            return False
        return True

    def _one(self, idx: int, ended: Callable[[int, bool, int], None] | None) -> None:
        row = self.lookups.one(idx, self.t0)  # [name_index, start_offset_ns, latency_ns, ok, error_code, n_addrs]
        with self.cond:
            self.in_flight -= 1
            closed = self.closed
            if not closed:  # after close the end document is being written: too late to count
                self.rows.add(LIBC, row[0], row[1], row[2], row[4])
            self.cond.notify_all()
        if ended is not None and not closed:
            ended(idx, row[3] == 1, self.t0 + row[1] + row[2])
        elif self.slot_wanted:
            self.wake.set()

    def close(self) -> int:
        """No row counts any more; the number of lookups still running (unfinished)."""
        with self.cond:
            self.closed = True
            return self.in_flight


def _names(args: dict[str, Any], key: str, needed: str | None) -> list[str]:
    """A list of names; absent (or empty) is [] unless `needed` says why some are."""
    if args.get(key) is None or args.get(key) == [] and needed is None:
        if needed is not None:
            raise ArgError(f"missing argument {key!r}: {needed}")
        return []
    names: list[str] = arg(args, key, list)
    return names


def cmd_monitor(args: dict[str, Any]) -> dict[str, Any]:
    qps = arg(args, "qps", float, 10.0, lo=0.0, hi=MAX_MONITOR_QPS)
    socket_qps = arg(args, "socket_qps", float, 0.0, lo=0.0, hi=MAX_MONITOR_QPS)
    names = _names(args, "names", "needed while qps or socket_qps is above 0 (qps defaults to 10)"
                   if qps > 0 or socket_qps > 0 else None)
    family = FAMILIES[arg(args, "family", str, "any", choices=FAMILIES)]
    qtype = QTYPES[arg(args, "qtype", str, "A", choices=QTYPES)]
    timeout_s = arg(args, "timeout_s", float, 2.0, lo=0.05, hi=30.0)
    max_in_flight = arg(args, "max_in_flight", int, 64, lo=1, hi=MAX_THREADS)
    duration_s = arg(args, "duration_s", float, 600.0, lo=0.0, hi=MAX_DURATION_S)
    flush_s = arg(args, "flush_s", float, 0.5, lo=0.05, hi=10.0)
    chase_every_s = arg(args, "chase_every_s", float, 0.1, lo=0.02, hi=10.0)
    chase_give_up_s = arg(args, "chase_give_up_s", float, 120.0, lo=1.0, hi=MAX_DURATION_S)
    chase_names = _names(args, "chase", None)
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
    wake = threading.Event()  # the run's loop sleeps on it: stdin, and chased lookups ending
    t0 = mono()
    libc = LibcClient(rows, names, family, max_in_flight, t0, wake)
    sock = SocketClient(rows, names, qtype, server, timeout_s, t0) if socket_qps > 0 else None
    chase = Chase(libc, chase_every_s, chase_give_up_s, wake)
    stdin = Stdin(wake)
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
            "chase_every_s": chase_every_s,
            "chase_give_up_s": chase_give_up_s,
        }
    )
    if chase_names:
        stdin.put("chase", chase_names)  # as if the first line on stdin: its chased line comes first
    stdin.start()
    try:
        stopped = _run(rows, libc, sock, chase, stdin, qps, socket_qps, t0, duration_s, flush_s)
        unfinished = _drain(rows, libc, sock, flush_s, timeout_s)
    finally:
        if sock is not None:
            sock.close()
    batch = rows.take()
    if batch:
        emit({"event": "rows", "rows": batch})
    count = rows.count
    # the clients' codes do not overlap but for ERR_ENCODE and ERR_OTHER: libc's text comes first
    errors = {**rows.errors, **libc.lookups.errors}
    with chase.lock:
        given_up = chase.given_up
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
                "chase_given_up": given_up,
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
    libc: LibcClient,
    sock: SocketClient | None,
    chase: Chase,
    stdin: Stdin,
    qps: float,
    socket_qps: float,
    t0: int,
    duration_s: float,
    flush_s: float,
) -> str:
    """Start lookups and send queries on their schedules, take the chase lines, write rows lines,
    until stdin or the duration says stop; which one did."""
    period = {LIBC: 1e9 / qps if qps else 0.0, SOCKET: 1e9 / socket_qps if socket_qps else 0.0}
    due: dict[int, float] = {}
    if qps > 0:
        due[LIBC] = float(t0)
    if sock is not None:
        due[SOCKET] = float(t0)
    deadline = t0 + int(duration_s * 1e9)
    flush_ns = int(flush_s * 1e9)
    next_flush = t0 + flush_ns
    while True:
        stdin.wake.clear()  # before taking: whatever comes after this sets it again
        for kind, value in stdin.take():
            if kind == "chase":  # announced before any row of the new indexes
                emit({"event": "chased", "names": value, "first_index": chase.add(value)})
            else:
                emit({"event": "error", "error": value})
        if stdin.stopped:
            return "stdin"
        now = mono()
        if now >= deadline:
            return "duration"
        for client, when in due.items():
            if now >= when:
                if client == LIBC:
                    libc.start()
                elif sock is not None:
                    sock.send()
                # a schedule held up (a slow thread start) is not made up in a burst afterwards
                due[client] = max(when, now - period[client]) + period[client]
        chase_due = chase.step(now)
        if now >= next_flush:
            batch = rows.take()
            if batch:
                emit({"event": "rows", "rows": batch})
            next_flush = max(next_flush + flush_ns, now)
        wake = min([deadline, next_flush, *due.values(), *([chase_due] if chase_due is not None else [])])
        wait = wake - mono()
        if wait > 0:
            stdin.wake.wait(wait / 1e9)  # the schedule's next step, cut short by stdin or a chased lookup's end


def _drain(rows: Rows, libc: LibcClient, sock: SocketClient | None, flush_s: float, timeout_s: float) -> int:
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
        libc_done = now >= libc_deadline
        if not libc_done:
            with libc.cond:
                libc_done = libc.in_flight == 0
        if sock_done and libc_done:
            return libc.close()
        if now >= next_flush:
            batch = rows.take()
            if batch:
                emit({"event": "rows", "rows": batch})
            next_flush = now + flush_ns
        wait_ns = min(next_flush - mono(), 5 * 10**7)
        if sock is not None and not sock_done:
            sock.receiver.join(max(wait_ns, 10**6) / 1e9)
        else:
            with libc.cond:
                if libc.in_flight:
                    libc.cond.wait(max(wait_ns, 10**6) / 1e9)
