"""`monitor`, the streaming command: the real payload in the private netns against real unbound and
small nameservers of our own, read line by line and stopped through stdin as the host does."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dns.message
import pytest
from probe_netns_support import (
    DNS_IP,
    EAI_NONAME,
    ProbeRunner,
    answering_nameserver,
    old_pythons,
    pod_resolv_conf,
    silent_nameserver,
)

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.probe import (
    MONITOR_COLUMNS,
    PROBE_VERSION,
    MonitorEnd,
    MonitorRow,
    MonitorStart,
    parse_monitor_line,
    parse_output,
)
from pytest_k8sdns.probe.payload import chase as payload_chase
from pytest_k8sdns.probe.payload import monitor as payload_monitor
from pytest_k8sdns.probe.payload import udpsocket
from pytest_k8sdns.probe.protocol import (
    ERR_EMPTY,
    ERR_TIMEOUT,
    MAX_NAMES,
    MAX_STDIN_LINE,
)
from pytest_k8sdns.probe.results import (
    MonitorChased,
    MonitorLibcTotals,
    MonitorStdinError,
)

OK_NAME = "kubernetes.default.svc.cluster.local."
NX_NAME = "no-such-svc.example.test."  # NXDOMAIN from unbound's static zone
EAI_AGAIN = -3  # glibc's getaddrinfo when its nameserver never answers

MonitorEvent = MonitorChased | MonitorStdinError
_E = TypeVar("_E", MonitorChased, MonitorStdinError)


@dataclass
class Transcript:
    """Everything one monitor run printed, parsed, with when each line arrived (time.monotonic)."""

    start: MonitorStart
    batches: list[tuple[float, list[MonitorRow]]]
    end: MonitorEnd
    exited_at: float  # when its stdout closed
    events: list[tuple[float, MonitorEvent]] = field(default_factory=list)

    @property
    def rows(self) -> list[MonitorRow]:
        return [row for _, batch in self.batches for row in batch]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name of the run by its name_index: the start's, then the chased ones."""
        chased = [name for _, event in self.events if isinstance(event, MonitorChased) for name in event.names]
        return self.start.names + tuple(chased)

    def of(self, client: str, name_index: int | None = None) -> list[MonitorRow]:
        """The rows of a client (of one name), in the order they started."""
        rows = [row for row in self.rows if row.client == client and name_index in (None, row.name_index)]
        return sorted(rows, key=lambda row: row.start_offset_ns)


