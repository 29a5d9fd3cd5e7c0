"""Latency statistics: percentiles, retry signatures, histograms, and Prometheus histogram quantiles."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_k8sdns.errors import ConfigError

# A lost UDP packet costs one client timeout before the retry: glibc waits the full
# `timeout` (5 s); musl resends every timeout/attempts = 5/2 = 2.5 s (REFERENCE.md section 1).
_RETRY_THRESHOLD_S = {"glibc": 5.0, "musl": 2.5}


def percentile(values: Iterable[float], q: float, method: str = "nearest-rank") -> float:
    """The ``q``-th percentile (0..100) of ``values``.

    ``nearest-rank`` (the default) returns the smallest observed value with at least q % of
    the values at or below it, so a p99 is always a latency some lookup really had.
    ``linear`` interpolates between the two closest ranks (NumPy's default, R type 7).
    """
    data = sorted(values)
    if not data:
        raise ConfigError("percentile of no values; give at least one value")
    if not 0 <= q <= 100 or math.isnan(q):
        raise ConfigError(f"percentile {q!r} is out of range; use 0..100")
    if method == "nearest-rank":
        rank = math.ceil(q / 100 * len(data))
        return data[max(rank, 1) - 1]
    if method == "linear":
        pos = q / 100 * (len(data) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)
    raise ConfigError(f"unknown percentile method {method!r}; use 'nearest-rank' or 'linear'")


def retry_threshold(libc: str) -> float:
    """Seconds from which a lookup's latency is a lost packet and a retry, not a slow server."""
    try:
        return _RETRY_THRESHOLD_S[libc]
    except KeyError:
        raise ConfigError(f"unknown libc {libc!r}; use 'glibc' or 'musl'") from None


@dataclass(frozen=True)
class LatencySummary:
    """Client latencies in seconds; ``count`` includes the failed lookups, percentiles do not.

    The percentiles are nearest-rank and None when no lookup succeeded.
    """

    count: int
    errors: int
    error_rate: float
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None
    retry_signatures: int
    retry_threshold_s: float


def summarise(latencies_ns: Sequence[int], errors: int, retry_threshold_s: float) -> LatencySummary:
    """Summarise successful lookups' latencies (ns) and a count of failed ones."""
    if errors < 0:
        raise ConfigError(f"errors must be >= 0, got {errors}")
    if retry_threshold_s <= 0:
        raise ConfigError(f"retry threshold must be > 0 s, got {retry_threshold_s}")
    seconds = [ns / 1e9 for ns in latencies_ns]
    total = len(seconds) + errors
    p50 = p90 = p99 = top = mean = None
    if seconds:
        p50, p90, p99 = (percentile(seconds, q) for q in (50, 90, 99))
        top, mean = max(seconds), math.fsum(seconds) / len(seconds)
    return LatencySummary(
        count=total,
        errors=errors,
        error_rate=errors / total if total else 0.0,
        p50=p50,
        p90=p90,
        p99=p99,
        max=top,
        mean=mean,
        retry_signatures=sum(1 for s in seconds if s >= retry_threshold_s),
        retry_threshold_s=retry_threshold_s,
    )


def histogram(values: Iterable[float], buckets: Sequence[float]) -> list[tuple[float, int]]:
    """Counts per bucket: (upper bound, values above the previous bound and <= this one).

    Bounds are inclusive like Prometheus ``le``; a last (inf, n) bucket takes the rest.
    """
    bounds = list(buckets)
    if any(later <= earlier for earlier, later in itertools.pairwise(bounds)):
        raise ConfigError(f"histogram buckets must be strictly increasing, got {bounds}")
    if bounds and bounds[-1] != math.inf:
        bounds.append(math.inf)
    elif not bounds:
        bounds = [math.inf]
    counts = [0] * len(bounds)
    for value in values:
        for i, bound in enumerate(bounds):
            if value <= bound:
                counts[i] += 1
                break
    return list(zip(bounds, counts, strict=True))


# -- Prometheus text exposition -------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One exposition line: ``name{labels} value [timestamp_ms]``."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0
    timestamp: float | None = None


def _parse_value(text: str, line_no: int) -> float:
    # Go's strconv.ParseFloat spellings Prometheus emits: NaN, +Inf, -Inf.
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"metrics line {line_no}: {text!r} is not a number") from None


