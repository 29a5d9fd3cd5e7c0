"""Builders of small results documents for the unit tests of results, baseline and summary."""

from __future__ import annotations

from typing import Any


def check(cid: str, outcome: str = "passed", number: int | None = 9, message: str | None = None,
          series: dict[str, list[float]] | None = None, **measurements: Any) -> dict[str, Any]:
    name, _, rest = cid.partition("::")[2].partition("[")
    params: dict[str, Any] = {}
    if rest:
        values = rest.rstrip("]").split("-")
        keys = {"test_queries_per_lookup": ["libc", "ndots"], "test_retry_signature": ["variant"]}.get(name, ["libc"])
        if name == "test_retry_signature":
            values = ["-".join(values)]
        params = {k: (int(v) if v.isdigit() else v) for k, v in zip(keys, values)}
    entry: dict[str, Any] = {
        "id": cid, "nodeid": f"conformance/{cid}", "name": name, "number": number, "params": params,
        "outcome": outcome, "duration_s": 0.5,
        "measurements": {k: {"value": v, "unit": "ms" if k.endswith("_ms") else ""} for k, v in measurements.items()},
        "series": {k: {"unit": "ms", "values": v} for k, v in (series or {}).items()},
    }
    if message is not None:
        entry["message"] = message
    return entry


def doc(*checks: dict[str, Any], created: str = "2026-11-26T08:00:00+00:00") -> dict[str, Any]:
    summary = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for c in checks:
        summary[c["outcome"]] += 1
    return {
        "schema_version": 1, "suite_version": "0.1.0", "created": created, "profile": "default",
        "cluster": {"server_version": "v1.34.4", "namespace": "k8sdns-abc123", "kind_cluster": "k8sdns-abc123",
                    "server": "https://127.0.0.1:6443", "coredns": "coredns v1.12.1 (coredns:v1.12.1)",
                    "nodelocal": "absent",
                    "nodes": [{"name": "n1", "kernel": "6.1.0", "container_runtime": "containerd://1.6.20",
                               "kubelet": "v1.34.4", "os_image": "Debian GNU/Linux 12 (bookworm)"}]},
        "settings": {"p50_ms": 20.0, "p99_ms": 100.0, "max_error_rate": 0.001, "max_retry_signatures": 0,
                     "samples": 300, "bursts": 20, "burst_size": 8, "qps": 50.0,
                     "glibc_image": "probe-glibc", "musl_image": "probe-musl"},
        "summary": summary,
        "checks": list(checks),
    }


def healthy(**overrides: Any) -> dict[str, Any]:
    """A run with the latency, retry and ndots checks of both libcs, all passed."""
    checks = []
    for libc in ("glibc", "musl"):
        checks.append(check(f"test_latency.py::test_lookup_latency[{libc}]", p50_ms=0.6, p90_ms=0.9, p99_ms=8.0,
                            max_ms=12.0, lookups=300, errors=0, retry_signatures=0,
                            series={"latency_ms": [0.5, 0.6, 0.7, 0.9, 8.0]}))
        checks.append(check(f"test_latency.py::test_retry_signature[{libc}]", number=11, retry_signatures=0, lookups=160))
        for ndots in (5, 2):
            checks.append(check(f"test_ndots.py::test_queries_per_lookup[{libc}-{ndots}]", number=12,
                                **{"queries[web]": 2, "queries[web.k8sdns-abc123.svc]": 6 if ndots == 5 else 2}))
    checks.append(check("test_latency.py::test_retry_signature[glibc-single-request-reopen]", number=11,
                        retry_signatures=0))
    checks.append(check("test_loop.py::test_no_loop_in_logs", number=13, loop_lines={}))
    checks.append(check("test_nodelocal.py::test_caches", "skipped", 14, message="no NodeLocal DNSCache deployed"))
    for c in checks:
        for key, value in overrides.get(c["id"], {}).items():
            if key in ("outcome", "message"):
                c[key] = value
            else:
                c["measurements"][key]["value"] = value
    return doc(*checks)