@dataclass
class MonitorRun:
    """One `monitor` process: its lines as they arrive, its stdin to chase names and to stop it."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[tuple[float, str | None]] = field(default_factory=queue.Queue)
    start: MonitorStart | None = None
    batches: list[tuple[float, list[MonitorRow]]] = field(default_factory=list)
    events: list[tuple[float, MonitorEvent]] = field(default_factory=list)
    n_names: int = 0  # the start's names and the chased ones so far

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))
        self.lines.put((time.monotonic(), None))

    def _next(self, timeout: float) -> tuple[float, str | None]:
        __tracebackhide__ = True
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"monitor printed nothing within {timeout} s (running: {self.proc.poll() is None})")

    def started(self) -> MonitorStart:
        """Wait for the start line."""
        __tracebackhide__ = True
        if self.start is None:
            _, line = self._next(10)
            assert line is not None, f"monitor exited before its start line: {self._stderr()}"
            parsed = parse_monitor_line(line, "netns")
            assert isinstance(parsed, MonitorStart), line
            self.start = parsed
            self.n_names = len(parsed.names)
        return self.start

    def _file(self, at: float, line: str) -> Any:
        """Parse a line after the start (checking its name indexes) and keep it where it belongs."""
        __tracebackhide__ = True
        parsed = parse_monitor_line(line, "netns", start=self.started(), n_names=self.n_names)
        if isinstance(parsed, list):
            self.batches.append((at, parsed))
        elif isinstance(parsed, (MonitorChased, MonitorStdinError)):
            self.events.append((at, parsed))
            if isinstance(parsed, MonitorChased):
                self.n_names += len(parsed.names)
        return parsed

    def _read_until(self, want: Callable[[Any], bool], timeout: float, what: str) -> tuple[float, Any]:
        __tracebackhide__ = True
        self.started()
        deadline = time.monotonic() + timeout
        while True:
            at, line = self._next(max(deadline - time.monotonic(), 0.01))
            assert line is not None, f"monitor exited while {what} was awaited: {self._stderr()}"
            parsed = self._file(at, line)
            if want(parsed):
                return at, parsed

    def rows_line(self, timeout: float = 5) -> tuple[float, list[MonitorRow]]:
        """Wait for the next rows line (the run must still be going)."""
        __tracebackhide__ = True
        return self._read_until(lambda parsed: isinstance(parsed, list), timeout, "a rows line")

    def event(self, kind: type[_E], timeout: float = 5) -> _E:
        """Wait for the next chased (or error) line."""
        __tracebackhide__ = True
        event: _E = self._read_until(lambda parsed: isinstance(parsed, kind), timeout, f"a {kind.__name__}")[1]
        return event

    def until(self, done: Callable[[], bool], timeout: float = 5) -> None:
        """Read lines until `done()` holds."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done within {timeout} s; rows: {self.rows[-5:]}"
            self._read_until(lambda parsed: True, max(deadline - time.monotonic(), 0.01), "a line")

    def arrived(self) -> None:
        """Read the lines that have arrived so far, without waiting."""
        __tracebackhide__ = True
        while True:
            try:
                at, line = self.lines.get_nowait()
            except queue.Empty:
                return
            assert line is not None, f"monitor exited: {self._stderr()}"
            self._file(at, line)

    @property
    def rows(self) -> list[MonitorRow]:
        return [row for _, batch in self.batches for row in batch]

    def send(self, text: str) -> float:
        """Write text to its stdin now; when it was written."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()
        return time.monotonic()

    def chase(self, *names: str) -> float:
        return self.send(json.dumps({"chase": list(names)}) + "\n")

    def stop(self) -> float:
        """Write the stop line; when it was written."""
        return self.send("stop\n")

    def close_stdin(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return time.monotonic()

    def finish(self, timeout: float = 10) -> Transcript:
        """Read to the end; the whole run, after checking it ended with its end line and exit 0."""
        __tracebackhide__ = True
        start = self.started()
        deadline = time.monotonic() + timeout
        end: MonitorEnd | None = None
        while True:
            at, line = self._next(max(deadline - time.monotonic(), 0.01))
            if line is None:
                break
            assert end is None, f"a line after the end line: {line}"
            parsed = self._file(at, line)
            if isinstance(parsed, MonitorEnd):
                end = parsed
        assert self.proc.wait(5) == 0, self._stderr()
        assert end is not None, "monitor ended without its end line"
        return Transcript(start, self.batches, end, at, self.events)

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]


MonitorFactory = Callable[..., MonitorRun]


@pytest.fixture
def monitor(probe: ProbeRunner) -> Iterator[MonitorFactory]:
    """Starts `monitor` runs; kills any still running at the end of the test."""
    runs: list[MonitorRun] = []

    def start(args: dict[str, Any], *, resolv_conf: str | None = None, python: str | None = None) -> MonitorRun:
        run = MonitorRun(probe.popen("monitor", args, resolv_conf=resolv_conf, python=python))
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
        run.proc.wait(5)
        for pipe in (run.proc.stdin, run.proc.stdout, run.proc.stderr):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass


def check_totals(t: Transcript) -> None:
    """The end line's totals are those of the rows streamed."""
    __tracebackhide__ = True
    libc, sock = t.of("libc"), t.of("socket")
    assert t.end.totals.libc.lookups == len(libc) and t.end.totals.libc.ok == sum(r.ok for r in libc)
    assert t.end.totals.libc.failed == len(libc) - t.end.totals.libc.ok
    assert t.end.totals.socket.queries == len(sock) and t.end.totals.socket.ok == sum(r.ok for r in sock)
    assert t.end.totals.socket.failed == len(sock) - t.end.totals.socket.ok
    for row in t.rows:
        assert 0 <= row.name_index < len(t.names) and row.ok == (row.error_code == 0)


# ---- streaming and stopping ---------------------------------------------------------------------


def test_monitor_streams_rows_until_a_line_on_stdin(monitor: MonitorFactory) -> None:
    before = time.time_ns()
    run = monitor({"names": [OK_NAME], "qps": 20, "socket_qps": 20, "server": DNS_IP, "flush_s": 0.1})
    start = run.started()
    assert start.names == (OK_NAME,) and start.server == DNS_IP and start.qps == 20.0 and start.socket_qps == 20.0
    assert start.timeout_s == 2.0 and isinstance(start.source_port, int)
    assert before <= start.t0_unix_ns <= time.time_ns()
    # rows come while it runs, a line every flush_s
    arrivals = [run.rows_line()[0] for _ in range(4)]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(0.05 < gap < 0.4 for gap in gaps), gaps
    assert {row.client for _, batch in run.batches for row in batch} == {"libc", "socket"}
    stopped_at = run.stop()
    t = run.finish()
    assert t.exited_at - stopped_at < 1.0, "monitor took over a second to stop on its stdin line"
    assert t.end.stopped == "stdin"
    check_totals(t)
    assert all(row.ok for row in t.rows) and t.end.errors == {}
    assert t.end.totals.libc.skipped == 0 and t.end.totals.libc.unfinished == 0 and t.end.totals.socket.late == 0
    # open loop at 20 per second each: a start every 50 ms, never early, late by less than a period
    # (a libc row's start is taken in its own new thread, which a loaded machine may start late)
    for client in ("libc", "socket"):
        starts = sorted(row.start_offset_ns for row in t.of(client))
        assert len(starts) >= 6
        for i, offset in enumerate(starts):
            assert i * 50e6 - 1e6 <= offset < (i + 1) * 50e6, (client, i, offset)
    assert t.end.elapsed_ns >= starts[-1]


