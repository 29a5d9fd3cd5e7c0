"""Latency evidence from probe results, in one unit: the probe times in ns, every figure here is ms
(seconds only for the libc retry time, as the libcs document it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

from pytest_k8sdns.evidence import stats
from pytest_k8sdns.evidence.measure import Entity, Measurement, Q
from pytest_k8sdns.probe.results import LookupResult


def ms(ns: float | None) -> float | None:
    """Nanoseconds as milliseconds, to the microsecond."""
    return None if ns is None else round(ns / 1e6, 3)


def _ms_of_s(seconds: float | None) -> float | None:
    # to the nanosecond the probe measured in, so that a p99 of 4.1 ms is 4.1 and not 4.1000000000000005;
    # not rounded further: bounds judge the value itself, `shown` rounds for tables and messages
    return None if seconds is None else round(seconds * 1000, 6)


def shown(value: float | None) -> float | None:
    """A figure in ms as tables, results and messages show it: to the microsecond."""
    return None if value is None else round(value, 3)


@dataclasses.dataclass(frozen=True)
class LookupLatency:
    """Paced libc lookups of one pod: percentiles of the successful ones, errors, retry signatures."""

    entity: Entity
    count: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    retry_signatures: int  # successes at or past the libc's retry time, and failures that took it
    rate_per_s: float
    samples_ms: tuple[float, ...]
    error_kinds: Mapping[int, str]

    def measurements(self, label: str = "") -> list[Measurement]:
        """The figures; `label` (a node) goes into each name, as in p99_ms[worker2]."""
        e, k = self.entity, f"[{label}]" if label else ""
        return [
            Measurement(f"p50_ms{k}", shown(self.p50_ms), "ms", Q.LOOKUP_P50, e),
            Measurement(f"p90_ms{k}", shown(self.p90_ms), "ms", Q.LOOKUP_P90, e),
            Measurement(f"p99_ms{k}", shown(self.p99_ms), "ms", Q.LOOKUP_P99, e),
            Measurement(f"max_ms{k}", shown(self.max_ms), "ms", Q.LOOKUP_MAX, e),
            Measurement(f"mean_ms{k}", shown(self.mean_ms), "ms", Q.LOOKUP_MEAN, e),
            Measurement(f"lookups{k}", self.count, "", Q.LOOKUP_COUNT, e),
            Measurement(f"errors{k}", self.errors, "", Q.LOOKUP_ERRORS, e),
            Measurement(f"error_rate{k}", round(self.error_rate, 5), "", Q.LOOKUP_ERROR_RATE, e),
            Measurement(f"retry_signatures{k}", self.retry_signatures, "", Q.LOOKUP_RETRIES, e),
            Measurement(f"rate_per_s{k}", round(self.rate_per_s, 1), "1/s", Q.LOOKUP_RATE, e),
        ]


def lookup_latency(result: LookupResult | Sequence[LookupResult], libc: str,
                   entity: Entity | None = None) -> LookupLatency:
    """The figures of a `lookup` run of a pod of this libc, or of several pods' runs pooled."""
    runs = [result] if isinstance(result, LookupResult) else list(result)
    rows = [r for run in runs for r in run.rows]
    ok = [r.latency_ns for r in rows if r.ok]
    failed = [r for r in rows if not r.ok]
    threshold_s = stats.retry_threshold(libc)
    summary = stats.summarise(ok, len(failed), threshold_s)
    # a lookup still running past the threshold when the run stopped is at the retry signature
    # already, whatever its outcome; one below it is no sample of anything
    late = sum(1 for run in runs for r in run.in_flight if r.waited_s >= threshold_s)
    retries = summary.retry_signatures + sum(1 for r in failed if r.latency_s >= threshold_s) + late
    kinds: dict[int, str] = {}
    for run in runs:
        for code, text in run.errors.items():
            kinds.setdefault(code, text)
    return LookupLatency(
        entity=entity or {"libc": libc}, count=summary.count + late, errors=summary.errors,
        error_rate=summary.errors / (summary.count + late) if summary.count + late else summary.error_rate,
        p50_ms=_ms_of_s(summary.p50), p90_ms=_ms_of_s(summary.p90), p99_ms=_ms_of_s(summary.p99),
        max_ms=_ms_of_s(summary.max), mean_ms=_ms_of_s(summary.mean), retry_signatures=retries,
        rate_per_s=sum(run.totals.rate_per_s for run in runs), samples_ms=tuple(ms(ns) or 0.0 for ns in ok),
        error_kinds=kinds,
    )


@dataclasses.dataclass(frozen=True)
class BurstRetries:
    """Bursts of parallel lookups of one pod: how many took the libc's retry time."""

    entity: Entity
    lookups: int
    threshold_s: float
    retry_signatures: int
    max_ms: float | None

    def measurements(self, label: str = "") -> list[Measurement]:
        e, k = self.entity, f"[{label}]" if label else ""
        return [
            Measurement(f"lookups{k}", self.lookups, "", Q.BURST_COUNT, e),
            Measurement(f"retry_threshold_s{k}", self.threshold_s, "s", Q.RETRY_THRESHOLD, e),
            Measurement(f"retry_signatures{k}", self.retry_signatures, "", Q.BURST_RETRIES, e),
            Measurement(f"max_ms{k}", shown(self.max_ms), "ms", Q.BURST_MAX, e),
        ]


