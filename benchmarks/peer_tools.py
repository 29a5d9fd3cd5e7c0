"""DNS-OARC's dnsperf and resperf as peer tools: argv lists for the image substrate/build-dnsperf.sh
makes (dnsperf 2.10.0, Debian bookworm), their query data file, and parsers of their summaries.

Flags are those of `dnsperf -h` / `resperf -h` in that image; note that resperf's client count is
-C (its -c is the constant-traffic time) and dnsperf's outstanding-query limit is -q.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

DNSPERF = "dnsperf"
RESPERF = "resperf"
# resperf writes a gnuplot file (default ./resperf.gnuplot); /tmp is writable in any container
RESPERF_PLOTFILE = "/tmp/resperf.gnuplot"

_TYPE = re.compile(r"[A-Z][A-Z0-9]*")
_SUMMARY_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ()]*?):[ \t]*(.*?)\s*$")
_RCODE = re.compile(r"([A-Z][A-Z0-9]*) (\d+) \(")
_FELL_BEHIND = re.compile(r"Fell behind by \d+ queries, ending test at (\d+) qps")


def _number(value: float, what: str) -> str:
    """A positive finite number as the tools read it: 5 not 5.0, 0.25 not 2.5e-01."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    if text == "0":
        raise ValueError(f"{what} {value!r} is below the tools' microsecond resolution")
    return text


def _count(value: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return str(value)


def _target(server: str, port: int) -> list[str]:
    if not server or server.startswith("-"):
        raise ValueError(f"server must be an address or name, got {server!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1-65535, got {port!r}")
    return ["-s", server, "-p", str(port)]


def dnsperf_command(
    server: str,
    port: int,
    datafile: str,
    *,
    seconds: float,
    clients: int = 1,
    threads: int = 1,
    max_outstanding: int = 100,
    timeout_s: float = 5.0,
    max_qps: int | None = None,
) -> list[str]:
    """dnsperf over UDP for `seconds` (-l; the data file is replayed as often as needed), as
    `clients` sockets (-c) on `threads` send/receive thread pairs (-T), at most `max_outstanding`
    queries in flight (-q), a query lost after `timeout_s` (-t), and at most `max_qps` (-Q) if given.
    Defaults are dnsperf's own."""
    argv = [DNSPERF, *_target(server, port), "-d", datafile, "-l", _number(seconds, "seconds")]
    argv += ["-c", _count(clients, "clients"), "-T", _count(threads, "threads")]
    argv += ["-q", _count(max_outstanding, "max_outstanding"), "-t", _number(timeout_s, "timeout_s")]
    if max_qps is not None:
        argv += ["-Q", _count(max_qps, "max_qps")]
    return argv


def resperf_command(
    server: str,
    port: int,
    datafile: str,
    *,
    max_qps: int,
    ramp_s: float,
    loss_pct: float = 100.0,
    clients: int = 1,
    timeout_s: float = 5.0,
    constant_s: float = 0.0,
    max_outstanding: int | None = None,
    fall_behind: int | None = None,
    plotfile: str = RESPERF_PLOTFILE,
) -> list[str]:
    """resperf ramping UDP traffic linearly to `max_qps` (-m) over `ramp_s` (-r), then `constant_s`
    at that rate (-c) if positive; its maximum throughput counts only intervals with at most
    `loss_pct` loss (-L); `clients` sockets (-C). -R replays a small data file (else resperf stops
    with "ran out of query data"). `timeout_s` (-t, resperf's default is 45 s) is also how long it
    waits for late answers at the end. `fall_behind` (-F) is how many queries the sender may lag
    before resperf ends the test (its default 1000; 0 disables the check)."""
    if not 0 <= loss_pct <= 100 or not math.isfinite(loss_pct):
        raise ValueError(f"loss_pct must be 0-100, got {loss_pct!r}")
    argv = [RESPERF, *_target(server, port), "-d", datafile, "-R"]
    argv += ["-m", _count(max_qps, "max_qps"), "-r", _number(ramp_s, "ramp_s")]
    if constant_s:
        argv += ["-c", _number(constant_s, "constant_s")]
    argv += ["-L", f"{loss_pct:g}", "-C", _count(clients, "clients"), "-t", _number(timeout_s, "timeout_s")]
    if max_outstanding is not None:
        argv += ["-q", _count(max_outstanding, "max_outstanding")]
    if fall_behind is not None:
        if isinstance(fall_behind, bool) or fall_behind < 0:
            raise ValueError(f"fall_behind must be an integer >= 0, got {fall_behind!r}")
        argv += ["-F", str(fall_behind)]
    return argv + ["-P", plotfile]


def query_file(names_and_types: Sequence[tuple[str, str]]) -> str:
    """The data file both tools read: one "name TYPE" per line (type upper-cased)."""
    if not names_and_types:
        raise ValueError("query_file needs at least one (name, type) pair")
    lines = []
    for name, qtype in names_and_types:
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"query name must be non-empty with no whitespace, got {name!r}")
        if not _TYPE.fullmatch(qtype.upper()):
            raise ValueError(f"query type must be a mnemonic such as A, AAAA, SRV, got {qtype!r}")
        lines.append(f"{name} {qtype.upper()}\n")
    return "".join(lines)


