"""Measurements as structured evidence: a value, its unit, what it measures (its quantity) and the
entity it belongs to (libc, node, replica, name). The gate and the report find figures by quantity
and entity, never by a test's name; results files carry both as plain data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

Entity = Mapping[str, "str | int"]


class Q:
    """Quantities: what a figure is, whichever check measured it."""

    LOOKUP_LATENCY = "lookup.latency"  # a series: every paced libc lookup, ms
    LOOKUP_P50 = "lookup.latency.p50"
    LOOKUP_P90 = "lookup.latency.p90"
    LOOKUP_P99 = "lookup.latency.p99"
    LOOKUP_MAX = "lookup.latency.max"
    LOOKUP_MEAN = "lookup.latency.mean"
    LOOKUP_COUNT = "lookup.count"
    LOOKUP_ERRORS = "lookup.errors"
    LOOKUP_ERROR_RATE = "lookup.error_rate"
    LOOKUP_RETRIES = "lookup.retry_signatures"
    LOOKUP_RATE = "lookup.rate"
    BURST_COUNT = "burst.count"
    BURST_RETRIES = "burst.retry_signatures"
    BURST_MAX = "burst.latency.max"
    RETRY_THRESHOLD = "retry.threshold"
    SERVER_P50 = "server.latency.p50"
    SERVER_P99 = "server.latency.p99"
    SERVER_REQUESTS = "server.requests"
    QUERIES_PER_LOOKUP = "search.queries_per_lookup"
    EXTERNAL_P50 = "external.latency.p50"  # libc lookups of a name outside the cluster; entity has ndots
    EXTERNAL_P99 = "external.latency.p99"
    EXTERNAL_ERRORS = "external.errors"
    SEARCH_TAX = "search.tax"  # external latency at the pods' ndots over that at ndots:2 (p50 and p99)
    REPLICA_ANSWERED = "replica.answered"  # direct queries to one cluster-DNS pod that got a reply
    REPLICA_SENT = "replica.sent"
    REPLICA_P50 = "replica.latency.p50"
    REPLICA_P99 = "replica.latency.p99"
    NODE_VERDICT = "node.verdict"  # "passed" or "failed": one node's part of a check that judges every node
    NODE_LOST = "node.lost"  # direct queries from one node's probe that got no reply
    NODELOCAL_RCODE = "nodelocal.rcode"
    NODELOCAL_LATENCY = "nodelocal.latency"
    NODELOCAL_HEALTH = "nodelocal.health"
    NODELOCAL_SETUP_ERRORS = "nodelocal.setup_errors"
    NODELOCAL_CACHE_HITS = "nodelocal.cache_hits"
    NODELOCAL_NEW_SERVICE_VISIBLE = "nodelocal.new_service_visible"
    NODELOCAL_NEW_SERVICE_LAST_MISS = "nodelocal.new_service_last_miss"
    NODELOCAL_NEGATIVE_TTL = "nodelocal.negative_ttl"
    CHANGE_LOOKUPS = "change.lookups"  # libc lookups that started during a change (entity: change, node)
    CHANGE_FAILED = "change.failed"
    CHANGE_GAP = "change.longest_gap"  # the longest run of failures of one stream, s
    CHANGE_P99 = "change.latency.p99"
    CHANGE_SOCKET_RECOVERY = "change.socket_recovery"  # the long-lived UDP socket's longest run of failures, s
    CHANGE_SECONDS = "change.seconds"  # how long the change itself ran
    PROPAGATION_P50 = "propagation.p50"  # from ready to the name answering, s (entity: kind, node, libc)
    PROPAGATION_P99 = "propagation.p99"
    NEGATIVE_WINDOW = "propagation.negative_window"  # a pre-asked name's NXDOMAIN after its Service existed, s
    CAPACITY_KNEE = "capacity.knee"  # answers/s of the ramp's last step within the bounds (entity: class)
    CAPACITY_PEAK = "capacity.peak"  # the most answers/s of any step
    CAPACITY_HEADROOM = "capacity.headroom"  # knee over demand
    CAPACITY_DEMAND = "capacity.demand"  # the rate of coredns_dns_requests_total before the ramp, 1/s
    CAPACITY_MULTIPLIER = "capacity.queries_per_lookup"  # server-side queries per libc lookup of an external name
    CAPACITY_CPU = "capacity.cpu_at_knee"  # cores one DNS pod used at the knee (entity: class, pod)


#: The upgrade gate's rules, by quantity: a p99 that may grow only by --k8sdns-max-p99-growth, and
#: counts of retry signatures that may not grow at all. SHOWN are compared side by side.
GROWTH_BOUNDED = frozenset({Q.LOOKUP_P99, Q.SERVER_P99})
MUST_NOT_GROW = frozenset({Q.LOOKUP_RETRIES, Q.BURST_RETRIES})
SHOWN = (Q.LOOKUP_P50, Q.LOOKUP_P90, Q.LOOKUP_P99, Q.LOOKUP_MAX, Q.BURST_MAX, Q.SERVER_P50, Q.SERVER_P99,
         Q.LOOKUP_ERRORS, Q.LOOKUP_RETRIES, Q.BURST_RETRIES)

#: Results files written before measurements carried their quantity (pytest-k8sdns 0.1.0, the
#: first baselines users keep): (test function, measurement name) -> quantity. Only `quantity_of`
#: reads it, and only for such files.
_BEFORE_QUANTITIES: dict[tuple[str, str], str] = {
    **{("test_lookup_latency", f"{k}_ms"): f"lookup.latency.{k}" for k in ("p50", "p90", "p99", "max", "mean")},
    ("test_lookup_latency", "lookups"): Q.LOOKUP_COUNT,
    ("test_lookup_latency", "errors"): Q.LOOKUP_ERRORS,
    ("test_lookup_latency", "error_rate"): Q.LOOKUP_ERROR_RATE,
    ("test_lookup_latency", "retry_signatures"): Q.LOOKUP_RETRIES,
    ("test_lookup_latency", "latency_ms"): Q.LOOKUP_LATENCY,
    ("test_retry_signature", "retry_signatures"): Q.BURST_RETRIES,
    ("test_retry_signature", "max_ms"): Q.BURST_MAX,
    ("test_retry_signature", "lookups"): Q.BURST_COUNT,
    ("test_server_latency", "server_p50_ms"): Q.SERVER_P50,
    ("test_server_latency", "server_p99_ms"): Q.SERVER_P99,
}


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One figure of one check: `name` is its label in the check's table (p99_ms, rcode[node])."""

    name: str
    value: Any
    unit: str = ""
    quantity: str | None = None
    entity: Entity = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The results file's form: value and unit, plus quantity and entity when known."""
        doc: dict[str, Any] = {"value": self.value, "unit": self.unit}
        if self.quantity:
            doc["quantity"] = self.quantity
        if self.entity:
            doc["entity"] = dict(self.entity)
        return doc


