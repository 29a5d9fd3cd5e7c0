"""The dual-stack checks' fixtures (conformance/test_dualstack.py): the Service that asks for an
IPv6 ClusterIP, and probe pods whose only nameserver is the cluster DNS's IPv6 address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_k8sdns.dns import dualstack
from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.fixtures import _guarded, _image, _start
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.pods import LIBCS, ProbePod
from pytest_k8sdns.session import Run


@pytest.fixture(scope="session")
def dual_stack(k8sdns_run: Run, coredns: CoreDNSInspector, cluster_domain: str) -> dualstack.DualStack:
    """Session. A Service `web6` with ipFamilyPolicy PreferDualStack in the run's namespace, and the
    IPv6 addresses the cluster DNS answers on (its Service's IPv6 ClusterIP, its pods')."""
    r, p = k8sdns_run, coredns.provider
    made: dualstack.DualStack = _guarded(dualstack.create, r.cluster, r.namespace, r.run_id, cluster_domain,
                                         p.service_namespace, p.service_name, p.selector)
    r.facts["ip_families"] = (f"single-stack ({', '.join(made.cluster_ips)})" if made.single_stack
                              else f"{'dual-stack' if made.ipv4 else 'IPv6 only'} ({', '.join(made.cluster_ips)})")
    return made


@pytest.fixture(scope="session")
def ipv6_dns_pods(k8sdns_run: Run, dual_stack: dualstack.DualStack) -> Iterator[dict[str, ProbePod]]:
    """Session. A probe pod per libc on the first chosen node whose only nameserver is the cluster
    DNS's IPv6 address (dnsPolicy None, the ClusterFirst search list, ndots:5): {libc: ProbePod};
    empty when the DNS has no IPv6 address. Skips on a single-stack cluster."""
    if dual_stack.single_stack:
        pytest.skip(dual_stack.single_stack)
    if dual_stack.nameserver6 is None:
        yield {}
        return
    s = k8sdns_run.settings
    specs = dual_stack.resolver_specs({libc: _image(s, libc) for libc in LIBCS}, k8sdns_run.placement.chosen[0])
    started = _start(k8sdns_run, specs)
    yield {p.libc: p for p in started.values()}
    probes.stop(k8sdns_run.cluster, k8sdns_run.namespace, started)