@dataclass(frozen=True)
class DnsperfResult:
    """dnsperf's "Statistics:" summary; latencies in seconds."""

    queries_sent: int
    queries_completed: int
    queries_lost: int
    rcodes: dict[str, int]
    run_time_s: float
    qps: float
    avg_latency_s: float
    min_latency_s: float
    max_latency_s: float
    latency_stddev_s: float | None  # dnsperf omits it when nothing was answered
    request_bytes: int
    response_bytes: int
    timeouts_logged: int = 0  # "[Timeout] Query timed out" lines before the summary

    @property
    def loss(self) -> float:
        """Lost queries as a share of those sent (0 when none were sent)."""
        return self.queries_lost / self.queries_sent if self.queries_sent else 0.0


@dataclass(frozen=True)
class ResperfResult:
    """resperf's "Statistics:" summary. `max_throughput_qps` is the best interval's answered rate
    among intervals within the -L loss; `lost_at_max_pct` the loss then."""

    queries_sent: int
    queries_completed: int
    queries_lost: int
    rcodes: dict[str, int]
    reconnections: int
    run_time_s: float
    max_throughput_qps: float
    lost_at_max_pct: float
    # set when resperf ended the ramp early because it could not send fast enough (-F): the
    # figure is then a bound of the client, not of the server
    fell_behind_at_qps: int | None = None


def _summary(tool: str, output: str) -> dict[str, str]:
    """The "Key: value" lines after "Statistics:"; ValueError naming what resperf/dnsperf said
    instead when there is no summary."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Statistics:")
    except StopIteration:
        said = next((ln.strip() for ln in reversed(lines) if ln.strip().startswith(("Error", "Fatal"))), None)
        said = said or next((ln.strip() for ln in reversed(lines) if ln.strip()), "nothing")
        raise ValueError(f"{tool} output has no 'Statistics:' summary; last said: {said[:200]}") from None
    fields: dict[str, str] = {}
    for line in lines[start + 1 :]:
        match = _SUMMARY_LINE.match(line)
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


def _field(tool: str, fields: dict[str, str], key: str, pattern: str) -> re.Match[str]:
    value = fields.get(key)
    if value is None:
        raise ValueError(f"{tool} summary has no '{key}:' line")
    match = re.match(pattern, value)
    if match is None:
        raise ValueError(f"{tool} summary '{key}: {value}' is not in the expected form")
    return match


def _rcodes(value: str) -> dict[str, int]:
    return {code: int(n) for code, n in _RCODE.findall(value)}


_INT = r"(\d+)"
_FLOAT = r"(\d+(?:\.\d+)?)"


def parse_dnsperf(output: str) -> DnsperfResult:
    """dnsperf's stdout (its summary; warnings may be interleaved) as a DnsperfResult."""
    f = _summary(DNSPERF, output)

    def get(key: str, pattern: str) -> re.Match[str]:
        return _field(DNSPERF, f, key, pattern)

    latency = get("Average Latency (s)", rf"{_FLOAT} \(min {_FLOAT}, max {_FLOAT}\)")
    size = get("Average packet size", rf"request {_INT}, response {_INT}")
    stddev = f.get("Latency StdDev (s)")
    return DnsperfResult(
        queries_sent=int(get("Queries sent", _INT).group(1)),
        queries_completed=int(get("Queries completed", _INT).group(1)),
        queries_lost=int(get("Queries lost", _INT).group(1)),
        rcodes=_rcodes(get("Response codes", r".*").group(0)),
        run_time_s=float(get("Run time (s)", _FLOAT).group(1)),
        qps=float(get("Queries per second", _FLOAT).group(1)),
        avg_latency_s=float(latency.group(1)),
        min_latency_s=float(latency.group(2)),
        max_latency_s=float(latency.group(3)),
        latency_stddev_s=float(stddev) if stddev else None,
        request_bytes=int(size.group(1)),
        response_bytes=int(size.group(2)),
        timeouts_logged=output.count("[Timeout] Query timed out"),
    )


def parse_resperf(output: str) -> ResperfResult:
    """resperf's stdout (status lines and summary) as a ResperfResult."""
    f = _summary(RESPERF, output)

    def get(key: str, pattern: str) -> re.Match[str]:
        return _field(RESPERF, f, key, pattern)

    fell = _FELL_BEHIND.search(output)
    return ResperfResult(
        queries_sent=int(get("Queries sent", _INT).group(1)),
        queries_completed=int(get("Queries completed", _INT).group(1)),
        queries_lost=int(get("Queries lost", _INT).group(1)),
        rcodes=_rcodes(get("Response codes", r".*").group(0)),
        reconnections=int(f.get("Reconnection(s)", "0") or 0),
        run_time_s=float(get("Run time (s)", _FLOAT).group(1)),
        max_throughput_qps=float(get("Maximum throughput", rf"{_FLOAT} qps").group(1)),
        lost_at_max_pct=float(get("Lost at that point", rf"{_FLOAT}%").group(1)),
        fell_behind_at_qps=int(fell.group(1)) if fell else None,
    )
