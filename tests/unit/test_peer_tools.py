"""benchmarks/peer_tools.py: argv builders against the flags of dnsperf/resperf 2.10.0 (Debian
bookworm, substrate/build-dnsperf.sh), and the parsers on outputs those tools printed against
unbound on loopback."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load() -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "peer_tools.py"
    spec = importlib.util.spec_from_file_location("peer_tools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("peer_tools", module)
    spec.loader.exec_module(module)
    return module


peer_tools = _load()

# dnsperf -c 1 -T 1 -q 100 for 5 s against unbound (1 thread): no loss
DNSPERF_ONE_CLIENT = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5391 -d /data/queries.txt -l 5 -c 1 -T 1 -q 100 -t 2
[Status] Sending queries (to 127.0.0.1:5391)
[Status] Started at: Thu Dec  3 07:41:04 2026
[Status] Stopping after 5.000000 seconds
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         579120
  Queries completed:    579120 (100.00%)
  Queries lost:         0 (0.00%)

  Response codes:       NOERROR 434340 (75.00%), NXDOMAIN 144780 (25.00%)
  Average packet size:  request 56, response 101
  Run time (s):         5.000508
  Queries per second:   115812.233477

  Average Latency (s):  0.000485 (min 0.000007, max 0.004483)
  Latency StdDev (s):   0.000360

"""

# dnsperf -c 8 -T 2 -q 200 -t 0.5 -S 1: a few timeouts and a stats line before the summary
DNSPERF_TIMEOUTS = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5391 -d /data/queries.txt -l 2 -c 8 -T 2 -q 200 -t 0.5 -S 1
[Status] Sending queries (to 127.0.0.1:5391)
[Status] Started at: Thu Dec  3 07:42:35 2026
[Status] Stopping after 2.000000 seconds
[Timeout] Query timed out: msg id 1511
[Timeout] Query timed out: msg id 1512
[Timeout] Query timed out: msg id 1513
[Timeout] Query timed out: msg id 1514
[Timeout] Query timed out: msg id 1515
[Timeout] Query timed out: msg id 1516
1796283756.958737: 0.000079
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         297464
  Queries completed:    297458 (100.00%)
  Queries lost:         6 (0.00%)

  Response codes:       NOERROR 223094 (75.00%), NXDOMAIN 74364 (25.00%)
  Average packet size:  request 56, response 101
  Run time (s):         2.000594
  Queries per second:   148684.840602

  Average Latency (s):  0.000781 (min 0.000011, max 0.006750)
  Latency StdDev (s):   0.000442

"""

# dnsperf against a port nothing listens on: all lost, empty rcodes, no StdDev line
DNSPERF_NO_SERVER = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5399 -d /data/queries.txt -l 2 -c 1 -T 1 -q 10 -t 1
[Status] Sending queries (to 127.0.0.1:5399)
[Status] Started at: Thu Dec  3 07:41:29 2026
[Status] Stopping after 2.000000 seconds
[Timeout] Query timed out: msg id 0
[Timeout] Query timed out: msg id 1
[Timeout] Query timed out: msg id 2
[Timeout] Query timed out: msg id 3
[Timeout] Query timed out: msg id 4
[Timeout] Query timed out: msg id 5
[Timeout] Query timed out: msg id 6
[Timeout] Query timed out: msg id 7
[Timeout] Query timed out: msg id 8
[Timeout] Query timed out: msg id 9
[Timeout] Query timed out: msg id 10
[Timeout] Query timed out: msg id 11
[Timeout] Query timed out: msg id 12
[Timeout] Query timed out: msg id 13
[Timeout] Query timed out: msg id 14
[Timeout] Query timed out: msg id 15
[Timeout] Query timed out: msg id 16
[Timeout] Query timed out: msg id 17
[Timeout] Query timed out: msg id 18
[Timeout] Query timed out: msg id 19
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         20
  Queries completed:    0 (0.00%)
  Queries lost:         20 (100.00%)

  Response codes:\x20\x20\x20\x20\x20\x20\x20
  Average packet size:  request 56, response 0
  Run time (s):         2.000373
  Queries per second:   0.000000

  Average Latency (s):  0.000000 (min 0.000000, max 0.000000)

"""

# dnsperf with a missing data file (stderr first, as captured with 2>&1)
DNSPERF_NO_FILE = """\
Error: unable to open file: /data/nonexistent.txt
DNS Performance Testing Tool
Version 2.10.0

"""

