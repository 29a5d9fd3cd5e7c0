"""`lookup` (paced libc getaddrinfo lookups) and `burst` (parallel ones released together)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any

from ..protocol import (
    BURST_COLUMNS,
    DEFAULT_MAX_LOOKUPS,
    ERR_ENCODE,
    ERR_OTHER,
    FAMILIES,
    LOOKUP_COLUMNS,
    MAX_DURATION_S,
    MAX_LOOKUPS,
    MAX_STOP_RULES,
    MAX_THREADS,
    SOCKTYPES,
    STOP_OUTCOMES,
    STOP_RULE_KEYS,
)
from .common import ArgError, ProbeFailure, arg, key_of, mono


class Lookups:
    """Shared state of one run of libc lookups: names, first addresses, error texts."""

    def __init__(self, names: list[str], family: int, socktype: int) -> None:
        self.names = names
        self.family = family
        self.socktype = socktype
        self.addresses: list[list[str] | None] = [None] * len(names)
        self.errors: dict[int, str] = {}

    def one(self, idx: int, t0: int) -> list[int]:
        """Do one getaddrinfo of names[idx]; return its row (without the burst column)."""
        name = self.names[idx]
        start = mono()
        try:
            res = socket.getaddrinfo(name, None, self.family, self.socktype)
        except socket.gaierror as exc:
            end = mono()
            code = exc.errno if isinstance(exc.errno, int) and exc.errno else ERR_OTHER
            self._error(code, exc)
            return [idx, start - t0, end - start, 0, code, 0]
        except UnicodeError as exc:
            end = mono()
            self._error(ERR_ENCODE, exc)
            return [idx, start - t0, end - start, 0, ERR_ENCODE, 0]
        except Exception as exc:
            end = mono()
            self._error(ERR_OTHER, exc)
            return [idx, start - t0, end - start, 0, ERR_OTHER, 0]
        end = mono()
        addrs = {ai[4][0] for ai in res}
        if self.addresses[idx] is None:
            self.addresses[idx] = sorted(str(addr) for addr in addrs)
        return [idx, start - t0, end - start, 1, 0, len(addrs)]

    def _error(self, code: int, exc: BaseException) -> None:
        if code not in self.errors:
            self.errors[code] = f"{type(exc).__name__}: {exc}"

    def document(self, rows: list[list[int]], elapsed_ns: int) -> dict[str, Any]:
        ok = sum(row[3] for row in rows)
        return {
            "names": self.names,
            "family": key_of(FAMILIES, self.family),
            "socktype": key_of(SOCKTYPES, self.socktype),
            "lookups": rows,
            "addresses": self.addresses,
            "errors": {str(code): text for code, text in sorted(self.errors.items())},
            "totals": {
                "lookups": len(rows),
                "ok": ok,
                "failed": len(rows) - ok,
                "elapsed_ns": elapsed_ns,
                "rate_per_s": round(len(rows) / (elapsed_ns / 1e9), 3) if elapsed_ns > 0 else 0.0,
            },
        }


class StopRules:
    """Early-stop rules: the run ends once more than `more_than` lookups match one rule (its outcome,
    and a latency of at least `min_latency_ns`), as the check's failure is then already certain. A
    rule on any outcome also counts a lookup still running past its latency: it can only grow."""

    def __init__(self, rules: list[tuple[str, int, int]]) -> None:
        self.rules = rules  # (outcome, min_latency_ns, more_than)
        self.matched = [0] * len(rules)
        self.tripped: int | None = None  # the index of the rule that stopped the run
        self._lock = threading.Lock()
        self._event = threading.Event()

    def __bool__(self) -> bool:
        return bool(self.rules)

    def add(self, rows: list[list[int]]) -> bool:
        """Count finished rows; True once a rule has tripped (the lowest index over its limit)."""
        with self._lock:
            if self.tripped is None:
                for row in rows:
                    ok, latency_ns = row[3], row[2]
                    for i, (outcome, min_latency_ns, _) in enumerate(self.rules):
                        if (outcome == "any" or (outcome == "ok") == bool(ok)) and latency_ns >= min_latency_ns:
                            self.matched[i] += 1
                self._trip([0] * len(self.rules))
            return self.tripped is not None

    def add_running(self, waited_ns: list[int]) -> bool:
        """Count, on top of the finished rows, lookups still running this long; True once a rule has
        tripped. Only rules on any outcome with a latency bound count them: how they end is unknown."""
        with self._lock:
            if self.tripped is None:
                extra = [sum(1 for w in waited_ns if w >= lo) if outcome == "any" and lo > 0 else 0
                         for outcome, lo, _ in self.rules]
                self._trip(extra)
            return self.tripped is not None

    def _trip(self, extra: list[int]) -> None:
        for i, (_, _, more_than) in enumerate(self.rules):
            if self.matched[i] + extra[i] > more_than:
                self.tripped = i
                self._event.set()
                return

    def pause(self, seconds: float) -> bool:
        """Sleep for the pacing, but wake when a rule trips; True if one has."""
        return self._event.wait(seconds)


class Running:
    """The lookups of a run with stop rules that have started and not finished, and the rows of
    those that did: both under one lock, so that the rows the run reports and the lookups it
    reports as in flight never overlap. Once closed, rows finishing later are dropped."""

    def __init__(self, t0: int) -> None:
        self.t0 = t0
        self.lock = threading.Lock()
        self.started: dict[Any, list[int]] = {}  # ticket -> [name index, start ns (, burst)]
        self.closed = False

    def start(self, ticket: Any, entry: list[int]) -> None:
        with self.lock:
            self.started[ticket] = entry

    def finish(self, ticket: Any, rows: list[list[int]], row: list[int]) -> None:
        with self.lock:
            del self.started[ticket]
            if not self.closed:
                rows.append(row)

    def waited(self, now: int) -> list[int]:
        with self.lock:
            return [now - entry[1] for entry in self.started.values()]

    def close(self) -> list[list[int]]:
        """Stop taking rows; the lookups still running: [name index, start offset, waited (, burst)]."""
        now = mono()
        with self.lock:
            self.closed = True
            return sorted([e[0], e[1] - self.t0, now - e[1], *e[2:]] for e in self.started.values())


#: How often the main thread of a run with stop rules looks at its running lookups.
WATCH_S = 0.05


def _watch(stop: StopRules, threads: list[threading.Thread], running: Running) -> list[list[int]]:
    """Start the threads and wait for them; but once a stop rule trips, on finished rows or on the
    lookups still running, return at once with those (their threads, daemons, are left to end)."""
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if stop.add_running(running.waited(mono())):
            return running.close()
        stop.pause(WATCH_S)
    return running.close()


def _stop_rules(args: dict[str, Any]) -> StopRules:
    raw = args.get("stop_rules")
    if raw is None:
        return StopRules([])
    if not isinstance(raw, list):  # arg()'s lists are of names; these are of objects
        raise ArgError(f"argument 'stop_rules' must be list, got {raw!r}")
    if len(raw) > MAX_STOP_RULES:
        raise ArgError(f"argument 'stop_rules' has {len(raw)} rules; at most {MAX_STOP_RULES}")
    rules: list[tuple[str, int, int]] = []
    for i, rule in enumerate(raw):
        where = f"stop_rules[{i}]"
        if not isinstance(rule, dict):
            raise ArgError(f"{where} must be an object with {', '.join(STOP_RULE_KEYS)}, got {rule!r}")
        unknown = sorted(str(key) for key in rule if key not in STOP_RULE_KEYS)
        if unknown:
            raise ArgError("{} has unknown keys {}; valid: {}".format(where, ", ".join(unknown), ", ".join(STOP_RULE_KEYS)))
        try:
            outcome = arg(rule, "outcome", str, required=True, choices=STOP_OUTCOMES)
            min_latency_ns = arg(rule, "min_latency_ns", int, 0, lo=0)
            more_than = arg(rule, "more_than", int, required=True, lo=0)
        except ArgError as exc:
            raise ArgError(f"{where}: {exc}") from None
        rules.append((outcome, min_latency_ns, more_than))
    return StopRules(rules)


def _lookups(args: dict[str, Any]) -> Lookups:
    names = arg(args, "names", list, required=True)
    family = FAMILIES[arg(args, "family", str, "any", choices=FAMILIES)]
    socktype = SOCKTYPES[arg(args, "socktype", str, "any", choices=SOCKTYPES)]
    return Lookups(names, family, socktype)


def cmd_lookup(args: dict[str, Any]) -> dict[str, Any]:
    run = _lookups(args)
    count = arg(args, "count", int, None, lo=1, hi=MAX_LOOKUPS)
    duration_s = arg(args, "duration_s", float, None, lo=0.0, hi=MAX_DURATION_S)
    qps = arg(args, "qps", float, 0.0, lo=0.0, hi=1e6)
    concurrency = arg(args, "concurrency", int, 1, lo=1, hi=MAX_THREADS)
    max_lookups = arg(args, "max_lookups", int, DEFAULT_MAX_LOOKUPS, lo=1, hi=MAX_LOOKUPS)
    stop = _stop_rules(args)
    if count is None and duration_s is None:
        count = len(run.names)
    limit = min(count, max_lookups) if count is not None else max_lookups
    n_names = len(run.names)
    period_ns = 1e9 / qps if qps > 0 else 0.0
    duration_ns = int(duration_s * 1e9) if duration_s is not None else None
    counter = itertools.count()  # next() on it is atomic under the GIL: the shared ticket
    stopped: list[str] = []
    t0 = mono()
    deadline = t0 + duration_ns if duration_ns is not None else None
    schedule = threading.Lock()
    next_due = [float(t0)]

    def due_time() -> int:
        # the schedule never falls behind now by more than a period: lookups held up by a lost
        # packet's retry are not made up afterwards in a burst (the rate is a ceiling, not a debt)
        with schedule:
            due = max(next_due[0], mono() - period_ns)
            next_due[0] = due + period_ns
        return int(due)

    def worker(rows: list[list[int]]) -> None:
        one = run.one
        append = rows.append
        stopping = bool(stop)
        while True:
            i = next(counter)
            if i >= limit:
                stopped.append("count" if count is not None and i >= count else "limit")
                return
            if period_ns:
                due = due_time()
                if deadline is not None and due >= deadline:
                    stopped.append("duration")
                    return
                wait = due - mono()
                if wait > 0:
                    if stopping:
                        stop.pause(wait / 1e9)  # pacing, cut short when another thread's row trips a rule
                    else:
                        time.sleep(wait / 1e9)  # pacing to the asked rate, not a wait for a condition
            elif deadline is not None and mono() >= deadline:
                stopped.append("duration")
                return
            if not stopping:
                append(one(i % n_names, t0))
                continue
            # Once a rule has tripped no lookup starts (a plain read: add() sets tripped under its
            # lock, once); those still running are reported as in flight, not waited for.
            if stop.tripped is not None:
                return
            running.start(i, [i % n_names, mono()])
            row = one(i % n_names, t0)
            running.finish(i, rows, row)
            if stop.add([row]):
                return

    per_thread: list[list[list[int]]] = [[] for _ in range(concurrency)]
    running = Running(t0)
    in_flight: list[list[int]] = []
    if stop:
        threads = [threading.Thread(target=worker, args=(rows,), daemon=True) for rows in per_thread]
        in_flight = _watch(stop, threads, running)
    elif concurrency == 1:
        worker(per_thread[0])
    else:
        threads = [threading.Thread(target=worker, args=(rows,), daemon=True) for rows in per_thread]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = mono() - t0
    rows = sorted(itertools.chain.from_iterable(per_thread), key=lambda row: row[1])
    doc = run.document(rows, elapsed)
    if stop.tripped is not None:
        stopped.append("verdict")  # outranks the reasons the other threads gave
    doc.update(
        {
            "columns": list(LOOKUP_COLUMNS),
            "qps": qps,
            "concurrency": concurrency,
            "count": count,
            "duration_s": duration_s,
            "stopped": next((why for why in ("verdict", "limit", "duration") if why in stopped), "count"),
            "stop_rule": stop.tripped,
            "in_flight": in_flight,
        }
    )
    return doc


def cmd_burst(args: dict[str, Any]) -> dict[str, Any]:
    run = _lookups(args)
    bursts = arg(args, "bursts", int, 1, lo=1, hi=100000)
    parallel = arg(args, "parallel", int, 2, lo=1, hi=MAX_THREADS)
    interval_s = arg(args, "interval_s", float, 1.0, lo=0.0, hi=MAX_DURATION_S)
    stop = _stop_rules(args)
    if bursts * parallel > MAX_LOOKUPS:
        raise ArgError(f"bursts x parallel = {bursts * parallel} lookups; at most {MAX_LOOKUPS}")
    interval_ns = int(interval_s * 1e9)
    n_names = len(run.names)
    # The barrier holds each burst's threads until all are there, so their lookups start together
    # (and, through a DNAT'ed service IP, race in conntrack as real clients do).
    barrier = threading.Barrier(parallel)
    per_thread: list[list[list[int]]] = [[] for _ in range(parallel)]

    def check_burst() -> None:
        stop.add([done[-1] for done in per_thread if done])  # a row finishing after the verdict is dropped

    # With stop rules, a second barrier ends each burst: its action, run by the last thread to
    # finish, checks the burst's rows, so every thread sees the verdict before the next burst.
    settled = threading.Barrier(parallel, action=check_burst)
    failures: list[str] = []
    t0 = mono()

    def worker(j: int, rows: list[list[int]]) -> None:
        try:
            for b in range(bursts):
                wait = t0 + b * interval_ns - mono()
                if wait > 0:
                    time.sleep(wait / 1e9)  # the burst schedule, not a wait for a condition
                barrier.wait(timeout=120)
                idx = (b * parallel + j) % n_names
                if not stop:
                    row = run.one(idx, t0)
                    row.append(b)
                    rows.append(row)
                    continue
                running.start((b, j), [idx, mono(), b])
                row = run.one(idx, t0)
                row.append(b)
                running.finish((b, j), rows, row)
                settled.wait(timeout=120)
                if stop.tripped is not None:
                    return
        except threading.BrokenBarrierError:
            if not running.closed:  # not the barriers' abort by a run that ended on its verdict
                failures.append("burst barrier broken (a thread stalled for 120 s)")
        except Exception as exc:
            if not running.closed:
                failures.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()
            settled.abort()

    running = Running(t0)
    in_flight: list[list[int]] = []
    threads = [threading.Thread(target=worker, args=(j, rows), daemon=True) for j, rows in enumerate(per_thread)]
    if stop:
        in_flight = _watch(stop, threads, running)
        barrier.abort()  # threads that finish their lookup after the verdict end instead of waiting
        settled.abort()
    else:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise ProbeFailure(failures[0])
    elapsed = mono() - t0
    rows = sorted(itertools.chain.from_iterable(per_thread), key=lambda row: (row[6], row[1]))
    doc = run.document(rows, elapsed)
    doc.update(
        {
            "columns": list(BURST_COLUMNS),
            "bursts": bursts,
            "parallel": parallel,
            "interval_s": interval_s,
            "stopped": "verdict" if stop.tripped is not None else "count",
            "stop_rule": stop.tripped,
            "in_flight": in_flight,
        }
    )
    return doc
