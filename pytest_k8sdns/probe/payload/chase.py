"""The monitor's stdin, read as lines (chase requests, or the stop), and the names it chases: asked
through the libc until each answers once, to time how long a new name takes to resolve."""

from __future__ import annotations

import collections
import heapq
import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..protocol import MAX_STDIN_LINE
from .common import ArgError, arg, mono

if TYPE_CHECKING:
    from .monitor import LibcClient

CHASE_KEYS = ("chase",)


def chase_request(doc: dict[str, Any]) -> list[str]:
    """The names of a chase line's JSON object, or ArgError saying what is wrong with it."""
    unknown = sorted(str(key) for key in doc if key not in CHASE_KEYS)
    if unknown:
        raise ArgError("unknown keys {}; valid: {}".format(", ".join(unknown), ", ".join(CHASE_KEYS)))
    names: list[str] = arg(doc, "chase", list, required=True)
    return names


class Stdin:
    """The host's lines on fd 0, read by a daemon thread (raw reads, so no lock of sys.stdin is held
    when the interpreter exits). A JSON object is a chase request, queued as ("chase", names), or
    ("error", why) when malformed; any other line, or end-of-file, stops the run. `wake` is set at
    each of them."""

    def __init__(self, wake: threading.Event, fd: int | None = None) -> None:
        self.wake = wake
        self.fd = fd
        self.stopped = False
        self.requests: collections.deque[tuple[str, Any]] = collections.deque()  # appends and pops are atomic

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def put(self, kind: str, value: Any) -> None:
        self.requests.append((kind, value))
        self.wake.set()

    def take(self) -> list[tuple[str, Any]]:
        return [self.requests.popleft() for _ in range(len(self.requests))]

    def _read(self) -> None:
        try:
            fd = sys.stdin.fileno() if self.fd is None else self.fd
            pending = b""
            skipping = False  # inside a line over MAX_STDIN_LINE: drop it up to its newline
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                pending += chunk
                if b"\n" not in chunk:
                    if not skipping and len(pending) > MAX_STDIN_LINE:
                        self.put("error", f"a stdin line over {MAX_STDIN_LINE} bytes was ignored")
                        skipping = True
                    if skipping:
                        pending = b""
                    continue
                *lines, pending = pending.split(b"\n")
                if skipping:
                    lines, skipping = lines[1:], False
                for line in lines:
                    if not self._line(line):
                        return
        except (AttributeError, OSError, ValueError):  # no stdin at all: nothing could ever stop us
            pass
        finally:
            self.stopped = True
            self.wake.set()

    def _line(self, line: bytes) -> bool:
        """Take one line; False when it stops the run."""
        if len(line) > MAX_STDIN_LINE:
            self.put("error", f"a stdin line over {MAX_STDIN_LINE} bytes was ignored")
            return True
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):  # "stop", an empty line, or anything else that is not JSON
            return False
        if not isinstance(doc, dict):
            return False
        try:
            self.put("chase", chase_request(doc))
        except ArgError as exc:
            text = line.decode("utf-8", "replace")
            excerpt = repr(text if len(text) <= 80 else text[:77] + "...")
            self.put("error", f"stdin line {excerpt} ignored: {exc}")
        return True


class Chase:
    """Names asked through the libc until one lookup of each answers: at most one lookup of a name in
    flight, the next at the first tick (every_s from when the name was added) after it ended; a
    name without an answer give_up_s after it was added is dropped, and counted."""

    def __init__(self, libc: LibcClient, every_s: float, give_up_s: float, wake: threading.Event) -> None:
        self.libc = libc
        self.every_ns = int(every_s * 1e9)
        self.give_up_ns = int(give_up_s * 1e9)
        self.wake = wake  # set when a lookup ends: the run then schedules the name's next one
        self.lock = threading.Lock()
        self.due: list[tuple[int, int]] = []  # heap of (when, name_index): names waiting for a lookup
        self.added: dict[int, int] = {}  # name_index -> when it was added, while it is chased
        self.given_up = 0

    def add(self, names: list[str]) -> int:
        """Chase these names from now on, as the next name indexes; the first of them."""
        lookups = self.libc.lookups
        first = len(lookups.names)
        lookups.addresses.extend([None] * len(names))
        lookups.names.extend(names)
        now = mono()
        with self.lock:
            for idx in range(first, first + len(names)):
                self.added[idx] = now
                heapq.heappush(self.due, (now, idx))
        return first

    def step(self, now: int) -> int | None:
        """Start the lookups due (dropping names past their give-up); when the next one is due. None
        also while max_in_flight lookups run: the next of them to end wakes the run."""
        with self.lock:
            due = self.due
            while due and due[0][0] <= now:
                when, idx = heapq.heappop(due)
                if now >= self.added[idx] + self.give_up_ns:
                    del self.added[idx]
                    self.given_up += 1
                elif not self.libc.start_chase(idx, self._ended):
                    heapq.heappush(due, (when, idx))  # no slot: it starts as soon as one is free
                    self.libc.slot_wanted = True
                    return None
            self.libc.slot_wanted = False
            return due[0][0] if due else None

    def _ended(self, idx: int, ok: bool, end: int) -> None:
        with self.lock:
            added = self.added.get(idx)
            if added is None:
                return
            if ok:
                del self.added[idx]  # answered once: never asked again
            else:
                tick = added + ((end - added) // self.every_ns + 1) * self.every_ns
                heapq.heappush(self.due, (min(tick, added + self.give_up_ns), idx))
        self.wake.set()