def test_monitor_stops_at_the_end_of_stdin(monitor: MonitorFactory) -> None:
    run = monitor({"names": [OK_NAME], "qps": 10, "flush_s": 0.1})
    start = run.started()
    assert start.source_port is None and start.socket_qps == 0.0
    assert start.server == DNS_IP  # not asked: the pod's first nameserver, as its libc uses
    run.rows_line()
    closed_at = run.close_stdin()
    t = run.finish()
    assert t.end.stopped == "stdin" and t.exited_at - closed_at < 1.0
    assert t.of("socket") == [] and t.end.totals.socket.queries == 0
    assert t.of("libc") and all(row.ok for row in t.rows)
    check_totals(t)


def test_monitor_stops_itself_after_its_duration(monitor: MonitorFactory) -> None:
    run = monitor({"names": [OK_NAME], "qps": 10, "duration_s": 0.5})
    t = run.finish()
    assert t.end.stopped == "duration"
    assert 0.5e9 <= t.end.elapsed_ns < 1.5e9
    assert 4 <= len(t.of("libc")) <= 6
    check_totals(t)


# ---- the socket client --------------------------------------------------------------------------


def test_socket_client_keeps_one_source_port(monitor: MonitorFactory, probe: ProbeRunner) -> None:
    with answering_nameserver(probe.netns) as server:
        run = monitor({"names": [OK_NAME, "api.example.test."], "qps": 0, "socket_qps": 200, "server": server.ip})
        start = run.started()
        time.sleep(1.0)
        run.stop()
        t = run.finish()
        deadline = time.monotonic() + 5
        while len(server.ports) < t.end.totals.socket.queries and time.monotonic() < deadline:
            time.sleep(0.05)  # the server's log is read by a thread of its own
    assert t.end.totals.socket.queries >= 150 and t.end.totals.socket.failed == 0
    assert t.of("libc") == [] and t.end.totals.libc.lookups == 0
    assert len(server.ports) == t.end.totals.socket.queries
    assert set(server.ports) == {start.source_port}
    assert [row.name_index for row in sorted(t.rows, key=lambda r: r.start_offset_ns)][:4] == [0, 1, 0, 1]


def test_unanswered_socket_queries_fail_after_their_timeout(monitor: MonitorFactory, probe: ProbeRunner) -> None:
    with silent_nameserver(probe.netns) as silent_ip:
        run = monitor({"names": [OK_NAME], "qps": 0, "socket_qps": 20, "server": silent_ip, "timeout_s": 0.3,
                       "flush_s": 0.1})
        run.started()
        _, batch = run.rows_line()  # the first timeouts stream while it runs
        assert batch and all(row.error_code == ERR_TIMEOUT for row in batch)
        stopped_at = run.stop()
        t = run.finish()
    # the queries pending at the stop got their timeout too: every query sent has its row
    assert 0.2 <= t.exited_at - stopped_at < 1.0  # the last query was sent at most 50 ms before the stop
    assert t.end.totals.socket.queries == len(t.rows) >= 6 and t.end.totals.socket.ok == 0
    for row in t.rows:
        assert row.client == "socket" and not row.ok and row.error_code == ERR_TIMEOUT
        assert 0.3e9 <= row.latency_ns < 0.4e9, row
    assert t.end.errors == {ERR_TIMEOUT: f"no reply from {silent_ip}:53 within 0.3 s"}
    assert t.end.totals.socket.late == 0
    check_totals(t)


def test_replies_after_the_timeout_count_as_late(monitor: MonitorFactory, probe: ProbeRunner) -> None:
    with answering_nameserver(probe.netns, delay_s=0.4) as server:
        run = monitor({"names": [OK_NAME], "qps": 0, "socket_qps": 10, "server": server.ip, "timeout_s": 0.15})
        run.started()
        time.sleep(1.0)
        run.stop()
        t = run.finish()
    assert t.rows and {row.error_code for row in t.rows} == {ERR_TIMEOUT}
    # a reply 0.4 s after its query, while the monitor still runs, is late; none is a row
    assert t.end.totals.socket.late >= 4 and t.end.totals.socket.ok == 0
    assert t.end.totals.socket.late <= t.end.totals.socket.queries


@pytest.mark.parametrize(
    ("name", "qtype", "libc_code", "socket_code"),
    [(NX_NAME, "A", EAI_NONAME, 3), (OK_NAME, "AAAA", 0, ERR_EMPTY)],
    ids=["nxdomain", "no-aaaa"],
)
def test_negative_answers_give_their_codes(
    monitor: MonitorFactory, name: str, qtype: str, libc_code: int, socket_code: int
) -> None:
    run = monitor({"names": [name], "qps": 20, "socket_qps": 20, "qtype": qtype, "flush_s": 0.1})
    start = run.started()
    assert start.server == DNS_IP  # the socket's server, from resolv.conf
    run.rows_line()
    run.rows_line()
    run.stop()
    t = run.finish()
    assert t.of("libc") and {row.error_code for row in t.of("libc")} == {libc_code}
    assert t.of("socket") and {row.error_code for row in t.of("socket")} == {socket_code}
    expected = {
        3: f"NXDOMAIN for {NX_NAME} from {DNS_IP}",
        ERR_EMPTY: f"NOERROR without an answer for {OK_NAME} from {DNS_IP}",
    }
    assert t.end.errors[socket_code] == expected[socket_code]
    assert (libc_code in t.end.errors) == (libc_code != 0)
    check_totals(t)