def quantity_of(check: Mapping[str, Any], name: str, entry: Mapping[str, Any]) -> str | None:
    """The quantity of one measurement (or series) of a results-file check."""
    given = entry.get("quantity")
    if isinstance(given, str):
        return given
    test = str(check.get("name", ""))
    if test == "test_queries_per_lookup" and name.startswith("queries["):
        return Q.QUERIES_PER_LOOKUP
    return _BEFORE_QUANTITIES.get((test, name))


def entity_of(check: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entity of one measurement: as recorded, else the check's libc/variant parameters
    (results files that predate entities)."""
    given = entry.get("entity")
    if isinstance(given, Mapping):
        return dict(given)
    params = check.get("params") or {}
    variant = str(params.get("variant") or params.get("libc") or "")
    libc, _, option = variant.partition("-")
    entity: dict[str, Any] = {"libc": libc} if libc else {}
    if option:
        entity["option"] = option
    if "ndots" in params:
        entity["ndots"] = params["ndots"]
    return entity


def find(doc: Mapping[str, Any] | None, quantity: str, store: str = "measurements",
         **entity: Any) -> list[tuple[Mapping[str, Any], str, Mapping[str, Any]]]:
    """Every (check, name, entry) of a results document with this quantity whose entity holds the
    given keys and values (an entity key given as None must be absent)."""
    found = []
    for check in (doc or {}).get("checks", []):
        for name, entry in (check.get(store) or {}).items():
            if quantity_of(check, name, entry) != quantity:
                continue
            have = entity_of(check, entry)
            if all(have.get(k) == v for k, v in entity.items()):
                found.append((check, name, entry))
    return found


def value(doc: Mapping[str, Any] | None, quantity: str, **entity: Any) -> Any:
    """The value of the one measurement of this quantity and entity, or None."""
    hits = find(doc, quantity, **entity)
    return hits[0][2].get("value") if hits else None