def _parse_labels(text: str, start: int, line_no: int) -> tuple[dict[str, str], int]:
    """Parse ``{a="x",b="y"}`` from ``text[start]`` == '{'; return labels and the index after '}'."""
    labels: dict[str, str] = {}
    i = start + 1
    n = len(text)
    while True:
        while i < n and text[i] in " \t,":
            i += 1
        if i < n and text[i] == "}":
            return labels, i + 1
        j = i
        while j < n and (text[j].isalnum() or text[j] == "_"):
            j += 1
        key = text[i:j]
        while j < n and text[j] in " \t":
            j += 1
        if not key or j >= n or text[j] != "=":
            raise ConfigError(f"metrics line {line_no}: bad label set {text[start:]!r}")
        j += 1
        while j < n and text[j] in " \t":
            j += 1
        if j >= n or text[j] != '"':
            raise ConfigError(f"metrics line {line_no}: label {key} has no quoted value")
        j += 1
        chars: list[str] = []
        while j < n and text[j] != '"':
            if text[j] == "\\" and j + 1 < n:
                j += 1
                chars.append({"n": "\n", "\\": "\\", '"': '"'}.get(text[j], "\\" + text[j]))
            else:
                chars.append(text[j])
            j += 1
        if j >= n:
            raise ConfigError(f"metrics line {line_no}: label {key} value is never closed")
        labels[key] = "".join(chars)
        i = j + 1


def parse_prometheus(text: str) -> dict[str, list[Sample]]:
    """Samples of a Prometheus text exposition, keyed by sample name (``..._bucket`` etc.)."""
    out: dict[str, list[Sample]] = {}
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        i = 0
        while i < len(line) and (line[i].isalnum() or line[i] in "_:"):
            i += 1
        name = line[:i]
        if not name:
            raise ConfigError(f"metrics line {line_no}: no metric name in {raw!r}")
        labels: dict[str, str] = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i, line_no)
        rest = line[i:].split()
        if not rest or len(rest) > 2:
            raise ConfigError(f"metrics line {line_no}: expected a value after {name}, got {raw!r}")
        value = _parse_value(rest[0], line_no)
        timestamp = _parse_value(rest[1], line_no) if len(rest) == 2 else None
        out.setdefault(name, []).append(Sample(name, labels, value, timestamp))
    return out


def histogram_buckets(samples: Iterable[Sample], match: Mapping[str, str] | None = None) -> list[tuple[float, float]]:
    """(le, cumulative count) from ``..._bucket`` samples, summed over the label sets that
    carry every ``match`` label (like ``sum by (le)`` in PromQL)."""
    totals: dict[float, float] = {}
    for s in samples:
        if "le" not in s.labels:
            continue
        if match and any(s.labels.get(k) != v for k, v in match.items()):
            continue
        le = _parse_value(s.labels["le"], 0)
        totals[le] = totals.get(le, 0.0) + s.value
    return sorted(totals.items())


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q`` quantile (0..1) from cumulative ``le`` buckets, as PromQL's histogram_quantile.

    Linear within the bucket, from 0 for the first; the +Inf bucket's answer is the highest
    finite bound. NaN when there is no +Inf bucket, fewer than two buckets or no observations.
    Modelled on prometheus promql/quantile.go bucketQuantile.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for le, count in buckets:
        merged[le] = merged.get(le, 0.0) + count
    ordered = sorted(merged.items())
    if not ordered or ordered[-1][0] != math.inf or len(ordered) < 2:
        return math.nan
    # Counts must not fall as le rises; where scraped data breaks that, take the envelope.
    fixed: list[tuple[float, float]] = []
    top = -math.inf
    for le, count in ordered:
        top = max(top, count)
        fixed.append((le, top))
    observations = fixed[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, (_, count) in enumerate(fixed) if count >= rank or i == len(fixed) - 1)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, below = (0.0, 0.0) if b == 0 else fixed[b - 1]
    end, count = fixed[b]
    if count == below:
        # Only reachable with rank == below (q = 0 over empty low buckets): Go's 0/0 is NaN.
        return math.nan
    return start + (end - start) * ((rank - below) / (count - below))