# ---- the libc client ----------------------------------------------------------------------------


def test_lookups_due_while_max_in_flight_hang_are_skipped(monitor: MonitorFactory, probe: ProbeRunner) -> None:
    """Against a server that never answers each lookup takes glibc's 1 s timeout; with one allowed
    in flight, the 19 others due each second are counted, not started."""
    with silent_nameserver(probe.netns) as silent_ip:
        conf = pod_resolv_conf(silent_ip, extra_options="timeout:1 attempts:1")
        run = monitor({"names": [OK_NAME], "qps": 20, "max_in_flight": 1}, resolv_conf=conf)
        start = run.started()
        assert start.server == silent_ip
        time.sleep(1.5)
        stopped_at = run.stop()
        t = run.finish()
    rows = sorted(t.rows, key=lambda r: r.start_offset_ns)
    assert 1 <= len(rows) <= 3 and t.end.totals.libc.unfinished == 0
    assert all(row.error_code == EAI_AGAIN and row.latency_ns >= 0.9e9 for row in rows), rows
    for earlier, later in zip(rows, rows[1:]):
        assert later.start_offset_ns >= earlier.end_offset_ns  # never two at once
    due = 1.5 * 20
    assert due - 8 <= len(rows) + t.end.totals.libc.skipped <= due + 8, t.end.totals
    assert t.end.totals.libc.skipped >= 20
    # the lookup in flight at the stop was waited for, and is a row
    assert t.exited_at - stopped_at < 1.5
    assert rows[-1].end_offset_ns <= t.end.elapsed_ns
    check_totals(t)


# ---- chasing names ------------------------------------------------------------------------------

FRESH = "fresh.example.test"  # NXDOMAIN from the test's nameserver until it creates the name
NEVER = "never.example.test"  # NXDOMAIN throughout


def unix_start(t: Transcript, row: MonitorRow) -> int:
    return t.start.t0_unix_ns + row.start_offset_ns


def test_a_chased_name_is_asked_until_it_answers_then_never_again(monitor: MonitorFactory, probe: ProbeRunner) -> None:
    """A name is asked every chase_every_s while NXDOMAIN, answers once created, and is not asked
    again; a name that never answers is asked until its give-up, then counted as given up."""
    with answering_nameserver(probe.netns, missing=[FRESH, NEVER]) as server:
        run = monitor({"qps": 0, "family": "inet", "chase_every_s": 0.1, "chase_give_up_s": 1.0, "flush_s": 0.1},
                      resolv_conf=pod_resolv_conf(server.ip))
        start = run.started()
        assert start.names == () and start.chase_every_s == 0.1 and start.chase_give_up_s == 1.0
        run.chase(FRESH + ".", NEVER + ".")
        assert run.event(MonitorChased) == MonitorChased((FRESH + ".", NEVER + "."), 0)
        time.sleep(0.5)
        before = time.time_ns()
        server.create(FRESH)
        created = time.time_ns()
        time.sleep(1.0)  # past the give-up of NEVER, and long enough to see FRESH is not asked again
        run.stop()
        t = run.finish()
        queries = list(server.qnames)
    fresh, never = t.of("libc", 0), t.of("libc", 1)
    assert [row.ok for row in fresh] == [False] * (len(fresh) - 1) + [True], fresh  # nothing after the answer
    assert 5 <= len(fresh) <= 8, fresh
    assert {row.error_code for row in fresh[:-1]} == {EAI_NONAME}
    assert queries.count(FRESH) == len(fresh)  # every lookup was one query, and has its row
    for earlier, later in zip(fresh, fresh[1:]):  # one at a time, at the next tick after the last ended
        assert later.start_offset_ns >= earlier.end_offset_ns
        assert 0.08e9 <= later.start_offset_ns - earlier.start_offset_ns < 0.2e9, (earlier, later)
    # the first answered lookup started within a tick of the creation: the propagation delay
    delay_ns = unix_start(t, fresh[-1]) - before
    assert -0.02e9 <= delay_ns <= (created - before) + 0.15e9, delay_ns
    assert all(not row.ok and row.error_code == EAI_NONAME for row in never)
    assert 8 <= len(never) <= 10 and queries.count(NEVER) == len(never), never
    assert never[-1].start_offset_ns - never[0].start_offset_ns < 1.0e9  # none starts after its give-up
    assert t.end.totals.libc.chase_given_up == 1 and t.end.totals.libc.skipped == 0
    assert t.end.totals.libc.unfinished == 0 and t.of("socket") == []
    check_totals(t)


