"""Percentiles, latency summaries, histograms and Prometheus parsing."""

from __future__ import annotations

import math
import statistics

import pytest

from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.evidence.stats import (
    LatencySummary,
    Sample,
    histogram,
    histogram_buckets,
    histogram_quantile,
    parse_prometheus,
    percentile,
    retry_threshold,
    summarise,
)

ONE_TO_TEN = list(range(1, 11))


@pytest.mark.parametrize(("q", "expected"), [(0, 1), (10, 1), (11, 2), (50, 5), (90, 9), (91, 10), (99, 10), (100, 10)])
def test_percentile_nearest_rank(q: float, expected: float) -> None:
    assert percentile(reversed(ONE_TO_TEN), q) == expected


def test_percentile_nearest_rank_is_an_observed_value() -> None:
    values = list(range(1, 101))
    assert percentile(values, 99) == 99
    assert percentile([0.2, 0.1, 5.3], 99) == 5.3


@pytest.mark.parametrize("q", [0, 10, 25, 50, 75, 90, 99, 100])
def test_percentile_linear_matches_statistics_inclusive(q: int) -> None:
    data = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.6, 5.3]
    if q in (0, 100):
        expected = min(data) if q == 0 else max(data)
    else:
        expected = statistics.quantiles(data, n=100, method="inclusive")[q - 1]
    assert percentile(data, q, method="linear") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "q", "method", "words"),
    [([], 50, "nearest-rank", "no values"), ([1], 101, "nearest-rank", "out of range"),
     ([1], -1, "linear", "out of range"), ([1], 50, "median", "unknown percentile method")],
)
def test_percentile_rejects_bad_input(values: list[float], q: float, method: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        percentile(values, q, method=method)


@pytest.mark.parametrize(("libc", "seconds"), [("glibc", 5.0), ("musl", 2.5)])
def test_retry_threshold(libc: str, seconds: float) -> None:
    assert retry_threshold(libc) == seconds


def test_retry_threshold_unknown_libc() -> None:
    with pytest.raises(ConfigError, match=r"^unknown libc 'bionic'; use 'glibc' or 'musl'$"):
        retry_threshold("bionic")


MS = 1_000_000


def test_summarise() -> None:
    latencies = [1 * MS] * 90 + [20 * MS] * 8 + [2_600 * MS, 5_004 * MS]
    summary = summarise(latencies, errors=1, retry_threshold_s=retry_threshold("musl"))
    assert isinstance(summary, LatencySummary)
    assert summary.count == 101
    assert summary.errors == 1
    assert summary.error_rate == pytest.approx(1 / 101)
    assert summary.p50 == pytest.approx(0.001)
    assert summary.p90 == pytest.approx(0.001)
    assert summary.p99 == pytest.approx(2.6)
    assert summary.max == pytest.approx(5.004)
    assert summary.mean == pytest.approx((90 * 1 + 8 * 20 + 2_600 + 5_004) / 100 / 1000)
    # Both slow lookups are musl retries; under glibc's 5 s only one is.
    assert summary.retry_signatures == 2
    assert summarise(latencies, 1, retry_threshold("glibc")).retry_signatures == 1
    assert summary.retry_threshold_s == 2.5


def test_summarise_boundary_counts_as_retry() -> None:
    assert summarise([5_000 * MS, 4_999 * MS], 0, 5.0).retry_signatures == 1


def test_summarise_without_successes() -> None:
    summary = summarise([], errors=3, retry_threshold_s=5.0)
    assert (summary.count, summary.error_rate) == (3, 1.0)
    assert summary.p50 is summary.p99 is summary.max is summary.mean is None
    empty = summarise([], errors=0, retry_threshold_s=5.0)
    assert (empty.count, empty.error_rate, empty.retry_signatures) == (0, 0.0, 0)


@pytest.mark.parametrize(("errors", "threshold"), [(-1, 5.0), (0, 0.0)])
def test_summarise_rejects_bad_input(errors: int, threshold: float) -> None:
    with pytest.raises(ConfigError):
        summarise([MS], errors, threshold)


def test_histogram_upper_bounds_are_inclusive() -> None:
    values = [0.0005, 0.001, 0.0011, 0.004, 0.004, 0.2, 9.0]
    assert histogram(values, [0.001, 0.005, 0.1]) == [(0.001, 2), (0.005, 3), (0.1, 0), (math.inf, 2)]
    assert histogram(values, [0.001, math.inf]) == [(0.001, 2), (math.inf, 5)]
    assert histogram([], [1.0]) == [(1.0, 0), (math.inf, 0)]
    assert histogram([3.0], []) == [(math.inf, 1)]


@pytest.mark.parametrize("buckets", [[0.1, 0.1], [0.5, 0.1]])
def test_histogram_rejects_unordered_buckets(buckets: list[float]) -> None:
    with pytest.raises(ConfigError, match="strictly increasing"):
        histogram([1.0], buckets)


COREDNS_METRICS = """\
# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each request took per zone.
# TYPE coredns_dns_request_duration_seconds histogram
coredns_dns_request_duration_seconds_bucket{server="dns://:53",view="",zone=".",le="0.00025"} 10
coredns_dns_request_duration_seconds_bucket{server="dns://:53",view="",zone=".",le="0.001"} 50
coredns_dns_request_duration_seconds_bucket{server="dns://:53",view="",zone=".",le="0.004"} 90
coredns_dns_request_duration_seconds_bucket{server="dns://:53",view="",zone=".",le="+Inf"} 100
coredns_dns_request_duration_seconds_sum{server="dns://:53",view="",zone="."} 0.25
coredns_dns_request_duration_seconds_count{server="dns://:53",view="",zone="."} 100
coredns_dns_request_duration_seconds_bucket{server="dns://:5353",view="",zone=".",le="0.00025"} 0
coredns_dns_request_duration_seconds_bucket{server="dns://:5353",view="",zone=".",le="0.001"} 0
coredns_dns_request_duration_seconds_bucket{server="dns://:5353",view="",zone=".",le="0.004"} 10
coredns_dns_request_duration_seconds_bucket{server="dns://:5353",view="",zone=".",le="+Inf"} 100
# TYPE coredns_dns_requests_total counter
coredns_dns_requests_total{family="1",proto="udp",server="dns://:53",type="A",view="",zone="."} 120 1700000000000
coredns_build_info{goversion="go1.22",revision="a\\"b\\\\c\\nd",version="1.11.3"} 1
coredns_cache_entries{server="dns://:53",type="denial",view="",zones="."} NaN
process_open_fds 17
coredns_forward_max_concurrent_rejects_total{} -Inf
"""


def test_parse_prometheus() -> None:
    parsed = parse_prometheus(COREDNS_METRICS)
    assert set(parsed) == {
        "coredns_dns_request_duration_seconds_bucket",
        "coredns_dns_request_duration_seconds_sum",
        "coredns_dns_request_duration_seconds_count",
        "coredns_dns_requests_total",
        "coredns_build_info",
        "coredns_cache_entries",
        "process_open_fds",
        "coredns_forward_max_concurrent_rejects_total",
    }
    assert len(parsed["coredns_dns_request_duration_seconds_bucket"]) == 8
    (requests,) = parsed["coredns_dns_requests_total"]
    assert requests == Sample(
        "coredns_dns_requests_total",
        {"family": "1", "proto": "udp", "server": "dns://:53", "type": "A", "view": "", "zone": "."},
        120.0,
        1700000000000.0,
    )
    assert parsed["coredns_build_info"][0].labels["revision"] == 'a"b\\c\nd'
    assert math.isnan(parsed["coredns_cache_entries"][0].value)
    assert parsed["process_open_fds"][0] == Sample("process_open_fds", {}, 17.0, None)
    assert parsed["coredns_forward_max_concurrent_rejects_total"][0].value == -math.inf


@pytest.mark.parametrize(
    "line",
    ['{zone="."} 1', 'metric{zone=".} 1', "metric{zone=.} 1", "metric", "metric one", "metric 1 2 3"],
)
def test_parse_prometheus_rejects_malformed_lines(line: str) -> None:
    with pytest.raises(ConfigError, match="metrics line 2"):
        parse_prometheus("ok 1\n" + line + "\n")


def test_histogram_buckets_sum_over_label_sets() -> None:
    samples = parse_prometheus(COREDNS_METRICS)["coredns_dns_request_duration_seconds_bucket"]
    assert histogram_buckets(samples) == [(0.00025, 10.0), (0.001, 50.0), (0.004, 100.0), (math.inf, 200.0)]
    assert histogram_buckets(samples, {"server": "dns://:53"}) == [
        (0.00025, 10.0), (0.001, 50.0), (0.004, 90.0), (math.inf, 100.0),
    ]


BUCKETS = [(0.1, 50.0), (0.2, 80.0), (0.5, 100.0), (math.inf, 100.0)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1),  # rank 50 ends the first bucket
        (0.25, 0.05),  # interpolated from 0 in the first bucket
        (0.9, 0.35),  # 0.2 + 0.3 * (90 - 80) / 20
        (0.99, 0.485),
        (1.0, 0.5),
    ],
)
def test_histogram_quantile(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_histogram_quantile_special_cases() -> None:
    # Answers in the +Inf bucket return the highest finite bound.
    assert histogram_quantile(0.99, [(0.1, 10.0), (math.inf, 20.0)]) == 0.1
    assert histogram_quantile(-0.1, BUCKETS) == -math.inf
    assert histogram_quantile(1.1, BUCKETS) == math.inf
    assert math.isnan(histogram_quantile(math.nan, BUCKETS))
    assert math.isnan(histogram_quantile(0.5, [(0.1, 5.0), (0.2, 10.0)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 10.0)]))  # fewer than two buckets
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))  # no observations
    assert math.isnan(histogram_quantile(0.0, [(0.1, 0.0), (math.inf, 4.0)]))  # Go's 0/0
    # A first bound <= 0 is returned as is.
    assert histogram_quantile(0.2, [(-1.0, 5.0), (math.inf, 10.0)]) == -1.0


def test_histogram_quantile_sorts_merges_and_forces_monotonic_counts() -> None:
    shuffled = [(math.inf, 100.0), (0.2, 80.0), (0.1, 30.0), (0.1, 20.0), (0.5, 100.0)]
    assert histogram_quantile(0.9, shuffled) == pytest.approx(0.35)
    # 0.2's count below 0.1's is lifted to 50: the 0.6 quantile then lies in (0.2, 0.5].
    dipped = [(0.1, 50.0), (0.2, 40.0), (0.5, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.6, dipped) == pytest.approx(0.2 + 0.3 * 10 / 50)


def test_coredns_p99_from_scraped_text() -> None:
    samples = parse_prometheus(COREDNS_METRICS)["coredns_dns_request_duration_seconds_bucket"]
    p99 = histogram_quantile(0.99, histogram_buckets(samples, {"server": "dns://:53"}))
    assert p99 == 0.004  # rank 99 falls in the +Inf bucket
    p50 = histogram_quantile(0.5, histogram_buckets(samples, {"server": "dns://:53"}))
    assert p50 == pytest.approx(0.001)
