"""`load`: a paced ramp of raw UDP queries to one server, the way resperf ramps, for the capacity check.

Each step sends `rates[i]` queries per second for `step_s` seconds, spread over a few non-blocking
UDP sockets (so several source ports, as many clients would), with IDs drawn so that no two queries
in flight on one socket share one. A reply is matched by its ID on its socket; a query without a
reply after `timeout_s` is lost. Every outcome is counted for the step in which its query was sent,
and latencies go into the fixed histogram protocol.LOAD_BUCKETS_NS, so the host can merge the steps
of several pods. stdlib only (socket, select): it runs in the musl probe's static Python too.
"""

from __future__ import annotations

import collections
import random
import select
import socket
import struct
import time
from bisect import bisect_left
from typing import Any

from ..protocol import (
    LOAD_BUCKETS_NS,
    LOAD_QTYPES,
    MAX_LOAD_QPS,
    MAX_LOAD_SOCKETS,
    MAX_LOAD_STEPS,
)
from .common import ArgError, arg, ip_arg, mono
from .udpsocket import query_message, question
from .wire import rcode_builtin

BATCH = 64  # queries sent at most between two looks at the sockets, so replies never queue long
RECV_BUFFER = 1 << 21  # bytes: a socket's receive buffer, so a burst of replies is not dropped here
FLAG_TC = 0x02  # byte 2 of the header: the reply was truncated


def _rates(args: dict[str, Any]) -> list[float]:
    rates = args.get("rates")
    if not isinstance(rates, list) or not rates or len(rates) > MAX_LOAD_STEPS:
        raise ArgError(f"argument 'rates' must be a list of 1 to {MAX_LOAD_STEPS} rates (queries/s)")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_LOAD_QPS:
            raise ArgError(f"argument 'rates' holds {rate!r}; each rate must be in (0, {MAX_LOAD_QPS}] queries/s")
    return [float(rate) for rate in rates]


def _new_step(rate: float) -> dict[str, Any]:
    return {"rate": rate, "sent": 0, "answered": 0, "timeouts": 0, "send_errors": 0, "truncated": 0,
            "empty": 0, "rcodes": {}, "histogram": [0] * (len(LOAD_BUCKETS_NS) + 1)}


class Ramp:
    """The ramp's state: sockets, queries in flight, and the per-step tallies."""

    def __init__(self, server: str, port: int, questions: list[bytes], n_sockets: int, timeout_ns: int) -> None:
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        self.socks = []
        for _ in range(n_sockets):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            sock.connect((server, port))  # replies from anyone else are not ours
            sock.setblocking(False)
            self.socks.append(sock)
        self.by_fd = {sock.fileno(): i for i, sock in enumerate(self.socks)}
        self.questions = questions
        self.timeout_ns = timeout_ns
        self.inflight: dict[int, tuple[int, int]] = {}  # socket << 16 | id -> (sent_ns, step)
        self.order: collections.deque[tuple[int, int]] = collections.deque()  # (key, sent_ns), in send order
        self.next_id = [random.randrange(65536) for _ in self.socks]
        self.steps: list[dict[str, Any]] = []
        self.late = 0
        self.sent = 0

    def send(self, step: int) -> None:
        i = self.sent % len(self.socks)
        wire_question = self.questions[self.sent % len(self.questions)]
        self.sent += 1
        tally = self.steps[step]
        tally["sent"] += 1
        qid = self.next_id[i]
        for _ in range(65536):  # the next ID not in flight on this socket
            if (i << 16 | qid) not in self.inflight:
                break
            qid = (qid + 1) & 0xFFFF
        else:  # every ID in flight on this socket: counted as a send error, never waited for
            tally["send_errors"] += 1
            return
        self.next_id[i] = (qid + 1) & 0xFFFF
        now = mono()
        try:
            self.socks[i].send(query_message(qid, wire_question))
        except OSError:  # a full send buffer or an ICMP error queued on the socket
            tally["send_errors"] += 1
            return
        key = i << 16 | qid
        self.inflight[key] = (now, step)
        self.order.append((key, now))

    def receive(self, wait_s: float) -> None:
        ready, _, _ = select.select(self.socks, [], [], max(0.0, wait_s))
        for sock in ready:
            i = self.by_fd[sock.fileno()]
            for _ in range(4096):
                try:
                    wire = sock.recv(65535)
                except OSError:  # drained (EAGAIN), or an ICMP error: its query times out
                    break
                now = mono()
                if len(wire) < 12:
                    continue
                key = i << 16 | struct.unpack_from("!H", wire, 0)[0]
                sent = self.inflight.pop(key, None)
                if sent is None:
                    self.late += 1  # after its timeout, or a duplicate
                    continue
                tally = self.steps[sent[1]]
                tally["answered"] += 1
                rcode = rcode_builtin(wire)
                tally["rcodes"][rcode] = tally["rcodes"].get(rcode, 0) + 1
                if wire[2] & FLAG_TC:
                    tally["truncated"] += 1
                elif rcode == "NOERROR" and struct.unpack_from("!H", wire, 6)[0] == 0:
                    tally["empty"] += 1
                tally["histogram"][bisect_left(LOAD_BUCKETS_NS, now - sent[0])] += 1

    def expire(self, now: int) -> None:
        while self.order and now - self.order[0][1] >= self.timeout_ns:
            key, sent_ns = self.order.popleft()
            held = self.inflight.get(key)
            if held is not None and held[0] == sent_ns:
                del self.inflight[key]
                self.steps[held[1]]["timeouts"] += 1

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def _lost(tally: dict[str, Any]) -> float:
    return (tally["timeouts"] + tally["send_errors"]) / tally["sent"] if tally["sent"] else 0.0


