"""Checks 9-11: client tail latency per libc, the retry signature, and server-side latency."""

from __future__ import annotations

import pytest

from pytest_k8sdns.evidence import stats
from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.report.plots import cdf_png


def _names(domain: str, namespace: str) -> list[str]:
    # absolute names that exist: the cost of DNS itself, not of the search list (see test_ndots)
    return [f"kubernetes.default.svc.{domain}.", f"web.{namespace}.svc.{domain}."]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@pytest.mark.k8sdns_check(9)
@pytest.mark.parametrize("libc", LIBCS)
def test_lookup_latency(probe_pods, dns_objects, cluster_domain, k8sdns_settings, k8sdns_record, libc):
    """Paced libc lookups: p50, p99 and the error rate stay within bounds."""
    s = k8sdns_settings
    result = probe_pods[libc].lookup(_names(cluster_domain, dns_objects.namespace), count=s.samples, qps=s.qps,
                                     concurrency=2, family="any")
    ok = [r.latency_ns for r in result.rows if r.ok]
    failed = [r for r in result.rows if not r.ok]
    summary = stats.summarise(ok, len(failed), stats.retry_threshold(libc))
    retries = summary.retry_signatures + sum(1 for r in failed if r.latency_s >= summary.retry_threshold_s)
    for key in ("p50", "p90", "p99", "max", "mean"):
        k8sdns_record(f"{key}_ms", _ms(getattr(summary, key)), "ms")
    k8sdns_record("lookups", summary.count)
    k8sdns_record("errors", summary.errors)
    k8sdns_record("error_rate", round(summary.error_rate, 5))
    k8sdns_record("retry_signatures", retries)
    k8sdns_record("rate_per_s", round(result.totals.rate_per_s, 1), "1/s")
    k8sdns_record.series("latency_ms", [round(ns / 1e6, 3) for ns in ok], "ms")
    k8sdns_record.plot(f"{libc} lookup latency CDF", cdf_png({libc: [ns / 1e6 for ns in ok]}, f"{libc} getaddrinfo latency"))
    expect(summary.error_rate <= s.max_error_rate, f"{libc} lookup error rate", f"<= {s.max_error_rate}",
           f"{summary.error_rate:.4f} ({summary.errors}/{summary.count}, {dict(result.errors)})",
           "look at CoreDNS errors and restarts (test_loop) and at packet loss to its pods")
    expect(summary.p50 is not None and summary.p50 * 1000 <= s.p50_ms, f"{libc} lookup p50",
           f"<= {s.p50_ms} ms", f"{_ms(summary.p50)} ms", "the cluster DNS is slow for every query: check its CPU and upstream")
    expect(summary.p99 is not None and summary.p99 * 1000 <= s.p99_ms, f"{libc} lookup p99",
           f"<= {s.p99_ms} ms", f"{_ms(summary.p99)} ms with {retries} lookups at the retry signature",
           "a slow tail: look for lost packets (conntrack -S insert_failed) and CoreDNS saturation")


@pytest.mark.k8sdns_check(11)
@pytest.mark.parametrize("variant", [*LIBCS, "glibc-single-request-reopen"])
def test_retry_signature(request, probe_pods, dns_objects, cluster_domain, k8sdns_settings, k8sdns_record, variant):
    """Bursts of parallel A+AAAA lookups: none may take the libc's retry time (a lost packet).
    glibc with single-request-reopen is counted on its own."""
    s = k8sdns_settings
    libc = variant.split("-", 1)[0]
    pod = request.getfixturevalue("reopen_pod") if variant != libc else probe_pods[libc]
    result = pod.burst(_names(cluster_domain, dns_objects.namespace), bursts=s.bursts,
                                    parallel=s.burst_size, interval_s=0.05)
    threshold = stats.retry_threshold(libc)
    slow = [r for r in result.rows if r.latency_s >= threshold]
    k8sdns_record("lookups", len(result.rows))
    k8sdns_record("retry_threshold_s", threshold, "s")
    k8sdns_record("retry_signatures", len(slow))
    k8sdns_record("max_ms", round(max((r.latency_ns for r in result.rows), default=0) / 1e6, 3), "ms")
    expect(len(slow) <= s.max_retry_signatures, f"{variant} lookups at the retry signature (>= {threshold} s)",
           f"<= {s.max_retry_signatures}", f"{len(slow)} of {len(result.rows)}",
           "packets are lost: check conntrack -S (insert_failed) on the nodes; single-request-reopen "
           "(glibc) or NodeLocal DNSCache avoid the race")


@pytest.mark.k8sdns_check(10)
def test_server_latency(coredns, probe_pods, k8sdns_settings, k8sdns_record):
    """The cluster DNS's own request-duration histogram (:9153) stays within the p99 bound."""
    samples: list[stats.Sample] = []
    for pod in coredns.pods():
        status, body = probe_pods["glibc"].http_get(f"http://{pod.ip}:9153/metrics")
        expect(status == 200, f"metrics of {pod.name}", "HTTP 200 on :9153/metrics", status,
               "enable the prometheus plugin on :9153")
        samples += stats.parse_prometheus(body).get("coredns_dns_request_duration_seconds_bucket", [])
    buckets = stats.histogram_buckets(samples)  # summed over pods, servers and zones
    p99 = stats.histogram_quantile(0.99, buckets) if buckets else None
    p50 = stats.histogram_quantile(0.50, buckets) if buckets else None
    k8sdns_record("server_p50_ms", _ms(p50), "ms")
    k8sdns_record("server_p99_ms", _ms(p99), "ms")
    k8sdns_record("requests", buckets[-1][1] if buckets else 0)
    expect(p99 is not None and p99 * 1000 <= k8sdns_settings.p99_ms, "server-side p99 of coredns_dns_request_duration_seconds",
           f"<= {k8sdns_settings.p99_ms} ms", f"{_ms(p99)} ms", "the DNS server itself is slow: check its upstream and CPU")

