"""End to end, dual-stack: on a 2-node kind cluster with `ipFamily: dual` (fixtures/kind-dual.yaml)
the dual-stack checks (check 19) pass, not skip, beside IPv4 record checks; each IPv6 fault fails
exactly its checks (TARGETS), the IPv4 records run beside them untouched. The cluster is the e2e
tier's shared one (conftest.shared_run); the suite runs against it by context. The healthy run comes
last, so it also shows the faults undone; every test stands alone in any order."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_negative_controls import failed, fails_its_targets, suite

from pytest_k8sdns.faults import Faults
from pytest_k8sdns.session import Run

SHARED_CLUSTER = True  # conftest.shared_run: the dual-stack cluster test_rbac and test_xdist use too
DUAL = "test_dualstack.py"
#: every dual-stack check of the packaged suite, as the results file names them
IPV6_CHECKS = ["test_cluster_name_over_ipv6_libc[glibc]", "test_cluster_name_over_ipv6_libc[musl]",
               "test_cluster_name_over_ipv6_raw", "test_service_aaaa_libc[glibc]", "test_service_aaaa_libc[musl]",
               "test_service_aaaa_raw", "test_service_ptr_ipv6"]


@pytest.fixture(scope="module")
def dual(shared_run: Run) -> tuple[Run, Faults]:
    """The shared dual-stack cluster (kube-dns PreferDualStack, so the pods' IPv6 nameserver is a
    Service address) and the faults that may touch it; its pods' own IPv6 addresses are asked too."""
    return shared_run, Faults(shared_run.cluster, shared_run.kind)


def _dual(checks: dict[str, dict]) -> dict[str, dict]:
    return {name: c for name, c in checks.items() if c["nodeid"].startswith(DUAL) or f"/{DUAL}::" in c["nodeid"]}


#: (fault, the suite paths run under it, the checks that must fail: exactly these)
IPV6_FAULTS = [
    ("no_ip6_reverse_zone", (f"{DUAL}::test_service_ptr_ipv6", "test_records.py::test_service_ptr"),
     {"test_service_ptr_ipv6"}),
    ("aaaa_suppressed", (DUAL,), {"test_service_aaaa_raw", "test_service_aaaa_libc[glibc]", "test_service_aaaa_libc[musl]"}),
    ("ipv6_dns_dropped", (DUAL, "test_records.py::test_cluster_name_raw"),
     {"test_cluster_name_over_ipv6_raw", "test_cluster_name_over_ipv6_libc[glibc]",
      "test_cluster_name_over_ipv6_libc[musl]"}),
]


@pytest.mark.parametrize(("fault", "paths", "fails"), IPV6_FAULTS, ids=[f[0] for f in IPV6_FAULTS])
def test_ipv6_fault_fails_its_checks(dual, tmp_path: Path, fault: str, paths: tuple[str, ...], fails: set[str]) -> None:
    run, faults = dual
    with getattr(faults, fault)():
        checks = suite(run, tmp_path, *paths)
    bad = failed(checks)
    fails_its_targets(fault, bad)
    assert set(bad) == fails, bad  # the IPv4 record checks run beside them keep passing


def test_dual_stack_cluster_passes_with_the_ipv6_checks_run(dual, tmp_path: Path) -> None:
    run, _ = dual
    out: dict = {}
    # beside them the IPv4 A and PTR of a Service (the whole of test_records.py passes on dual-stack
    # too, but costs two minutes here)
    checks = suite(run, tmp_path, DUAL, "test_records.py::test_service_a", "test_records.py::test_service_ptr", out=out)
    assert failed(checks) == {}, out["proc"].stdout[-4000:]
    ipv6 = _dual(checks)
    assert sorted(ipv6) == IPV6_CHECKS
    # passed, not skipped: this cluster has IPv6, so a skip here would hide the checks
    assert {name: c["outcome"] for name, c in checks.items() if c["outcome"] != "passed"} == {}
    assert out["doc"]["cluster"]["ip_families"].startswith("dual-stack (10.96."), out["doc"]["cluster"]
    aaaa = ipv6["test_service_aaaa_raw"]["measurements"]
    v6 = aaaa["cluster_ips"]["value"][1]
    assert ":" in v6 and aaaa["aaaa"]["value"] == [v6]
    for libc in ("glibc", "musl"):
        assert ipv6[f"test_service_aaaa_libc[{libc}]"]["measurements"]["addresses"]["value"] == [v6]
        m = ipv6[f"test_cluster_name_over_ipv6_libc[{libc}]"]["measurements"]
        assert ":" in m["nameserver"]["value"] and f"nameserver {m['nameserver']['value']}\n" in m["resolv_conf"]["value"]
    assert ipv6["test_service_ptr_ipv6"]["measurements"]["ptr"]["value"][0].startswith("web6.")