def cmd_load(args: dict[str, Any]) -> dict[str, Any]:
    server = ip_arg(args, "server", required=True)
    port = arg(args, "port", int, 53, lo=1, hi=65535)
    names = arg(args, "names", list, required=True)
    qtype = arg(args, "qtype", str, "A", choices=LOAD_QTYPES)
    rates = _rates(args)
    step_s = arg(args, "step_s", float, 1.0, lo=0.05, hi=60.0)
    timeout_s = arg(args, "timeout_s", float, 1.0, lo=0.01, hi=10.0)
    n_sockets = arg(args, "sockets", int, 8, lo=1, hi=MAX_LOAD_SOCKETS)
    start_at = arg(args, "start_at", float, 0.0, lo=0.0)  # wall-clock second to start at, so pods start together
    stop_loss = arg(args, "stop_loss", float, 1.0, lo=0.0, hi=1.0)  # stop after 2 steps in a row lose more
    try:
        questions = [question(name, LOAD_QTYPES[qtype]) for name in names]
    except (ValueError, UnicodeError) as exc:
        raise ArgError(f"argument 'names': {exc}") from None
    delay = start_at - time.time()
    if delay > 60:
        raise ArgError(f"argument 'start_at' is {delay:.0f} s ahead; at most 60")
    if delay > 0:
        time.sleep(delay)  # a start time shared with the other pods, not a wait for a condition
    ramp = Ramp(server, port, questions, n_sockets, int(timeout_s * 1e9))
    step_ns = int(step_s * 1e9)
    stopped = "done"
    t0 = mono()
    try:
        for step, rate in enumerate(rates):
            ramp.steps.append(_new_step(rate))
            begin = t0 + step * step_ns
            total = int(rate * step_s)
            while True:
                now = mono()
                due = min(total, int((now - begin) * rate / 1e9) + 1)
                batch = 0
                while ramp.steps[step]["sent"] < due and batch < BATCH:
                    ramp.send(step)
                    batch += 1
                if now - begin >= step_ns:
                    break
                next_due = begin + int((ramp.steps[step]["sent"] + 1) * 1e9 / rate)
                ramp.receive(0.0 if batch == BATCH else min(0.005, (next_due - mono()) / 1e9))
                ramp.expire(mono())
            settled = ramp.steps[:-1]  # the current step's last queries may still be in flight
            if len(settled) >= 2 and all(_lost(t) > stop_loss for t in settled[-2:]):
                stopped = "loss"
                break
        end = mono() + ramp.timeout_ns
        while ramp.inflight and mono() < end:  # the last replies, then whatever is left is lost
            ramp.receive(0.01)
        ramp.expire(mono() + ramp.timeout_ns)
    finally:
        ramp.close()
    return {
        "server": server,
        "port": port,
        "qtype": qtype,
        "names": len(names),
        "step_s": step_s,
        "timeout_s": timeout_s,
        "sockets": n_sockets,
        "buckets_ns": list(LOAD_BUCKETS_NS),
        "steps": ramp.steps,
        "late": ramp.late,
        "stopped": stopped,
        "elapsed_s": round((mono() - t0) / 1e9, 3),
    }
