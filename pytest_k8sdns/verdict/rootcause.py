"""Root cause first: a record or search check whose measurement timed out says so and points to the
check that owns the transport, instead of blaming its own subject. NXDOMAIN (a record or search
problem) and a timeout (a transport problem) are never reported as the same thing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_k8sdns.evidence import stats
from pytest_k8sdns.probe.protocol import EAI_AGAIN
from pytest_k8sdns.probe.results import LookupResult, QueryReply

#: The check that places transport failures: which replica or which node's clients lose queries.
OWNER = "test_replicas.py::test_every_replica_answers"


def lookup_spoiled(result: LookupResult, libc: str) -> str:
    """Why the failed libc lookups of a run say nothing about the names asked ("" if they do).
    A lookup that failed only after the libc's retry time timed out on the way, whatever its final
    error: under loss, glibc ends a search at the candidate that timed out, then tries the name as
    it is, and returns that try's NXDOMAIN (EAI_NONAME)."""
    threshold = stats.retry_threshold(libc)
    failed = [r for r in result.rows if not r.ok]
    again = sum(1 for r in failed if r.error_code == EAI_AGAIN)
    late = sum(1 for r in failed if r.error_code != EAI_AGAIN and r.latency_s >= threshold)
    said = []
    if again:
        said.append(f"{again} EAI_AGAIN (no answer in time, or SERVFAIL)")
    if late:
        said.append(f"{late} failed only after {threshold} s, the {libc} retry time (a query of the search list timed "
                    f"out; the final error is that of a later query)")
    return ", ".join(said)


def reply_spoiled(reply: QueryReply) -> str:
    """Why a raw reply says nothing about the record asked ("" if it does)."""
    if not reply.ok and (reply.error or "").startswith("timeout"):
        return f"no reply ({reply.error})"  # a refused or reset connection is an answer: the check's own subject
    if reply.rcode == "SERVFAIL":
        return "SERVFAIL"
    return ""


def spoiled_message(what: str, where: str, why: str, causes: Sequence[str]) -> str:
    """The failure of a check spoiled by a lower-level failure: that failure first, then its cause."""
    if causes:
        root = "root cause: " + "; ".join(causes)
    else:
        root = ("no replica or node lost direct queries, so the cluster DNS itself did not answer in time: see "
                "test_loop.py (crashed or restarting pods) and test_latency.py")
    return (f"{what}: not judged, the measurement {where} was spoiled by {why}: a transport failure, not a fault of "
            f"the record or the search list. {root} ({OWNER})")


#: Checks whose failure is itself a lower-level cause: the cluster DNS pods crashed, restarted or loop.
POD_CHECKS = ("test_dns_pods_ready", "test_no_restarts_during_run", "test_no_loop_in_logs")


def _failed(check: Mapping[str, Any]) -> bool:
    return check.get("outcome") in ("failed", "error")


def _names(message: str, where: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(where)}(?![\w-])", message) is not None


def summarise(causes: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The root causes of a run, each with the failed checks it affected: the cluster DNS pods' own
    failures first, then the places the node x replica matrix found (`causes`: kind, where, text,
    proto, owner). A check is affected when its failure names the place (or is spoiled by timeouts,
    for a cause of every replica)."""
    out: list[dict[str, Any]] = []
    failed = [c for c in checks if _failed(c)]
    for check in failed:
        if check.get("name") in POD_CHECKS:
            out.append({"kind": "pods", "where": "the cluster DNS pods", "owner": check["nodeid"],
                        "text": str(check.get("message", ""))[:300], "affected": []})
    seen: set[tuple[str, str]] = set()
    for cause in causes:
        key = (str(cause["kind"]), str(cause["where"]))
        if key in seen:
            continue
        seen.add(key)
        where = str(cause["where"]).split(" -> ")[0] if cause["kind"] != "all" else ""
        affected = sorted(c["nodeid"] for c in failed if str(cause.get("owner", "")) not in str(c.get("nodeid", ""))
                          and ((where and _names(str(c.get("message", "")), where))
                               or (not where and "spoiled by" in str(c.get("message", "")))))
        out.append({**cause, "affected": affected})
    return out


def lines(found: Sequence[Mapping[str, Any]]) -> list[str]:
    """The terminal section: each cause, then the checks it affected."""
    out: list[str] = []
    for cause in found:
        out.append(f"{cause['text']} ({cause.get('owner', '')})")
        if cause.get("affected"):
            out.append(f"  affected {len(cause['affected'])} checks: " + ", ".join(
                str(n).split("::", 1)[-1] for n in cause["affected"]))
    return out