def test_chase_names_given_at_the_start_are_chased_at_once(monitor: MonitorFactory) -> None:
    run = monitor({"qps": 0, "chase": [OK_NAME, NX_NAME], "chase_every_s": 0.2, "chase_give_up_s": 1.0,
                   "flush_s": 0.1})
    start = run.started()
    assert start.names == () and start.chase_every_s == 0.2 and start.chase_give_up_s == 1.0
    assert run.event(MonitorChased) == MonitorChased((OK_NAME, NX_NAME), 0) and run.batches == []
    time.sleep(1.4)
    run.stop()
    t = run.finish()
    answered, unanswered = t.of("libc", 0), t.of("libc", 1)
    assert len(answered) == 1 and answered[0].ok and answered[0].start_offset_ns < 0.1e9
    assert all(row.error_code == EAI_NONAME for row in unanswered) and unanswered[0].start_offset_ns < 0.1e9
    assert 4 <= len(unanswered) <= 5, unanswered  # at 0, 0.2, ... 0.8 s: none from the give-up at 1 s
    for earlier, later in zip(unanswered, unanswered[1:]):
        assert 0.18e9 <= later.start_offset_ns - earlier.start_offset_ns < 0.4e9, (earlier, later)
    assert t.end.totals.libc.chase_given_up == 1
    check_totals(t)


def test_chased_names_take_the_next_indexes_across_lines(monitor: MonitorFactory) -> None:
    run = monitor({"names": [OK_NAME], "qps": 5, "chase": ["api.example.test."], "flush_s": 0.1})
    run.started()
    # the chase argument's names come right after the start's, announced before any row
    assert run.event(MonitorChased) == MonitorChased(("api.example.test.",), 1) and run.batches == []
    line = json.dumps({"chase": [OK_NAME, "onlysearch.default.svc.cluster.local."]}) + "\n"
    run.send(line[:12])  # one line in two pieces: nothing happens until it is whole
    time.sleep(0.3)
    run.arrived()
    assert len(run.events) == 1 and run.proc.poll() is None
    run.send(line[12:])
    assert run.event(MonitorChased) == MonitorChased((OK_NAME, "onlysearch.default.svc.cluster.local."), 2)
    run.send('{"chase": ["api.example.test."]}\n{"chase": ["api.example.test.", "api.example.test."]}\n')
    assert run.event(MonitorChased) == MonitorChased(("api.example.test.",), 4)  # a name chased again: a new index
    assert run.event(MonitorChased).indexes == range(5, 7)
    run.until(lambda: {row.name_index for row in run.rows if row.ok} >= set(range(7)))
    time.sleep(0.3)
    run.stop()
    t = run.finish()
    assert t.names == (OK_NAME, "api.example.test.", OK_NAME, "onlysearch.default.svc.cluster.local.",
                       *["api.example.test."] * 3)
    for idx in range(1, 7):
        assert [row.ok for row in t.of("libc", idx)] == [True], idx  # answered at once: asked once
    assert len(t.of("libc", 0)) >= 3 and all(row.ok for row in t.rows)  # the open loop went on meanwhile
    assert t.end.stopped == "stdin" and t.end.totals.libc.chase_given_up == 0
    check_totals(t)


def test_a_malformed_chase_line_is_an_error_event_and_the_run_goes_on(monitor: MonitorFactory) -> None:
    run = monitor({"names": [OK_NAME], "qps": 5, "flush_s": 0.1})
    run.started()
    too_many = json.dumps({"chase": ["a."] * (MAX_NAMES + 1)})
    bad = ['{"chase": "api.example.test."}', '{"chase": []}', '{"chase": ["a.", 5]}', '{"names": ["a."]}', too_many,
           "x" * (MAX_STDIN_LINE + 10)]
    run.send("".join(line + "\n" for line in bad))
    errors = [run.event(MonitorStdinError).error for _ in bad]
    assert errors == [
        """stdin line '{"chase": "api.example.test."}' ignored: argument 'chase' must be list, got 'api.example.test.'""",
        """stdin line '{"chase": []}' ignored: argument 'chase' must be a non-empty list of non-empty strings""",
        """stdin line '{"chase": ["a.", 5]}' ignored: argument 'chase' must be a non-empty list of non-empty strings""",
        """stdin line '{"names": ["a."]}' ignored: unknown keys names; valid: chase""",
        f"stdin line {too_many[:77] + '...'!r} ignored: argument 'chase' has 1001 entries; at most 1000",
        f"a stdin line over {MAX_STDIN_LINE} bytes was ignored",
    ]
    run.chase("api.example.test.")
    assert run.event(MonitorChased) == MonitorChased(("api.example.test.",), 1)
    run.rows_line()
    stopped_at = run.stop()
    t = run.finish()
    assert t.end.stopped == "stdin" and t.exited_at - stopped_at < 1.0
    assert [row.ok for row in t.of("libc", 1)] == [True]
    check_totals(t)


