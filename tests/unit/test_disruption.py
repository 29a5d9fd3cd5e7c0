"""The change verdict and its timeline: gaps, budgets, the socket's recovery, the raw document."""

from __future__ import annotations

import asyncio
import time

import pytest

from pytest_k8sdns.config import Settings
from pytest_k8sdns.monitor import change
from pytest_k8sdns.monitor.fixtures import changes_asked, monitor_rate
from pytest_k8sdns.monitor.timeline import (
    CHANGE_END,
    CHANGE_START,
    Mark,
    Sample,
    Stream,
    Timeline,
    document,
    from_document,
    gaps,
)
from pytest_k8sdns.verdict.disruption import ChangeBounds, ChangeOutcome, advice, judge

S = 1_000_000_000
T0 = 1_700_000_000 * S
W1 = Stream("worker", "glibc", "libc")
W2 = Stream("worker2", "musl", "libc")
SOCK = Stream("worker", "glibc", "socket")


def steady(stream: Stream, seconds: int, *, fail: tuple[float, float] | None = None, latency_ms: float = 1.0,
           every_s: float = 0.1, error: int = -3) -> list[Sample]:
    """A lookup every `every_s` for `seconds` after T0; those starting inside `fail` fail."""
    out = []
    for i in range(int(seconds / every_s)):
        at = i * every_s
        bad = fail is not None and fail[0] <= at < fail[1]
        out.append(Sample(stream, T0 + int(at * S), int((5000 if bad else latency_ms) * 1e6), not bad, error if bad else 0))
    return out


def timeline(*samples: list[Sample], start_s: float = 2.0, end_s: float = 20.0, stop_s: float = 30.0) -> Timeline:
    marks = [Mark(CHANGE_START, T0 + int(start_s * S)), Mark(CHANGE_END, T0 + int(end_s * S))]
    return Timeline([s for ss in samples for s in ss], marks, T0, T0 + int(stop_s * S))


def test_a_clean_change_passes_with_its_figures() -> None:
    v = judge(timeline(steady(W1, 30), steady(W2, 30), steady(SOCK, 30)), ChangeBounds())
    assert v.ok, v.message
    assert v.figures["failed"] == 0 and v.figures["lookups"] == 2 * 280  # from +2 s (sample 20) to the last, at 29.9 s
    assert v.figures["longest_gap_s"] == 0.0 and v.figures["p99_ms"] == pytest.approx(1.0)


def test_failures_over_the_budget_name_the_stream_the_window_and_the_error() -> None:
    v = judge(timeline(steady(W1, 30), steady(W2, 30, fail=(5.0, 6.0))), ChangeBounds(max_gap_s=10, p99_ms=1e6))
    assert not v.ok
    assert "10 of 560 lookups failed during the change (budget 0): worker2/musl 10 (+3.0 s to +3.9 s, EAI_AGAIN)" \
        in v.message
    assert judge(timeline(steady(W1, 30), steady(W2, 30, fail=(5.0, 6.0))),
                 ChangeBounds(max_failed=10, max_gap_s=10, p99_ms=1e6)).ok


def test_failures_before_the_change_are_not_its_fault() -> None:
    assert judge(timeline(steady(W1, 30, fail=(0.0, 1.0))), ChangeBounds()).ok


def test_the_longest_gap_is_judged_per_stream_and_says_who_else_had_one() -> None:
    v = judge(timeline(steady(W1, 30, fail=(4.0, 4.5)), steady(W2, 30, fail=(5.0, 12.0))),
              ChangeBounds(max_failed=1000, p99_ms=1e6))
    assert "longest gap of failures 7.0 s on worker2/musl (+3.0 s to +10.0 s, 70 lookups; bound 5 s); " \
           "gaps on other nodes too: worker" in v.message
    assert v.figures["longest_gap_s"] == pytest.approx(7.0)


def test_a_stream_that_never_recovers_fails_whatever_the_bound() -> None:
    v = judge(timeline(steady(W1, 30, fail=(25.0, 30.0))), ChangeBounds(max_failed=1000, max_gap_s=100, p99_ms=1e6))
    assert "had not recovered when the monitor stopped" in v.message


def test_gaps_end_at_the_next_answer_or_at_the_stop() -> None:
    found = gaps(steady(W1, 10, fail=(2.0, 3.0)) + steady(W2, 10, fail=(9.0, 10.0)), T0 + 20 * S)
    assert [(g.stream, g.failed, g.recovered) for g in found] == [(W1, 10, True), (W2, 10, False)]
    assert found[0].seconds == pytest.approx(1.0) and found[1].seconds == pytest.approx(11.0)


def test_tail_latency_during_the_change_names_where_the_slow_lookups_came_from() -> None:
    slow = [Sample(W2, T0 + int((3 + i) * S), 5_000_000_000, True) for i in range(10)]
    v = judge(timeline(steady(W1, 30), slow), ChangeBounds())
    assert "p99 during the change 5000 ms (bound 1000 ms); the slowest 1 % from worker2/musl (2)" in v.message