# resperf -m 200000 -r 5 -C 1 -L 10: the sender fell behind and ended the ramp
RESPERF_FELL_BEHIND = """\
DNS Resolution Performance Testing Tool
Version 2.10.0

[Status] Command line: resperf -s 127.0.0.1 -p 5391 -d /data/queries.txt -R -m 200000 -r 5 -C 1 -L 10 -t 2 -P /tmp/resperf.gnuplot
[Status] Sending
[Status] Fell behind by 1000 queries, ending test at 161777 qps
[Status] Waiting for more responses
[Status] Testing complete

Statistics:

  Queries sent:         326147
  Queries completed:    325807
  Queries lost:         340
  Response codes:       NOERROR 244356 (75.00%), NXDOMAIN 81451 (25.00%)
  Reconnection(s):      0
  Run time (s):         5.946551
  Maximum throughput:   148564.000000 qps
  Lost at that point:   0.21%

"""

# resperf -C 8 -F 0: the ramp ran past unbound's capacity
RESPERF_LOSSY = """\
DNS Resolution Performance Testing Tool
Version 2.10.0

[Status] Command line: resperf -s 127.0.0.1 -p 5391 -d /data/queries.txt -R -m 200000 -r 5 -C 8 -F 0 -L 10 -t 2 -P /tmp/resperf.gnuplot
[Status] Sending
[Status] Waiting for more responses
[Status] Testing complete

Statistics:

  Queries sent:         484069
  Queries completed:    449476
  Queries lost:         34593
  Response codes:       NOERROR 337104 (75.00%), NXDOMAIN 112372 (25.00%)
  Reconnection(s):      0
  Run time (s):         6.999913
  Maximum throughput:   138800.000000 qps
  Lost at that point:   7.47%

"""

# resperf -m 20000 -r 3 -c 2 -C 2: ramp, then constant traffic
RESPERF_CONSTANT = """\
DNS Resolution Performance Testing Tool
Version 2.10.0

[Status] Command line: resperf -s 127.0.0.1 -p 5391 -d /data/queries.txt -R -m 20000 -r 3 -c 2 -C 2 -L 10 -t 2 -P /tmp/resperf.gnuplot
[Status] Sending
[Status] Ramp-up done, sending constant traffic
[Status] Waiting for more responses
[Status] Testing complete

Statistics:

  Queries sent:         69999
  Queries completed:    69999
  Queries lost:         0
  Response codes:       NOERROR 52500 (75.00%), NXDOMAIN 17499 (25.00%)
  Reconnection(s):      0
  Run time (s):         5.000005
  Maximum throughput:   20012.000000 qps
  Lost at that point:   0.00%

"""

# resperf against a port nothing listens on
RESPERF_NO_SERVER = """\
DNS Resolution Performance Testing Tool
Version 2.10.0

[Status] Command line: resperf -s 127.0.0.1 -p 5399 -d /data/queries.txt -R -m 2000 -r 2 -C 1 -L 10 -t 1 -P /tmp/resperf.gnuplot
[Status] Sending
[Status] Waiting for more responses
[Status] Testing complete

Statistics:

  Queries sent:         2000
  Queries completed:    0
  Queries lost:         2000
  Response codes:\x20\x20\x20\x20\x20\x20\x20
  Reconnection(s):      0
  Run time (s):         3.000000
  Maximum throughput:   0.000000 qps
  Lost at that point:   0.00%

"""

# resperf without -R on a 4-line data file
RESPERF_NO_DATA = """\
DNS Resolution Performance Testing Tool
Version 2.10.0

[Status] Command line: resperf -s 127.0.0.1 -p 5391 -d /data/queries.txt -m 2000 -r 2 -t 1 -P /tmp/r.gnuplot
[Status] Sending
Error: ran out of query data
"""


# ---- argv builders -----------------------------------------------------------------------------


def test_dnsperf_command_flags() -> None:
    argv = peer_tools.dnsperf_command(
        "10.96.0.10", 53, "/tmp/q.txt", seconds=5, clients=8, threads=2, max_outstanding=200, timeout_s=0.5
    )
    assert argv == [
        "dnsperf", "-s", "10.96.0.10", "-p", "53", "-d", "/tmp/q.txt", "-l", "5",
        "-c", "8", "-T", "2", "-q", "200", "-t", "0.5",
    ]


def test_dnsperf_command_rate_limit_and_defaults() -> None:
    argv = peer_tools.dnsperf_command("127.0.0.1", 5391, "q", seconds=2.5, max_qps=2000)
    # dnsperf's own defaults: 1 client, 1 thread pair, 100 outstanding, 5 s timeout
    assert argv[7:] == ["-l", "2.5", "-c", "1", "-T", "1", "-q", "100", "-t", "5", "-Q", "2000"]