# ---- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing argument 'names': needed while qps or socket_qps is above 0 (qps defaults to 10)"),
        ({"qps": 0, "socket_qps": 5, "server": "127.0.0.1"}, "missing argument 'names': needed while"),
        ({"names": []}, "'names' must be a non-empty list"),
        ({"names": ["a"], "qps": 1001}, "'qps'=1001.0 is outside [0.0, 1000.0]"),
        ({"names": ["a"], "socket_qps": -1}, "'socket_qps'=-1.0 is outside"),
        ({"names": ["a"], "server": "dns.example"}, "'server'='dns.example' is not an IP address"),
        ({"names": ["a"], "qtype": "MX"}, "argument 'qtype'='MX'; valid: A, AAAA"),
        ({"names": ["a"], "family": "ipx"}, "valid: any, inet, inet6"),
        ({"names": ["a"], "timeout_s": 0.01}, "'timeout_s'=0.01 is outside [0.05, 30.0]"),
        ({"names": ["a"], "max_in_flight": 0}, "'max_in_flight'=0 is outside [1, 256]"),
        ({"names": ["a"], "max_in_flight": 2.5}, "'max_in_flight' must be int"),
        ({"names": ["a"], "duration_s": 4000}, "'duration_s'=4000.0 is outside"),
        ({"names": ["a"], "flush_s": 0}, "'flush_s'=0.0 is outside [0.05, 10.0]"),
        ({"names": ["a"], "socket_qps": 5}, "socket_qps needs a server: argument 'server' is missing"),
        ({"names": ["a"], "chase_every_s": 0.01}, "'chase_every_s'=0.01 is outside [0.02, 10.0]"),
        ({"names": ["a"], "chase_every_s": 11}, "'chase_every_s'=11.0 is outside [0.02, 10.0]"),
        ({"names": ["a"], "chase_give_up_s": 0.5}, "'chase_give_up_s'=0.5 is outside [1.0, 3600.0]"),
        ({"names": ["a"], "chase_give_up_s": "60"}, "argument 'chase_give_up_s' must be float, got '60'"),
        ({"qps": 0, "chase": "a."}, "argument 'chase' must be list, got 'a.'"),
        ({"qps": 0, "chase": ["a.", ""]}, "'chase' must be a non-empty list of non-empty strings"),
        ({"qps": 0, "chase": ["a."] * 1001}, "argument 'chase' has 1001 entries; at most 1000"),
    ],
    ids=["no-names", "no-names-for-socket", "empty-names", "qps", "socket-qps", "server", "qtype", "family",
         "timeout", "in-flight", "in-flight-float", "duration", "flush", "no-nameserver", "chase-every-low",
         "chase-every-high", "give-up", "give-up-str", "chase-str", "chase-empty-name", "chase-too-many"],
)
def test_bad_arguments_give_one_error_document(probe: ProbeRunner, args: dict[str, Any], message: str) -> None:
    no_nameserver = "search default.svc.cluster.local\noptions ndots:5\n"
    proc = probe.raw("monitor", args, resolv_conf=no_nameserver, timeout=30)
    assert proc.returncode == 2, proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1  # no start line before it
    doc = json.loads(proc.stdout)
    assert set(doc) == {"command", "probe_version", "error"} and doc["probe_version"] == PROBE_VERSION
    assert doc["error"].startswith("ArgError: ") and message in doc["error"], doc
    with pytest.raises(PodError, match=r"^probe monitor in pod p failed: ArgError: ") as info:
        parse_monitor_line(proc.stdout, "pod p")
    assert message in str(info.value)


@pytest.mark.parametrize(
    "python",
    old_pythons() or [pytest.param("python3.8", marks=pytest.mark.skip(reason="no Python 3.8 on this machine"))],
)
def test_monitor_runs_on_python_3_8(monitor: MonitorFactory, python: str) -> None:
    run = monitor({"names": [OK_NAME], "qps": 20, "socket_qps": 20, "flush_s": 0.1, "chase": [OK_NAME]},
                  python=python)
    assert run.event(MonitorChased).first_index == 1
    run.send('{"chase": ["api.example.test."]}\n{"chase": 1}\n')
    assert run.event(MonitorChased).first_index == 2 and "ignored" in run.event(MonitorStdinError).error
    run.rows_line()
    run.stop()
    t = run.finish()
    assert t.end.stopped == "stdin" and t.of("libc") and t.of("socket") and all(row.ok for row in t.rows)
    assert [row.ok for row in t.of("libc", 1) + t.of("libc", 2)] == [True, True]


# ---- the host's parsing, and the payload's wire format (no netns) -------------------------------


def _start_doc(**change: Any) -> dict[str, Any]:
    doc = {
        "command": "monitor", "probe_version": PROBE_VERSION, "event": "start", "t0_unix_ns": 1_700_000_000 * 10**9,
        "columns": list(MONITOR_COLUMNS), "clients": ["libc", "socket"], "names": ["a.", "b."],
        "server": "10.96.0.10", "source_port": 40000, "qps": 10, "socket_qps": 5.5, "timeout_s": 2,
        "chase_every_s": 0.25, "chase_give_up_s": 60,
    }  # fmt: skip
    return {**doc, **change}


def _end_doc(**change: Any) -> dict[str, Any]:
    doc = {
        "command": "monitor", "probe_version": PROBE_VERSION, "event": "end", "stopped": "stdin", "elapsed_ns": 5,
        "totals": {"libc": {"lookups": 2, "ok": 1, "failed": 1, "skipped": 3, "unfinished": 0, "chase_given_up": 4},
                   "socket": {"queries": 1, "ok": 0, "failed": 1, "late": 2}},
        "errors": {"-2": "gaierror: [Errno -2] Name or service not known", "3": "NXDOMAIN for b. from 10.96.0.10"},
    }  # fmt: skip
    return {**doc, **change}