def burst_retries(result: LookupResult | Sequence[LookupResult], libc: str, option: str | None = None,
                  node: str | None = None) -> BurstRetries:
    """The figures of a `burst` run, or of several pods' runs pooled; `option` names a resolver
    option the pod set (single-request-reopen), `node` the node it ran on."""
    runs = [result] if isinstance(result, LookupResult) else list(result)
    rows = [r for run in runs for r in run.rows]
    threshold_s = stats.retry_threshold(libc)
    late = [r.waited_ns for run in runs for r in run.in_flight if r.waited_s >= threshold_s]  # see lookup_latency
    entity: dict[str, str | int] = {"libc": libc, **({"option": option} if option else {}), **({"node": node} if node else {})}
    return BurstRetries(
        entity=entity, lookups=len(rows) + len(late), threshold_s=threshold_s,
        retry_signatures=sum(1 for r in rows if r.latency_s >= threshold_s) + len(late),
        max_ms=ms(max([r.latency_ns for r in rows] + late, default=0)),
    )


@dataclasses.dataclass(frozen=True)
class ServerLatency:
    """The cluster DNS's own request-duration histogram, summed over its pods, servers and zones."""

    p50_ms: float | None
    p99_ms: float | None
    requests: float
    unreadable: Mapping[str, object]  # pod -> HTTP status of a metrics scrape that failed

    def measurements(self) -> list[Measurement]:
        return [
            Measurement("server_p50_ms", shown(self.p50_ms), "ms", Q.SERVER_P50),
            Measurement("server_p99_ms", shown(self.p99_ms), "ms", Q.SERVER_P99),
            Measurement("requests", self.requests, "", Q.SERVER_REQUESTS),
        ]


def server_latency(scrapes: Mapping[str, tuple[object, str]]) -> ServerLatency:
    """From each DNS pod's (status, body) of :9153/metrics."""
    samples: list[stats.Sample] = []
    unreadable: dict[str, object] = {}
    for pod, (status, body) in scrapes.items():
        if status != 200:
            unreadable[pod] = status
            continue
        samples += stats.parse_prometheus(body).get("coredns_dns_request_duration_seconds_bucket", [])
    buckets = stats.histogram_buckets(samples)
    p50 = stats.histogram_quantile(0.50, buckets) if buckets else None
    p99 = stats.histogram_quantile(0.99, buckets) if buckets else None
    return ServerLatency(_ms_of_s(p50), _ms_of_s(p99), buckets[-1][1] if buckets else 0, unreadable)


@dataclasses.dataclass(frozen=True)
class SearchTax:
    """External-name latency with the search list (the pods' ndots) and without it (ndots:2), per node."""

    libc: str
    with_search: Mapping[str, LookupLatency]
    without: Mapping[str, LookupLatency]

    @staticmethod
    def _ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    def ratios(self, node: str) -> tuple[float | None, float | None]:
        w, wo = self.with_search[node], self.without.get(node)
        if wo is None:
            return None, None
        return self._ratio(w.p50_ms, wo.p50_ms), self._ratio(w.p99_ms, wo.p99_ms)

    def measurements(self) -> list[Measurement]:
        out: list[Measurement] = []
        for node, ev in self.with_search.items():
            for ndots, e in ((5, ev), (2, self.without.get(node))):
                if e is None:
                    continue
                entity: dict[str, str | int] = {"libc": self.libc, "node": node, "ndots": ndots}
                out += [Measurement(f"p50_ms[{node}/ndots{ndots}]", shown(e.p50_ms), "ms", Q.EXTERNAL_P50, entity),
                        Measurement(f"p99_ms[{node}/ndots{ndots}]", shown(e.p99_ms), "ms", Q.EXTERNAL_P99, entity),
                        Measurement(f"errors[{node}/ndots{ndots}]", e.errors, "", Q.EXTERNAL_ERRORS, entity)]
            p50, p99 = self.ratios(node)
            entity = {"libc": self.libc, "node": node}
            out += [Measurement(f"tax_p50[{node}]", p50, "", Q.SEARCH_TAX, {**entity, "percentile": 50}),
                    Measurement(f"tax_p99[{node}]", p99, "", Q.SEARCH_TAX, {**entity, "percentile": 99})]
        return out

    def table(self) -> tuple[list[str], list[list[object]]]:
        header = ["node", "p50 ndots 5", "p99 ndots 5", "p50 ndots 2", "p99 ndots 2", "tax p50", "tax p99"]
        rows: list[list[object]] = []
        for node, ev in self.with_search.items():
            wo = self.without.get(node)
            p50, p99 = self.ratios(node)
            rows.append([node, shown(ev.p50_ms), shown(ev.p99_ms), shown(wo.p50_ms) if wo else None,
                         shown(wo.p99_ms) if wo else None, p50, p99])
        return header, rows

    def said(self, failing: Collection[str] = ()) -> str:
        """The p50 tax in words: each node's, or only the `failing` nodes' and a range over the
        others (so that a message about one node names no other)."""
        named = [node for node in self.with_search if node in failing] or list(self.with_search)
        parts = [f"{node} x{self.ratios(node)[0]} at p50" for node in named]
        rest = [p50 for node in self.with_search if node not in named
                for p50 in [self.ratios(node)[0]] if p50 is not None]
        if rest:
            others = len(self.with_search) - len(named)
            span = f"x{min(rest)}" if min(rest) == max(rest) else f"x{min(rest)} to x{max(rest)}"
            parts.append(f"the other {others} node{'s' if others > 1 else ''} {span} at p50")
        return ", ".join(parts)


def search_tax(with_search: Mapping[str, LookupLatency], without: Mapping[str, LookupLatency], libc: str) -> SearchTax:
    return SearchTax(libc, dict(with_search), dict(without))
