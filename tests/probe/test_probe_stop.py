"""Early stop of `lookup` and `burst` on stop_rules, with the real payload against real unbound in
the private netns: a run whose verdict is already certain ends and says after how many rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from probe_netns_support import (
    EAI_NONAME,
    ProbeRunner,
    old_pythons,
    pod_resolv_conf,
    silent_nameserver,
)

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.probe import LookupResult, parse_output
from pytest_k8sdns.probe.protocol import MAX_STOP_RULES

OK_NAME = "kubernetes.default.svc.cluster.local."
NX_NAME = "no-such-svc.example.test."  # NXDOMAIN from unbound's static zone, without the search list


def lookup(probe: ProbeRunner, args: dict[str, Any], **kw: Any) -> LookupResult:
    result = probe.run("lookup", args, **kw)
    assert isinstance(result, LookupResult)
    return result


def burst(probe: ProbeRunner, args: dict[str, Any]) -> LookupResult:
    result = probe.run("burst", args)
    assert isinstance(result, LookupResult)
    return result


@pytest.fixture
def silent_ip(probe: ProbeRunner) -> Iterator[str]:
    """A nameserver in the netns that never answers."""
    with silent_nameserver(probe.netns) as ip:
        yield ip


# ---- lookup -------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_lookup_stops_once_failures_exceed_the_rule(probe: ProbeRunner, concurrency: int) -> None:
    rules = [{"outcome": "failed", "more_than": 2}]
    result = lookup(probe, {"names": [NX_NAME], "count": 50, "concurrency": concurrency, "stop_rules": rules})
    assert result.stopped == "verdict" and result.stop_rule == 0
    # the third failure trips the rule; lookups other threads had already started are kept
    assert 3 <= len(result.rows) <= 3 + concurrency - 1, result.rows
    assert result.totals.lookups == len(result.rows) == result.totals.failed
    assert {row.error_code for row in result.rows} == {EAI_NONAME}


def test_lookup_stops_after_the_rows_of_the_rule_that_trips(probe: ProbeRunner) -> None:
    rules = [
        {"outcome": "failed", "more_than": 0},  # never matches: every lookup succeeds
        {"outcome": "ok", "min_latency_ns": 0, "more_than": 4},
    ]
    result = lookup(probe, {"names": [OK_NAME], "count": 50, "concurrency": 1, "stop_rules": rules})
    assert result.stopped == "verdict" and result.stop_rule == 1
    assert len(result.rows) == 5 and all(row.ok for row in result.rows)
    assert [row.name_index for row in result.rows] == [0] * 5


def test_lookup_of_the_lowest_rule_index_wins_when_one_row_trips_two(probe: ProbeRunner) -> None:
    rules = [{"outcome": "ok", "more_than": 0}, {"outcome": "any", "more_than": 0}]
    result = lookup(probe, {"names": [OK_NAME], "count": 10, "stop_rules": rules})
    assert result.stopped == "verdict" and result.stop_rule == 0 and len(result.rows) == 1


def test_lookup_counts_only_rows_at_least_as_slow_as_the_rule(probe: ProbeRunner, silent_ip: str) -> None:
    """Against a server that never answers each lookup takes the resolver's 1 s timeout; fast
    failures (NXDOMAIN) do not match a 0.5 s rule, slow ones do."""
    slow = {"outcome": "failed", "min_latency_ns": 500_000_000, "more_than": 0}
    fast = lookup(probe, {"names": [NX_NAME], "count": 10, "stop_rules": [slow]})
    assert fast.stopped == "count" and fast.stop_rule is None and len(fast.rows) == 10
    conf = pod_resolv_conf(silent_ip, extra_options="timeout:1 attempts:1")
    timed_out = lookup(probe, {"names": [NX_NAME], "count": 20, "concurrency": 2, "stop_rules": [slow]},
                       resolv_conf=conf)
    assert timed_out.stopped == "verdict" and timed_out.stop_rule == 0
    # both threads started together: the second's lookup, if still running when the first tripped,
    # is reported in flight (a rule on failures cannot count it: it may yet answer)
    assert len(timed_out.rows) + len(timed_out.in_flight) == 2, timed_out
    assert all(not row.ok and row.latency_ns >= 500_000_000 for row in timed_out.rows)
    assert timed_out.totals.elapsed_ns < 5e9


@pytest.mark.parametrize("concurrency", [1, 2])
def test_lookup_stops_on_a_lookup_still_running_past_an_any_rule(probe: ProbeRunner, silent_ip: str,
                                                                 concurrency: int) -> None:
    """A rule on any outcome counts a lookup from the moment it passes the rule's latency: against a
    server that never answers, with a 4 s resolver timeout, the run ends at about 0.5 s, not 4 s."""
    rule = {"outcome": "any", "min_latency_ns": 500_000_000, "more_than": 0}
    conf = pod_resolv_conf(silent_ip, extra_options="timeout:4 attempts:1")
    started = time.monotonic()
    result = lookup(probe, {"names": [NX_NAME], "count": 20, "concurrency": concurrency, "stop_rules": [rule]},
                    resolv_conf=conf)
    wall = time.monotonic() - started
    assert result.stopped == "verdict" and result.stop_rule == 0
    assert result.rows == () and len(result.in_flight) == concurrency, result
    assert all(500_000_000 <= r.waited_ns < 2e9 and r.name_index == 0 for r in result.in_flight), result.in_flight
    assert result.totals.elapsed_ns < 2e9 and wall < 3.5, (result.totals, wall)  # the payload exits, not waits


def test_lookup_failed_rule_waits_for_the_running_lookup(probe: ProbeRunner, silent_ip: str) -> None:
    """The same lookup under a rule on failures: only its end (the 1 s timeout) counts."""
    rule = {"outcome": "failed", "min_latency_ns": 500_000_000, "more_than": 0}
    conf = pod_resolv_conf(silent_ip, extra_options="timeout:1 attempts:1")
    result = lookup(probe, {"names": [NX_NAME], "count": 20, "stop_rules": [rule]}, resolv_conf=conf)
    assert result.stopped == "verdict" and len(result.rows) == 1 and result.in_flight == ()
    assert result.rows[0].latency_ns >= 900_000_000


def test_lookup_paced_threads_wake_at_the_verdict(probe: ProbeRunner) -> None:
    """At 2 per second the 4 threads wait for their turn; the first failure ends the waits too."""
    rules = [{"outcome": "failed", "more_than": 0}]
    result = lookup(probe, {"names": [NX_NAME], "count": 50, "qps": 2, "concurrency": 4, "stop_rules": rules})
    assert result.stopped == "verdict" and result.stop_rule == 0
    assert len(result.rows) == 1 and result.rows[0].start_offset_ns < 50e6
    assert result.totals.elapsed_ns < 400e6, result.totals  # the next turn was due at 500 ms


def test_lookup_without_rules_runs_the_full_count(probe: ProbeRunner) -> None:
    plain = lookup(probe, {"names": [NX_NAME], "count": 20, "concurrency": 4})
    empty = lookup(probe, {"names": [NX_NAME], "count": 20, "concurrency": 4, "stop_rules": []})
    never = lookup(
        probe,
        {"names": [OK_NAME], "count": 20, "stop_rules": [{"outcome": "failed", "more_than": 0},
                                                         {"outcome": "ok", "more_than": 20}]},
    )
    for result in (plain, empty, never):
        assert result.stopped == "count" and result.stop_rule is None
        assert len(result.rows) == result.totals.lookups == 20


def test_lookup_document_without_rules_has_stop_rule_null(probe: ProbeRunner) -> None:
    proc = probe.raw("lookup", {"names": [OK_NAME], "count": 2})
    doc = json.loads(proc.stdout)
    assert doc["stopped"] == "count" and "stop_rule" in doc and doc["stop_rule"] is None


# ---- burst --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "n_bursts", "stop_rule"),
    [
        ([{"outcome": "failed", "more_than": 2}], 3, 0),  # one failure per burst: the third burst
        ([{"outcome": "failed", "more_than": 2}, {"outcome": "any", "more_than": 2}], 2, 1),  # 4 rows > 2
        ([{"outcome": "failed", "more_than": 0}, {"outcome": "any", "more_than": 1}], 1, 0),  # both: lowest
    ],
    ids=["failed", "any-trips-first", "lowest-index"],
)
def test_burst_stops_after_the_burst_that_trips(
    probe: ProbeRunner, rules: list[dict[str, Any]], n_bursts: int, stop_rule: int
) -> None:
    # thread 0 always looks up names[0], thread 1 names[1]: one ok and one failed row per burst
    result = burst(probe, {"names": [OK_NAME, NX_NAME], "bursts": 10, "parallel": 2, "interval_s": 0.02,
                           "stop_rules": rules})
    assert result.stopped == "verdict" and result.stop_rule == stop_rule
    assert [row.burst for row in result.rows] == [b for b in range(n_bursts) for _ in range(2)]
    assert result.totals.ok == result.totals.failed == n_bursts
    assert result.bursts == 10  # as asked; the rows say how many ran


def test_burst_stops_on_lookups_still_running_past_an_any_rule(probe: ProbeRunner, silent_ip: str) -> None:
    rule = {"outcome": "any", "min_latency_ns": 500_000_000, "more_than": 1}
    conf = pod_resolv_conf(silent_ip, extra_options="timeout:4 attempts:1")
    result = probe.run("burst", {"names": [NX_NAME], "bursts": 5, "parallel": 3, "interval_s": 0, "stop_rules": [rule]},
                       resolv_conf=conf)
    assert isinstance(result, LookupResult) and result.stopped == "verdict" and result.stop_rule == 0
    assert result.rows == () and len(result.in_flight) == 3, result
    assert {r.burst for r in result.in_flight} == {0} and all(r.waited_ns >= 500_000_000 for r in result.in_flight)
    assert result.totals.elapsed_ns < 2e9


def test_burst_without_rules_runs_every_burst(probe: ProbeRunner) -> None:
    args: dict[str, Any] = {"names": [OK_NAME, NX_NAME], "bursts": 4, "parallel": 2, "interval_s": 0.01}
    plain = burst(probe, args)
    never = burst(probe, {**args, "stop_rules": [{"outcome": "failed", "min_latency_ns": 60 * 10**9, "more_than": 0}]})
    for result in (plain, never):
        assert result.stopped == "count" and result.stop_rule is None
        assert [row.burst for row in result.rows] == [0, 0, 1, 1, 2, 2, 3, 3]


# ---- bad rules and bad documents ---------------------------------------------------------------

_RULE = {"outcome": "failed", "more_than": 1}


@pytest.mark.parametrize(
    ("command", "rules", "message"),
    [
        ("lookup", _RULE, "argument 'stop_rules' must be list"),
        ("lookup", [_RULE] * (MAX_STOP_RULES + 1), f"has {MAX_STOP_RULES + 1} rules; at most {MAX_STOP_RULES}"),
        ("lookup", ["failed"], "stop_rules[0] must be an object with outcome, min_latency_ns, more_than"),
        ("lookup", [_RULE, {**_RULE, "min_latency_ms": 5}], "stop_rules[1] has unknown keys min_latency_ms"),
        ("lookup", [{"outcome": "slow", "more_than": 1}], "stop_rules[0]: argument 'outcome'='slow'; valid: any, failed, ok"),
        ("lookup", [{"outcome": "ok"}], "stop_rules[0]: missing argument 'more_than'"),
        ("lookup", [{"more_than": 1}], "stop_rules[0]: missing argument 'outcome'"),
        ("lookup", [{**_RULE, "more_than": -1}], "stop_rules[0]: argument 'more_than'=-1 is outside"),
        ("lookup", [{**_RULE, "more_than": True}], "stop_rules[0]: argument 'more_than' must be int"),
        ("lookup", [{**_RULE, "min_latency_ns": 1.5}], "stop_rules[0]: argument 'min_latency_ns' must be int"),
        ("lookup", [{**_RULE, "min_latency_ns": -1}], "stop_rules[0]: argument 'min_latency_ns'=-1 is outside"),
        ("burst", [{"outcome": "none", "more_than": 1}], "stop_rules[0]: argument 'outcome'='none'"),
    ],
    ids=["not-a-list", "too-many", "not-an-object", "unknown-key", "bad-outcome", "no-more-than", "no-outcome",
         "negative", "bool", "float-latency", "negative-latency", "burst"],
)
def test_bad_stop_rules_give_an_arg_error(probe: ProbeRunner, command: str, rules: object, message: str) -> None:
    proc = probe.raw(command, {"names": [OK_NAME], "stop_rules": rules})
    assert proc.returncode == 2
    assert len(proc.stdout.strip().splitlines()) == 1
    doc = json.loads(proc.stdout)
    assert set(doc) == {"command", "probe_version", "error"}
    assert doc["command"] == command and doc["error"].startswith("ArgError: ") and message in doc["error"], doc
    with pytest.raises(PodError, match="failed: ArgError: ") as info:
        parse_output(command, proc.stdout, where="pod p")
    assert "\n" not in str(info.value) and message in str(info.value)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"stop_rule": None}, r"\$\.stop_rule: None is not of type 'integer'"),  # a verdict names its rule
        ({"stopped": "count"}, r"\$\.stop_rule: 0 is not of type 'null'"),  # a rule only with a verdict
        ({"stop_rule": MAX_STOP_RULES}, r"\$\.stop_rule: 8 is greater than the maximum of 7"),
        ({"stopped": "bored"}, r"\$\.stopped: 'bored' is not one of"),
    ],    ids=["verdict-without-rule", "rule-without-verdict", "rule-out-of-range", "unknown-reason"],
)
def test_host_rejects_inconsistent_stop_fields(probe: ProbeRunner, change: dict[str, Any], where: str) -> None:
    proc = probe.raw("lookup", {"names": [NX_NAME], "count": 5, "stop_rules": [{"outcome": "any", "more_than": 0}]})
    doc = json.loads(proc.stdout)
    assert doc["stopped"] == "verdict" and doc["stop_rule"] == 0
    with pytest.raises(PodError, match=r"probe lookup in pod p returned invalid output at " + where) as info:
        parse_output("lookup", json.dumps({**doc, **change}), where="pod p")
    assert "\n" not in str(info.value)
    without = {key: value for key, value in doc.items() if key != "stop_rule"}
    with pytest.raises(PodError, match=r"invalid output at \$: 'stop_rule' is a required property"):
        parse_output("lookup", json.dumps(without), where="pod p")


@pytest.mark.parametrize(
    "python", old_pythons() or [pytest.param("python3.8", marks=pytest.mark.skip(reason="no Python 3.8 on this machine"))]
)
def test_stop_rules_run_on_python_3_8(probe: ProbeRunner, python: str) -> None:
    rules = [{"outcome": "failed", "more_than": 1}]
    result = lookup(probe, {"names": [NX_NAME], "count": 20, "concurrency": 2, "stop_rules": rules}, python=python)
    assert result.stopped == "verdict" and result.stop_rule == 0 and 2 <= len(result.rows) <= 3
    bursts = probe.run("burst", {"names": [NX_NAME], "bursts": 5, "parallel": 2, "interval_s": 0, "stop_rules": rules},
                       python=python)
    assert isinstance(bursts, LookupResult) and bursts.stopped == "verdict" and len(bursts.rows) == 2