def test_monitor_lines_parse_into_their_types() -> None:
    start = parse_monitor_line(json.dumps(_start_doc()), "pod p")
    assert start == MonitorStart(1_700_000_000 * 10**9, ("a.", "b."), "10.96.0.10", 40000, 10.0, 5.5, 2.0, 0.25, 60.0)
    rows = parse_monitor_line(b'{"event":"rows","rows":[[0,1,10,20,1,0],[1,0,5,7,0,3]]}\n', "pod p")
    assert rows == [MonitorRow("libc", 1, 10, 20, True, 0), MonitorRow("socket", 0, 5, 7, False, 3)]
    assert rows[0].end_offset_ns == 30 and rows[1].latency_s == 7e-9
    assert parse_monitor_line('{"event":"rows","rows":[]}', "pod p") == []
    end = parse_monitor_line(json.dumps(_end_doc()), "pod p")
    assert isinstance(end, MonitorEnd) and end.stopped == "stdin" and end.elapsed_ns == 5
    assert end.totals.libc.skipped == 3 and end.totals.socket.late == 2
    assert end.totals.libc == MonitorLibcTotals(2, 1, 1, 3, 0, chase_given_up=4)
    assert end.errors == {-2: "gaierror: [Errno -2] Name or service not known", 3: "NXDOMAIN for b. from 10.96.0.10"}
    no_socket = parse_monitor_line(json.dumps(_start_doc(server=None, source_port=None, socket_qps=0)), "")
    assert isinstance(no_socket, MonitorStart) and no_socket.server is None and no_socket.source_port is None
    chase_only = parse_monitor_line(json.dumps(_start_doc(names=[], qps=0, socket_qps=0)), "")
    assert isinstance(chase_only, MonitorStart) and chase_only.names == ()


def test_chased_and_error_lines_parse_into_their_types() -> None:
    start = parse_monitor_line(json.dumps(_start_doc()), "pod p")
    assert isinstance(start, MonitorStart)
    chased = parse_monitor_line('{"event":"chased","names":["c.","d."],"first_index":2}', "pod p", start=start)
    assert chased == MonitorChased(("c.", "d."), 2) and chased.indexes == range(2, 4)
    # with the names known so far, rows of the chased indexes are valid and others are not
    assert parse_monitor_line('{"event":"rows","rows":[[0,3,1,2,1,0]]}', "pod p", start=start, n_names=4) == [
        MonitorRow("libc", 3, 1, 2, True, 0)
    ]
    with pytest.raises(PodError, match=r"invalid row at \$\.rows\[0\]"):
        parse_monitor_line('{"event":"rows","rows":[[0,4,1,2,1,0]]}', "pod p", start=start, n_names=4)
    with pytest.raises(PodError, match=r"^probe monitor in pod p chased names from index 3, after 2 names; check"):
        parse_monitor_line('{"event":"chased","names":["c."],"first_index":3}', "pod p", start=start)
    # monitor's error event is a line of the run, not the failure document
    error = parse_monitor_line('{"event":"error","error":"stdin line \'{}\' ignored: missing argument"}', "pod p")
    assert error == MonitorStdinError("stdin line '{}' ignored: missing argument")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"event":"chased","names":[],"first_index":0}', r"\$\.names: \[\] should be non-empty"),
        ('{"event":"chased","names":["a."],"first_index":-1}', r"\$\.first_index: -1 is less than the minimum"),
        ('{"event":"chased","names":["a."]}', r"'first_index' is a required property"),
        ('{"event":"error","error":5}', r"\$\.error: 5 is not of type 'string'"),
        (json.dumps(_start_doc(chase_every_s=0)), r"\$\.chase_every_s"),
        (json.dumps({k: v for k, v in _start_doc().items() if k != "chase_give_up_s"}), r"'chase_give_up_s' is a required"),
    ],
    ids=["no-names", "negative-index", "no-index", "error-not-text", "chase-every", "no-give-up"],
)  # fmt: skip
def test_bad_chased_and_error_lines_are_caught(line: str, message: str) -> None:
    with pytest.raises(PodError, match=message):
        parse_monitor_line(line, "pod p")


def test_stdin_lines_are_framed_and_taken_in_order() -> None:
    """The payload's stdin reader, on a pipe: lines in pieces and several in one write, chase lines
    queued (or an error when malformed), and the first line that is no JSON object stops it."""
    read_fd, write_fd = os.pipe()
    wake = threading.Event()
    stdin = payload_chase.Stdin(wake, read_fd)
    stdin.start()
    try:
        os.write(write_fd, b'{"chase": ["a.",')
        assert not wake.wait(0.2) and stdin.take() == []
        os.write(write_fd, b' "b."]}\n{"chase": ["c."]}\r\n{"chase": 1}\n[1, 2]\n{"chase": ["never."]}\n')
        deadline = time.monotonic() + 5
        while not stdin.stopped and time.monotonic() < deadline:
            wake.wait(0.1)
        assert stdin.stopped  # at "[1, 2]": a JSON value, but no object
        assert stdin.take() == [
            ("chase", ["a.", "b."]),
            ("chase", ["c."]),
            ("error", "stdin line '{\"chase\": 1}' ignored: argument 'chase' must be list, got 1"),
        ]
    finally:
        os.close(write_fd)
        os.close(read_fd)


