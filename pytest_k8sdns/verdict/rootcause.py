"""Root cause first: a record or search check whose measurement timed out says so and points to the
check that owns the transport, instead of blaming its own subject. NXDOMAIN (a record or search
problem) and a timeout (a transport problem) are never reported as the same thing."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from pytest_k8sdns.evidence import stats
from pytest_k8sdns.probe.results import LookupResult, QueryReply

#: The check that places transport failures: which replica or which node's clients lose queries.
OWNER = "test_replicas.py::test_every_replica_answers"
#: getaddrinfo's "try again": no answer in time, or SERVFAIL (glibc and musl share the value).
EAI_AGAIN = getattr(socket, "EAI_AGAIN", -3)


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
    if not reply.ok:
        return f"no reply ({reply.error})"
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