def test_the_long_lived_socket_must_recover_within_its_bound() -> None:
    v = judge(timeline(steady(W1, 30), steady(SOCK, 30, fail=(3.0, 13.0), error=-1002)), ChangeBounds())
    assert "the long-lived UDP socket on worker recovered only after 10.0 s of failures (+1.0 s to +11.0 s, " \
           "100 queries; bound 5 s)" in v.message
    assert judge(timeline(steady(W1, 30), steady(SOCK, 30, fail=(3.0, 4.0))), ChangeBounds()).ok


def test_a_failed_change_and_a_lost_stream_fail_the_check() -> None:
    tl = timeline(steady(W1, 30))
    tl.lost["worker2/musl"] = "the probe's stream ended without its summary (exit 137: Killed)"
    bad = ChangeOutcome("--k8sdns-during", "false", 1, T0, T0 + S, output="upgrade failed: no quorum\n")
    v = judge(tl, ChangeBounds(), bad)
    assert v.problems[0] == "the change '--k8sdns-during' exited 1 (upgrade failed: no quorum)"
    assert v.problems[1].startswith("the monitor lost worker2/musl before it stopped: ")


def test_the_advice_follows_what_went_wrong_and_which_change_ran() -> None:
    stuck = judge(timeline(steady(W1, 30), steady(SOCK, 30, fail=(3.0, 30.0), error=-1002)), ChangeBounds())
    assert stuck.kinds == {"socket"}
    said = advice(stuck, "coredns-rollout")
    assert "conntrack entries for it were not flushed" in said and "lameduck" not in said
    gap = judge(timeline(steady(W1, 30), steady(W2, 30, fail=(5.0, 12.0))), ChangeBounds())
    assert gap.kinds == {"failed", "gap", "p99"}
    assert "lameduck" in advice(gap, "coredns-rollout") and "lameduck" in advice(gap, "during")
    assert "maxSurge" in advice(gap, "nodelocal-rollout") and "lameduck" not in advice(gap, "nodelocal-rollout")
    bad = ChangeOutcome("during", "false", 1, T0, T0 + S)
    failed_change = judge(timeline(steady(W1, 30)), ChangeBounds(), bad)
    assert failed_change.kinds == {"change"} and "the change itself did not succeed" in advice(failed_change, "during")


def test_no_lookup_at_all_is_a_failure_not_a_pass() -> None:
    assert "no lookup was measured" in judge(timeline(), ChangeBounds()).message


def test_the_raw_timeline_round_trips_through_its_document() -> None:
    tl = timeline(steady(W1, 3, fail=(1.0, 1.5)), steady(SOCK, 3))
    back = from_document(document(tl))
    assert back.streams == tl.streams and back.mark(CHANGE_START) == tl.mark(CHANGE_START)
    assert [(s.stream, s.ok, s.error) for s in back.samples] == [(s.stream, s.ok, s.error) for s in tl.samples]
    assert all(abs(a.start_ns - b.start_ns) < 1000 for a, b in zip(back.samples, tl.samples, strict=True))


def test_monitor_rate_fits_the_budget_of_all_streams() -> None:
    settings = Settings(monitor_qps=10.0)
    assert monitor_rate(settings, 500.0, 3) == 10.0
    assert monitor_rate(settings, 500.0, 100) == pytest.approx(1.0)  # 100 nodes x (2 libcs x 2 queries + 1)


def test_changes_asked_come_from_the_command_and_the_disruptive_flag() -> None:
    assert changes_asked(Settings()) == []
    assert changes_asked(Settings(during="true", disruptive=True))[:2] == ["during", "coredns-rollout"]


def test_a_command_change_keeps_its_exit_status_and_output() -> None:
    out = asyncio.run(change.run_command("echo upgrading; echo done >&2; exit 3", env={}, timeout_s=30))
    assert out.exit_code == 3 and out.output.splitlines() == ["upgrading", "done"] and not out.ok


def test_a_command_that_overruns_is_killed_with_everything_it_started(tmp_path) -> None:
    marker = tmp_path / "child-alive"
    t0 = time.monotonic()
    out = asyncio.run(change.run_command(f"(sleep 3; touch {marker}) & sleep 60", env={}, timeout_s=0.5))
    assert out.exit_code is None and "did not end within 0.5 s" in out.error
    assert time.monotonic() - t0 < 10
    time.sleep(3.5)
    assert not marker.exists(), "the command's child outlived the kill of its process group"


def test_scenarios_that_change_nodes_are_asked_only_on_a_cluster_the_plugin_creates() -> None:
    on_yours = changes_asked(Settings(disruptive=True, context="staging"))
    assert on_yours == ["coredns-rollout", "coredns-pod-delete", "nodelocal-rollout"]
    on_kind = changes_asked(Settings(disruptive=True, kind=True))
    assert on_kind == [*on_yours, "node-drain", "kube-proxy-restart"]
    assert changes_asked(Settings(kind=True)) == []