@pytest.mark.parametrize("line", [b"stop\n", b"\n", b'"stop"\n', b"5\n", b"\xff\n", b""], ids=repr)
def test_stdin_stops_at_a_line_that_is_no_json_object(line: bytes) -> None:
    read_fd, write_fd = os.pipe()
    stdin = payload_chase.Stdin(threading.Event(), read_fd)
    stdin.start()
    try:
        os.write(write_fd, line)
        if not line:
            os.close(write_fd)  # end-of-file
        deadline = time.monotonic() + 5
        while not stdin.stopped and time.monotonic() < deadline:
            stdin.wake.wait(0.1)
        assert stdin.stopped and stdin.take() == []
    finally:
        if line:
            os.close(write_fd)
        os.close(read_fd)


@pytest.mark.parametrize(
    "row",
    [[0, 0, 1, 2, 1], [2, 0, 1, 2, 1, 0], [0, -1, 1, 2, 1, 0], [0, 2, 1, 2, 1, 0], [0, 0, -1, 2, 1, 0],
     [0, 0, 1, -2, 1, 0], [0, 0, 1, 2, 2, 0], [0, 0, 1, 2, 1, 3], [0, 0, 1, 2, 0, 0], [0, 0, 1.5, 2, 1, 0],
     [0, 0, 1, 2, True, 0], "row"],
    ids=["short", "client", "negative-name", "name-past-start", "negative-start", "negative-latency", "ok-2",
         "ok-with-code", "failed-without-code", "float", "bool", "not-a-list"],
)  # fmt: skip
def test_bad_monitor_rows_are_caught(row: Any) -> None:
    start = parse_monitor_line(json.dumps(_start_doc()), "pod p")
    assert isinstance(start, MonitorStart)  # two names: index 2 is past them
    line = json.dumps({"event": "rows", "rows": [[1, 1, 0, 1, 1, 0], row]})
    with pytest.raises(PodError, match=r"^probe monitor in pod p returned an invalid row at \$\.rows\[1\]"):
        parse_monitor_line(line, "pod p", start=start)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", r"printed no JSON document \(got: 'nothing'\)"),
        ("Traceback (most recent call last):", r"printed no JSON document \(got: 'Traceback"),
        ('{"command":"monitor","probe_version":4,"error":"OSError: [Errno 24] Too many open files"}',
         r"^probe monitor in pod p failed: OSError: \[Errno 24\] Too many open files$"),
        ('{"event":"progress"}', r"printed a line that is no monitor event: '\{\"event\":\"progress\"\}'"),
        ("[1, 2]", r"printed a line that is no monitor event"),
        (json.dumps(_start_doc(probe_version=PROBE_VERSION - 1)),
         rf"invalid output at \$\.probe_version: {PROBE_VERSION} was expected"),
        (json.dumps(_start_doc(source_port=0)), r"invalid output at \$\.source_port"),
        (json.dumps(_start_doc(columns=["client"])), r"invalid output at \$\.columns"),
        (json.dumps(_end_doc(stopped="count")), r"invalid output at \$\.stopped: 'count' is not one of"),
        (json.dumps(_end_doc(errors={"x": "y"})), r"invalid output at \$\.errors"),
        ('{"event":"rows"}', r"invalid output at \$: 'rows' is a required property"),
    ],
    ids=["empty", "traceback", "error-document", "unknown-event", "not-an-object", "old-version", "port",
         "columns", "stopped", "error-key", "no-rows"],
)  # fmt: skip
def test_bad_monitor_lines_raise_one_line_pod_error(line: str, message: str) -> None:
    with pytest.raises(PodError, match=message) as info:
        parse_monitor_line(line, "pod p")
    assert "\n" not in str(info.value)


def test_parse_output_points_monitor_at_its_line_parser() -> None:
    with pytest.raises(PodError, match="read each with parse_monitor_line"):
        parse_output("monitor", json.dumps(_end_doc()))


@pytest.mark.parametrize(("name", "qtype"), [(OK_NAME, "A"), ("api.example.test", "AAAA"), (".", "A")])
def test_socket_question_is_dnspythons(name: str, qtype: str) -> None:
    wire = dns.message.make_query(name if name.endswith(".") else name + ".", qtype, use_edns=False).to_wire()
    assert udpsocket.question(name, udpsocket.QTYPES[qtype]) == wire[12:]


@pytest.mark.parametrize("name", ["a..b.", "x" * 64 + ".test.", "ünï.test."])
def test_socket_question_refuses_what_it_cannot_encode(name: str) -> None:
    with pytest.raises((ValueError, UnicodeError)):
        udpsocket.question(name, 1)


def test_first_nameserver_is_the_first_address() -> None:
    text = "search svc.cluster.local\nnameserver fe80::1%eth0\nnameserver 10.96.0.10\nnameserver 10.96.0.11\n"
    assert payload_monitor.first_nameserver(text) in ("fe80::1%eth0", "10.96.0.10")  # scope ids parse from 3.9
    assert payload_monitor.first_nameserver("nameserver 10.96.0.10\n") == "10.96.0.10"
    assert payload_monitor.first_nameserver("options ndots:5\n") is None
    assert payload_monitor.first_nameserver(None) is None
