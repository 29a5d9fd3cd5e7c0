"""`monitor`, the streaming command: the real payload in the private netns against real unbound and
small nameservers of our own, read line by line and stopped through stdin as the host does."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
from pytest_k8sdns.probe.payload import monitor as payload_monitor
from pytest_k8sdns.probe.payload import udpsocket
from pytest_k8sdns.probe.protocol import ERR_EMPTY, ERR_TIMEOUT

OK_NAME = "kubernetes.default.svc.cluster.local."
NX_NAME = "no-such-svc.example.test."  # NXDOMAIN from unbound's static zone
EAI_AGAIN = -3  # glibc's getaddrinfo when its nameserver never answers


@dataclass
class Transcript:
    """Everything one monitor run printed, parsed, with when each line arrived (time.monotonic)."""

    start: MonitorStart
    batches: list[tuple[float, list[MonitorRow]]]
    end: MonitorEnd
    exited_at: float  # when its stdout closed

    @property
    def rows(self) -> list[MonitorRow]:
        return [row for _, batch in self.batches for row in batch]

    def of(self, client: str) -> list[MonitorRow]:
        return [row for row in self.rows if row.client == client]


@dataclass
class MonitorRun:
    """One `monitor` process: its lines as they arrive, its stdin to stop it."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[tuple[float, str | None]] = field(default_factory=queue.Queue)
    start: MonitorStart | None = None
    batches: list[tuple[float, list[MonitorRow]]] = field(default_factory=list)

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
        return self.start

    def rows_line(self, timeout: float = 5) -> tuple[float, list[MonitorRow]]:
        """Wait for the next rows line (the run must still be going)."""
        __tracebackhide__ = True
        start = self.started()
        at, line = self._next(timeout)
        assert line is not None, f"monitor exited while rows were awaited: {self._stderr()}"
        parsed = parse_monitor_line(line, "netns", start=start)
        assert isinstance(parsed, list), line
        self.batches.append((at, parsed))
        return at, parsed

    def stop(self) -> float:
        """Write the stop line; when it was written."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        return time.monotonic()

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
            parsed = parse_monitor_line(line, "netns", start=start)
            if isinstance(parsed, MonitorEnd):
                end = parsed
            else:
                assert isinstance(parsed, list), line
                self.batches.append((at, parsed))
        assert self.proc.wait(5) == 0, self._stderr()
        assert end is not None, "monitor ended without its end line"
        return Transcript(start, self.batches, end, at)

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
        assert row.name_index == 0 and row.ok == (row.error_code == 0)


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


# ---- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing argument 'names'"),
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
    ],
    ids=["no-names", "empty-names", "qps", "socket-qps", "server", "qtype", "family", "timeout", "in-flight",
         "in-flight-float", "duration", "flush", "no-nameserver"],
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
    run = monitor({"names": [OK_NAME], "qps": 20, "socket_qps": 20, "flush_s": 0.1}, python=python)
    run.rows_line()
    run.stop()
    t = run.finish()
    assert t.end.stopped == "stdin" and t.of("libc") and t.of("socket") and all(row.ok for row in t.rows)


# ---- the host's parsing, and the payload's wire format (no netns) -------------------------------


def _start_doc(**change: Any) -> dict[str, Any]:
    doc = {
        "command": "monitor", "probe_version": PROBE_VERSION, "event": "start", "t0_unix_ns": 1_700_000_000 * 10**9,
        "columns": list(MONITOR_COLUMNS), "clients": ["libc", "socket"], "names": ["a.", "b."],
        "server": "10.96.0.10", "source_port": 40000, "qps": 10, "socket_qps": 5.5, "timeout_s": 2,
    }  # fmt: skip
    return {**doc, **change}


def _end_doc(**change: Any) -> dict[str, Any]:
    doc = {
        "command": "monitor", "probe_version": PROBE_VERSION, "event": "end", "stopped": "stdin", "elapsed_ns": 5,
        "totals": {"libc": {"lookups": 2, "ok": 1, "failed": 1, "skipped": 3, "unfinished": 0},
                   "socket": {"queries": 1, "ok": 0, "failed": 1, "late": 2}},
        "errors": {"-2": "gaierror: [Errno -2] Name or service not known", "3": "NXDOMAIN for b. from 10.96.0.10"},
    }  # fmt: skip
    return {**doc, **change}


def test_monitor_lines_parse_into_their_types() -> None:
    start = parse_monitor_line(json.dumps(_start_doc()), "pod p")
    assert start == MonitorStart(1_700_000_000 * 10**9, ("a.", "b."), "10.96.0.10", 40000, 10.0, 5.5, 2.0)
    rows = parse_monitor_line(b'{"event":"rows","rows":[[0,1,10,20,1,0],[1,0,5,7,0,3]]}\n', "pod p")
    assert rows == [MonitorRow("libc", 1, 10, 20, True, 0), MonitorRow("socket", 0, 5, 7, False, 3)]
    assert rows[0].end_offset_ns == 30 and rows[1].latency_s == 7e-9
    assert parse_monitor_line('{"event":"rows","rows":[]}', "pod p") == []
    end = parse_monitor_line(json.dumps(_end_doc()), "pod p")
    assert isinstance(end, MonitorEnd) and end.stopped == "stdin" and end.elapsed_ns == 5
    assert end.totals.libc.skipped == 3 and end.totals.socket.late == 2
    assert end.errors == {-2: "gaierror: [Errno -2] Name or service not known", 3: "NXDOMAIN for b. from 10.96.0.10"}
    no_socket = parse_monitor_line(json.dumps(_start_doc(server=None, source_port=None, socket_qps=0)), "")
    assert isinstance(no_socket, MonitorStart) and no_socket.server is None and no_socket.source_port is None


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
        (json.dumps(_start_doc(probe_version=3)), r"invalid output at \$\.probe_version: 4 was expected"),
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
