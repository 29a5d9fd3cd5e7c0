"""Check 17's figures: one stream per node and libc, and per path when NodeLocal DNSCache and
CoreDNS beside it were both asked; each path pooled too, so that a slow cache is not averaged away."""

from __future__ import annotations

from pytest_k8sdns.dns.propagation import Delay, Propagation
from pytest_k8sdns.evidence import propagation as evidence

S = 1_000_000_000


def delay(node: str, libc: str, seconds: float | None, path: str = "", name: str = "s0") -> Delay:
    return Delay("service", name, node, libc, 0, None if seconds is None else int(seconds * S), 0, path)


def test_one_way_keeps_node_and_libc_labels() -> None:
    p = Propagation((delay("w1", "glibc", 0.1), delay("w1", "musl", 0.2)), "the cluster DNS", 0.1)
    assert [evidence.label(k) for k in evidence.by_stream(p, "service")] == ["w1/glibc", "w1/musl"]
    assert evidence.paths(p) == []
    names = [m.name for m in evidence.measurements(p, "service")]
    assert "p99_s[w1/glibc]" in names and not any(n in names for n in ("p99_s[coredns]", "p99_s[nodelocal]"))
    header, rows = evidence.table(p, "service")
    assert "path" not in header and rows[0][:2] == ["w1", "glibc"]


def test_two_ways_are_told_apart_and_each_pooled() -> None:
    p = Propagation((delay("w1", "musl", 5.1, "nodelocal"), delay("w1", "musl", 0.1, "coredns"),
                     delay("w1", "glibc", None, "nodelocal", "s1")), "NodeLocal and CoreDNS", 0.1)
    keys = list(evidence.by_stream(p, "service"))
    assert [evidence.label(k) for k in keys] == ["w1/glibc/nodelocal", "w1/musl/coredns", "w1/musl/nodelocal"]
    assert evidence.paths(p) == ["coredns", "nodelocal"]
    figures = {m.name: m.value for m in evidence.measurements(p, "service")}
    assert figures["p99_s[coredns]"] == 0.1 and figures["p99_s[nodelocal]"] == "never"
    assert figures["p99_s[w1/musl/nodelocal]"] == 5.1 and figures["objects"] == 2
    header, rows = evidence.table(p, "service")
    assert header[:3] == ["node", "libc", "path"] and rows[1][:3] == ["w1", "musl", "coredns"]


def test_a_stream_is_late_by_timeout_only_when_a_timed_out_lookup_ended_past_the_bound() -> None:
    """Ready at 0, bound 10 s: the probe asks a name again only once its lookup has ended, so a
    lookup that timed out and ended past 10 s means the first answer starts past it. A name that
    stays NXDOMAIN (the check's own subject) is never given up on this way: its delay is measured."""
    from pytest_k8sdns.dns.propagation import late_by_timeout

    again, nonname = -3, -2
    timed_out = [(1 * S, 10 * S, False, again)]  # EAI_AGAIN, ended at 11 s
    assert late_by_timeout(timed_out, 0, 10.0, "glibc")
    assert not late_by_timeout(timed_out, 0, 12.0, "glibc")  # ended before the bound: may still answer in time
    assert not late_by_timeout([*timed_out, (5 * S, S // 100, True, 0)], 0, 10.0, "glibc")  # answered at 5 s
    assert late_by_timeout([*timed_out, (12 * S, S // 100, True, 0)], 0, 10.0, "glibc")  # answered at 12 s
    slow_nxdomain = [(2 * S, 9 * S, False, nonname)]  # a search candidate timed out: glibc ends in NXDOMAIN
    assert late_by_timeout(slow_nxdomain, 0, 10.0, "glibc")
    assert not late_by_timeout([(2 * S, 4 * S, False, nonname)], 0, 1.0, "glibc")  # 4 s: under glibc's 5 s
    assert late_by_timeout([(2 * S, 4 * S, False, nonname)], 0, 1.0, "musl")  # over musl's 2.5 s
    denied = [(t * S, S // 100, False, nonname) for t in range(0, 30)]  # NXDOMAIN for 30 s: the subject
    assert not late_by_timeout(denied, 0, 10.0, "glibc")
    assert not late_by_timeout([], 0, 10.0, "glibc")


def test_timed_out_is_a_lost_query_and_never_a_denial() -> None:
    from pytest_k8sdns.dns.propagation import timed_out

    assert timed_out(10 * S // 1000, False, -3, "glibc")  # EAI_AGAIN however fast (a SERVFAIL too)
    assert timed_out(5 * S, False, -2, "glibc") and not timed_out(4 * S, False, -2, "glibc")
    assert timed_out(3 * S, False, -2, "musl")
    assert not timed_out(20 * S, True, 0, "glibc")  # an answer, however slow, is no failure