def test_a_scenario_for_created_clusters_refuses_any_other() -> None:
    from types import SimpleNamespace

    from pytest_k8sdns.monitor import scenarios

    yours = scenarios.Context(SimpleNamespace(context="staging"), None, None)  # type: ignore[arg-type]
    for name in ("node-drain", "kube-proxy-restart"):
        with pytest.raises(scenarios.NotApplicable, match=f"^{name} runs only on a kind cluster the plugin created"):
            scenarios.SCENARIOS[name].check(yours)
        with pytest.raises(scenarios.NotApplicable):
            scenarios.SCENARIOS[name].run(yours)  # refused before it touches anything
    with pytest.raises(scenarios.NotApplicable, match="no NodeLocal DNSCache DaemonSet"):
        scenarios.SCENARIOS["nodelocal-rollout"].check(yours)


def test_a_drain_evicts_what_kubectl_drain_does_but_not_the_monitors_own_pods() -> None:
    from types import SimpleNamespace

    from pytest_k8sdns.monitor.scenarios import drained_pods

    def pod(name: str, owner: str = "ReplicaSet", labels: dict | None = None, annotations: dict | None = None,
            deleting: bool = False) -> SimpleNamespace:
        return SimpleNamespace(metadata=SimpleNamespace(
            name=name, namespace="ns", owner_references=[SimpleNamespace(kind=owner)] if owner else [],
            labels=labels or {}, annotations=annotations or {}, deletion_timestamp="now" if deleting else None))

    pods = [pod("coredns-b"), pod("kube-proxy-x", "DaemonSet"), pod("etcd-cp", "Node",
            annotations={"kubernetes.io/config.mirror": "abc"}), pod("probe", "", {"app.kubernetes.io/managed-by":
            "pytest-k8sdns", "k8sdns.io/run": "r"}), pod("bare", ""), pod("going", deleting=True), pod("coredns-a")]
    assert [p.metadata.name for p in drained_pods(pods)] == ["bare", "coredns-a", "coredns-b"]


def test_a_command_that_exits_leaving_a_child_holding_its_output_ends_it(tmp_path) -> None:
    marker = tmp_path / "child-alive"
    t0 = time.monotonic()
    out = asyncio.run(change.run_command(f"(sleep 4; touch {marker}) & echo started", env={}, timeout_s=60))
    assert out.exit_code == 0 and out.output.strip() == "started" and time.monotonic() - t0 < 10
    time.sleep(4.5)
    assert not marker.exists(), "a background child outlived the change command"


def test_an_unrecovered_gap_fails_even_when_another_stream_had_a_longer_one() -> None:
    v = judge(timeline(steady(W1, 30, fail=(3.0, 9.0)), steady(W2, 30, fail=(29.5, 30.0))),
              ChangeBounds(max_failed=1000, max_gap_s=100, p99_ms=1e6))
    assert "on worker2/musl" in v.message and "had not recovered when the monitor stopped" in v.message


def test_lookups_that_could_not_start_count_as_failed() -> None:
    tl = timeline(steady(W1, 30))
    tl.unstarted["worker/glibc"] = 7
    v = judge(tl, ChangeBounds())
    assert "7 of 287 lookups failed during the change" in v.message and "could not start" in v.message
    assert v.figures["failed"] == 7


def test_the_chase_interval_stays_within_what_the_probe_accepts() -> None:
    from pytest_k8sdns.dns.propagation import chase_interval

    assert chase_interval(4, 4, 500.0) == 0.1
    assert chase_interval(11, 64, 500.0) == pytest.approx(11 * 64 * 2 / 500)
    assert chase_interval(11, 64, 50.0) == 10.0


def test_a_watched_change_is_valid_in_a_results_file() -> None:
    from pytest_k8sdns.evidence import change as change_evidence
    from pytest_k8sdns.evidence.recorder import Recorder
    from pytest_k8sdns.results import Results, validate

    results = Results()
    recorder = Recorder(results, "conformance/test_change.py::test_dns_during_change[during]", None)
    tl = timeline(steady(W1, 3, fail=(1.0, 1.2)), steady(SOCK, 3))
    tl.unstarted["worker/glibc"] = 2
    tl.lost["worker2/musl"] = "gone"
    outcome = ChangeOutcome("--k8sdns-during", "true", 0, T0, T0 + S, output="ok\n")
    change_evidence.record(recorder, tl, judge(tl, ChangeBounds(), outcome), outcome)
    doc = results.document({})
    # only the check's part: the cluster facts and settings come from a run, which this has not
    assert [e for e in validate(doc) if e.startswith("$.checks")] == []
    assert doc["checks"][0]["timeline"]["unstarted"] == {"worker/glibc": 2}
