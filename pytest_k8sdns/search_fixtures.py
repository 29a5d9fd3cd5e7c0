"""Fixtures of the search-path checks (conformance/test_ndots.py): probe pods whose dnsConfig search
list holds a domain with underscores and a single dot, as the Kubernetes e2e test "should work with
a search path containing an underscore and a search path with a single dot" gives its pod."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.dns.objects import DnsObjects
from pytest_k8sdns.fixtures import _image, _start
from pytest_k8sdns.kube.client import status_message
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.pods import LIBCS, ProbePod, ProbeSpec
from pytest_k8sdns.session import Run

#: The underscore labels of the e2e test's search path (`_sip._tcp.abc_d.example.com`), here under
#: the run's namespace, so the kubernetes plugin answers for them (NXDOMAIN) rather than an upstream.
UNDERSCORE = "_sip._tcp.abc_d"


def underscore_search_list(namespace: str, domain: str) -> list[str]:
    """The underscore domain first (every lookup meets it), the namespace's own paths, then "."."""
    return [f"{UNDERSCORE}.{namespace}.svc.{domain}", f"{namespace}.svc.{domain}", f"svc.{domain}", "."]


@pytest.fixture(scope="session")
def underscore_search_pods(k8sdns_run: Run, coredns: CoreDNSInspector,
                           dns_objects: DnsObjects) -> Iterator[dict[str, ProbePod]]:
    """Session. A probe pod per libc on the first chosen node, dnsPolicy None, the cluster DNS
    Service as its nameserver, ndots:5 and the search list underscore_search_list gives:
    {libc: ProbePod}. Skips where the API server refuses such a search list (Kubernetes before
    1.33, or the RelaxedDNSSearchValidation feature gate off)."""
    run, d = k8sdns_run, dns_objects
    searches = underscore_search_list(d.namespace, d.domain)
    config = {"nameservers": [coredns.provider.cluster_ip], "searches": searches,
              "options": [{"name": "ndots", "value": "5"}]}
    specs = [ProbeSpec(key=f"{libc}-underscore-dot", libc=libc, image=_image(run.settings, libc),
                       node=run.placement.chosen[0], dns_policy="None", dns_config=config) for libc in LIBCS]
    try:
        started = _start(run, specs)
    except ApiException as exc:
        if exc.status != 422:
            raise
        pytest.skip(f"the API server refuses a pod whose dnsConfig searches hold {searches[0]} and \".\" "
                    f"({status_message(exc) or exc.reason}): Kubernetes admits them since 1.33 (feature gate "
                    f"RelaxedDNSSearchValidation)")
    yield {p.libc: p for p in started.values()}
    probes.stop(run.cluster, run.namespace, started)