def test_resperf_command_flags() -> None:
    argv = peer_tools.resperf_command(
        "127.0.0.1", 5391, "/data/q.txt", max_qps=200000, ramp_s=5, loss_pct=1, clients=8, timeout_s=1
    )
    assert argv == [
        "resperf", "-s", "127.0.0.1", "-p", "5391", "-d", "/data/q.txt", "-R",
        "-m", "200000", "-r", "5", "-L", "1", "-C", "8", "-t", "1", "-P", "/tmp/resperf.gnuplot",
    ]


def test_resperf_command_clients_are_capital_c_and_c_is_constant_time() -> None:
    argv = peer_tools.resperf_command(
        "::1", 53, "q", max_qps=20000, ramp_s=3, loss_pct=2.5, clients=2, constant_s=2,
        max_outstanding=1000, fall_behind=0, plotfile="/work/plot",
    )
    assert argv[argv.index("-c") + 1] == "2" and argv[argv.index("-C") + 1] == "2"
    assert argv.index("-c") < argv.index("-L")
    assert argv[argv.index("-L") + 1] == "2.5"
    assert argv[argv.index("-q") + 1] == "1000"
    assert argv[argv.index("-F") + 1] == "0"
    assert argv[-2:] == ["-P", "/work/plot"]


def test_resperf_command_leaves_out_unset_options() -> None:
    argv = peer_tools.resperf_command("127.0.0.1", 53, "q", max_qps=1000, ramp_s=1, loss_pct=100)
    assert "-c" not in argv and "-q" not in argv and "-F" not in argv


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seconds": 0}, "seconds must be a positive number"),
        ({"seconds": float("inf")}, "seconds must be a positive number"),
        ({"seconds": 1e-9}, "below the tools' microsecond resolution"),
        ({"seconds": 1, "clients": 0}, "clients must be an integer >= 1"),
        ({"seconds": 1, "threads": True}, "threads must be an integer >= 1"),
        ({"seconds": 1, "max_qps": 0}, "max_qps must be an integer >= 1"),
        ({"seconds": 1, "timeout_s": -1}, "timeout_s must be a positive number"),
    ],
)
def test_dnsperf_command_refuses(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        peer_tools.dnsperf_command("127.0.0.1", 53, "q", **kwargs)


def test_builders_refuse_bad_targets_and_loss() -> None:
    with pytest.raises(ValueError, match="port must be 1-65535"):
        peer_tools.dnsperf_command("127.0.0.1", 0, "q", seconds=1)
    with pytest.raises(ValueError, match="server must be an address"):
        peer_tools.dnsperf_command("-h", 53, "q", seconds=1)
    with pytest.raises(ValueError, match="loss_pct must be 0-100"):
        peer_tools.resperf_command("127.0.0.1", 53, "q", max_qps=1, ramp_s=1, loss_pct=101)
    with pytest.raises(ValueError, match="fall_behind must be an integer >= 0"):
        peer_tools.resperf_command("127.0.0.1", 53, "q", max_qps=1, ramp_s=1, fall_behind=-1)


def test_query_file() -> None:
    text = peer_tools.query_file([("kubernetes.default.svc.cluster.local", "A"), ("_https._tcp.x.", "srv")])
    assert text == "kubernetes.default.svc.cluster.local A\n_https._tcp.x. SRV\n"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([], "at least one"),
        ([("a b", "A")], "no whitespace"),
        ([("", "A")], "non-empty"),
        ([("a.", "A AAAA")], "mnemonic"),
        ([("a.", "")], "mnemonic"),
    ],
)
def test_query_file_refuses(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        peer_tools.query_file(pairs)


# ---- parsers -----------------------------------------------------------------------------------


def test_parse_dnsperf_one_client() -> None:
    r = peer_tools.parse_dnsperf(DNSPERF_ONE_CLIENT)
    assert (r.queries_sent, r.queries_completed, r.queries_lost) == (579120, 579120, 0)
    assert r.rcodes == {"NOERROR": 434340, "NXDOMAIN": 144780}
    assert r.qps == pytest.approx(115812.233477)
    assert r.run_time_s == pytest.approx(5.000508)
    assert (r.avg_latency_s, r.min_latency_s, r.max_latency_s) == pytest.approx((0.000485, 0.000007, 0.004483))
    assert r.latency_stddev_s == pytest.approx(0.000360)
    assert (r.request_bytes, r.response_bytes) == (56, 101)
    assert r.timeouts_logged == 0 and r.loss == 0.0


def test_parse_dnsperf_with_timeouts_and_interval_stats() -> None:
    r = peer_tools.parse_dnsperf(DNSPERF_TIMEOUTS)
    assert (r.queries_sent, r.queries_completed, r.queries_lost) == (297464, 297458, 6)
    assert r.timeouts_logged == 6
    assert r.qps == pytest.approx(148684.840602)
    assert r.loss == pytest.approx(6 / 297464)


def test_parse_dnsperf_nothing_answered() -> None:
    r = peer_tools.parse_dnsperf(DNSPERF_NO_SERVER)
    assert (r.queries_sent, r.queries_completed, r.queries_lost) == (20, 0, 20)
    assert r.rcodes == {} and r.qps == 0.0 and r.latency_stddev_s is None
    assert r.loss == 1.0 and r.timeouts_logged == 20


def test_parse_dnsperf_without_summary_says_what_dnsperf_said() -> None:
    said = "last said: Error: unable to open file: /data/nonexistent.txt"
    with pytest.raises(ValueError, match=rf"^dnsperf output has no 'Statistics:' summary; {said}$"):
        peer_tools.parse_dnsperf(DNSPERF_NO_FILE)
    with pytest.raises(ValueError, match="last said: nothing"):
        peer_tools.parse_dnsperf("")


def test_parse_dnsperf_names_a_missing_line() -> None:
    cut = "\n".join(line for line in DNSPERF_ONE_CLIENT.splitlines() if "Queries per second" not in line)
    with pytest.raises(ValueError, match=r"^dnsperf summary has no 'Queries per second:' line$"):
        peer_tools.parse_dnsperf(cut)
    garbled = DNSPERF_ONE_CLIENT.replace("request 56, response 101", "56/101")
    with pytest.raises(ValueError, match="'Average packet size: 56/101' is not in the expected form"):
        peer_tools.parse_dnsperf(garbled)


def test_parse_resperf_fell_behind() -> None:
    r = peer_tools.parse_resperf(RESPERF_FELL_BEHIND)
    assert r.max_throughput_qps == 148564.0
    assert r.lost_at_max_pct == pytest.approx(0.21)
    assert r.fell_behind_at_qps == 161777
    assert (r.queries_sent, r.queries_completed, r.queries_lost) == (326147, 325807, 340)
    assert r.rcodes == {"NOERROR": 244356, "NXDOMAIN": 81451}
    assert r.reconnections == 0 and r.run_time_s == pytest.approx(5.946551)


def test_parse_resperf_lossy_and_constant() -> None:
    lossy = peer_tools.parse_resperf(RESPERF_LOSSY)
    assert lossy.max_throughput_qps == 138800.0 and lossy.lost_at_max_pct == pytest.approx(7.47)
    assert lossy.queries_lost == 34593 and lossy.fell_behind_at_qps is None
    constant = peer_tools.parse_resperf(RESPERF_CONSTANT)
    assert constant.max_throughput_qps == 20012.0 and constant.queries_lost == 0
    assert constant.queries_sent == 69999 and constant.run_time_s == pytest.approx(5.000005)


def test_parse_resperf_nothing_answered() -> None:
    r = peer_tools.parse_resperf(RESPERF_NO_SERVER)
    assert (r.queries_sent, r.queries_completed, r.queries_lost) == (2000, 0, 2000)
    assert r.rcodes == {} and r.max_throughput_qps == 0.0


def test_parse_resperf_without_summary() -> None:
    said = "last said: Error: ran out of query data"
    with pytest.raises(ValueError, match=rf"^resperf output has no 'Statistics:' summary; {said}$"):
        peer_tools.parse_resperf(RESPERF_NO_DATA)
    cut = RESPERF_FELL_BEHIND.replace("  Maximum throughput:   148564.000000 qps\n", "")
    with pytest.raises(ValueError, match=r"^resperf summary has no 'Maximum throughput:' line$"):
        peer_tools.parse_resperf(cut)


def test_parsers_keep_to_their_tool() -> None:
    # a dnsperf summary has no "Maximum throughput:"; a resperf one has no latency line
    with pytest.raises(ValueError, match="'Maximum throughput:'"):
        peer_tools.parse_resperf(DNSPERF_ONE_CLIENT)
    with pytest.raises(ValueError, match="'Average packet size:'|'Average Latency"):
        peer_tools.parse_dnsperf(RESPERF_CONSTANT)
