"""An ExternalName Service whose target changes, then its type (the e2e test "DNS for
ExternalName services"): how long the cluster DNS takes to answer each state."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from pytest_k8sdns.dns.objects import PORT, service_manifest
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.probe.pods import ProbePod
from pytest_k8sdns.probe.results import QueryReply

NAME = "ext-change"


@dataclasses.dataclass(frozen=True)
class Step:
    """One state of the Service and when DNS first answered it."""

    key: str  # created | retargeted | clusterip
    what: str  # "CNAME new.example.test", for messages
    seconds: float | None  # from the API write to the first right answer; None: not within the wait
    last: str  # the last answer seen
    unanswered: int = 0  # polls that got no reply (a timeout): a transport failure, not the record's


def _answer(reply: QueryReply, rdtype: str) -> list[str]:
    return sorted(str(r).rstrip(".") for r in reply.rdata(rdtype)) or [reply.rcode or NO_REPLY]


#: the answer of a poll that got no reply
NO_REPLY = "no reply"


def _first(key: str, what: str, ask: Callable[[], list[str]], want: list[str], give_up_s: float,
           every_s: float) -> Step:
    """Ask until the answer is `want`; the step with the seconds from now (None when it never was)."""
    start = time.monotonic()
    unanswered = 0
    while True:
        last = ask()
        unanswered += last == [NO_REPLY]
        if last == want:
            return Step(key, what, round(time.monotonic() - start, 2), " ".join(last), unanswered)
        if time.monotonic() - start > give_up_s:
            return Step(key, what, None, " ".join(last), unanswered)
        time.sleep(every_s)


def follow(cluster: Cluster, namespace: str, run_id: str, pod: ProbePod, server: str, domain: str,
           targets: tuple[str, str], *, give_up_s: float, every_s: float = 0.5) -> tuple[str, list[Step]]:
    """Create ExternalName `ext-change` -> targets[0], change it to targets[1], then make it a
    ClusterIP Service; after each write, ask `server` from `pod` until it answers the new state.
    Returns the Service's FQDN and the three steps (a step DNS never answered ends the walk)."""
    core = cluster.core
    fqdn = f"{NAME}.{namespace}.svc.{domain}"

    def cname() -> list[str]:
        return _answer(pod.query(server, fqdn, rdtype="CNAME", count=1).replies[0], "CNAME")

    def a_record() -> list[str]:
        return _answer(pod.query(server, fqdn, rdtype="A", count=1).replies[0], "A")

    steps: list[Step] = []
    cluster.call("create", "services", namespace, core.create_namespaced_service, namespace,
                 service_manifest(NAME, run_id, {"type": "ExternalName", "externalName": targets[0]}))
    steps.append(_first("created", f"CNAME {targets[0]}", cname, [targets[0]], give_up_s, every_s))
    if steps[-1].seconds is None:
        return fqdn, steps
    cluster.call("patch", "services", namespace, core.patch_namespaced_service, NAME, namespace,
                 {"spec": {"externalName": targets[1]}})
    steps.append(_first("retargeted", f"CNAME {targets[1]}", cname, [targets[1]], give_up_s, every_s))
    if steps[-1].seconds is None:
        return fqdn, steps
    svc = cluster.call("patch", "services", namespace, core.patch_namespaced_service, NAME, namespace,
                       {"spec": {"type": "ClusterIP", "externalName": None, "ports": [PORT],
                                 "selector": {"app": "web"}}})
    ip = str(svc.spec.cluster_ip)
    steps.append(_first("clusterip", f"A {ip}", a_record, [ip], give_up_s, every_s))
    return fqdn, steps
