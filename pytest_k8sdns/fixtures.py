"""The plugin's fixtures: thin session-scoped handles over session, probes and inspectors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_k8sdns.config import Settings
from pytest_k8sdns.dns import bigname, objects
from pytest_k8sdns.dns import propagation as propagation_
from pytest_k8sdns.dns.coredns import CoreDNSInspector
from pytest_k8sdns.dns.nodelocal import NodeLocalInspector, find_nodelocal
from pytest_k8sdns.dns.paths import DnsPaths
from pytest_k8sdns.dns.resolvconf import parse_resolv_conf
from pytest_k8sdns.errors import K8sDnsError
from pytest_k8sdns.evidence.recorder import Recorder
from pytest_k8sdns.keys import RESULTS_KEY, RUN_KEY, SETTINGS_KEY
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.kube.kind import UPSTREAM_NAMES, UPSTREAM_WILD
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.fleet import Fleet
from pytest_k8sdns.probe.pods import LIBCS, ProbePod, ProbeSpec
from pytest_k8sdns.session import Run


def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """Call fn; a plugin error fails the fixture with its one-line message, no traceback."""
    __tracebackhide__ = True
    try:
        return fn(*args)
    except K8sDnsError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def k8sdns_run(request: pytest.FixtureRequest) -> Run:
    """Session. The run: settings, cluster handle, namespace, facts. Needs --k8sdns-context or --k8sdns-kind."""
    run = request.config.stash.get(RUN_KEY, None)
    if run is None:
        pytest.fail("no cluster: pass --k8sdns-context=NAME or --k8sdns-kind", pytrace=False)
    return run


@pytest.fixture(scope="session")
def k8sdns_settings(request: pytest.FixtureRequest, k8sdns_run: Run) -> Settings:
    """Session. The resolved settings (thresholds, images, sample sizes): a frozen Settings."""
    return request.config.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def k8sdns_cluster(k8sdns_run: Run) -> Cluster:
    """Session. API handle on the cluster under test (from the context, or the kind cluster created)."""
    return k8sdns_run.cluster


@pytest.fixture(scope="session")
def k8sdns_namespace(k8sdns_run: Run) -> str:
    """Session. The run's namespace, k8sdns-<run id>; deleted at the end, also on failure and Ctrl-C."""
    return k8sdns_run.namespace


def _start(run: Run, specs: list[ProbeSpec]) -> dict[str, ProbePod]:
    return _guarded(lambda: probes.start(run.cluster, run.namespace, run.run_id, specs,
                                         timeout_s=run.settings.pod_timeout, image_options=run.settings.image_options()))


def _image(settings: Settings, libc: str) -> str:
    return settings.glibc_image if libc == "glibc" else settings.musl_image


@pytest.fixture(scope="session")
def probe_fleet(k8sdns_run: Run) -> Iterator[Fleet]:
    """Session. A ClusterFirst probe pod of each libc on every node the placement chose
    (--k8sdns-nodes), and a fan-out over them within --k8sdns-max-qps."""
    yield from _fleet(k8sdns_run, "")


def _fleet(run: Run, tag: str, dns_config: dict[str, Any] | None = None) -> Iterator[Fleet]:
    """A probe pod of each libc on every chosen node, named <libc><tag>-n<i>; deleted after."""
    specs = [ProbeSpec(key=f"{libc}{tag}-n{i}", libc=libc, image=_image(run.settings, libc), node=node,
                       dns_config=dns_config)
             for i, node in enumerate(run.placement.chosen) for libc in LIBCS]
    started = _start(run, specs)
    yield Fleet({(p.spec.node or p.node, p.libc): p for p in started.values()}, _budget(run))
    probes.stop(run.cluster, run.namespace, started)


def _budget(run: Run) -> float:
    """This session's share of --k8sdns-max-qps: under pytest-xdist each worker probes at once."""
    return run.settings.max_qps / max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))


@pytest.fixture(scope="session")
def ndots2_fleet(k8sdns_run: Run) -> Iterator[Fleet]:
    """Session. Like probe_fleet, with dnsConfig option ndots:2 (ClusterFirst otherwise): the same
    clients with the search tax of a name of two or more dots taken away, to measure that tax."""
    yield from _fleet(k8sdns_run, "-ndots2", {"options": [{"name": "ndots", "value": "2"}]})


def _pair(run: Run, tag: str, **spec: Any) -> Iterator[dict[str, ProbePod]]:
    """A probe pod of each libc on the first chosen node, named <libc>-<tag>, with these ProbeSpec
    fields: {libc: ProbePod}; deleted after."""
    specs = [ProbeSpec(key=f"{libc}-{tag}", libc=libc, image=_image(run.settings, libc), node=run.placement.chosen[0],
                       **spec) for libc in LIBCS]
    started = _start(run, specs)
    yield {p.libc: p for p in started.values()}
    probes.stop(run.cluster, run.namespace, started)


@pytest.fixture(scope="session")
def long_search_pods(k8sdns_run: Run, dns_objects: objects.DnsObjects) -> Iterator[dict[str, ProbePod]]:
    """Session. A ClusterFirst probe pod of each libc on the first chosen node, with dnsConfig
    searches objects.long_search_list: 10 search paths, over 256 characters. {libc: ProbePod}."""
    run, d = k8sdns_run, dns_objects
    searches = objects.long_search_list(d.namespace, d.domain, d.headless)
    yield from _pair(run, "long-search", dns_config={"searches": searches})


@pytest.fixture(scope="session")
def host_network_pods(k8sdns_run: Run) -> Iterator[dict[str, ProbePod]]:
    """Session. A hostNetwork probe pod of each libc with dnsPolicy ClusterFirstWithHostNet on the
    first chosen node; skips unless --k8sdns-host-network or a kind cluster the plugin made (its
    namespace must admit hostNetwork pods). {libc: ProbePod}."""
    run = k8sdns_run
    if not (run.settings.host_network or run.kind is not None):
        pytest.skip("hostNetwork pods need a namespace that admits them (Pod Security `privileged`): pass "
                    "--k8sdns-host-network to check dnsPolicy ClusterFirstWithHostNet")
    yield from _pair(run, "hostnet", dns_policy="ClusterFirstWithHostNet", host_network=True)


@pytest.fixture(scope="session")
def external_names(k8sdns_run: Run, external_name: tuple[str, str | None]) -> Callable[[str], list[str]]:
    """Session. Names outside the cluster for timing lookups, by a tag unique to the caller: on kind
    clusters the plugin made, a new name under the test upstream's wildcard zone per lookup, so no
    cache hides the upstream; elsewhere --k8sdns-external-name, where `{n}` becomes a number per
    lookup (give a wildcard name of yours, e.g. k8sdns-{n}.wild.example.com) and is else one name."""
    count = k8sdns_run.settings.external_samples
    if k8sdns_run.kind is not None:
        return lambda tag: [f"k8sdns-{k8sdns_run.run_id}-{tag}-{i}.{UPSTREAM_WILD}" for i in range(count)]
    name = k8sdns_run.settings.external_name or external_name[0]  # the template, before external_name filled it
    if "{n}" in name:
        return lambda tag: [name.replace("{n}", f"{k8sdns_run.run_id}-{tag}-{i}") for i in range(count)]
    return lambda tag: [name]


@pytest.fixture(scope="session")
def probe_pods(k8sdns_run: Run, probe_fleet: Fleet) -> dict[str, ProbePod]:
    """Session. One ClusterFirst probe pod per libc flavour, on the first chosen node:
    {"glibc": ProbePod, "musl": ProbePod} (the fleet's, for checks that need one client). Each
    image's libc and its version become a fact of the report (check 18 depends on musl's)."""
    pods = {libc: probe_fleet.first(libc) for libc in LIBCS}
    for libc, pod in pods.items():
        info = _guarded(pod.info)
        k8sdns_run.facts.setdefault("probe_libc", {})[libc] = f"{info.libc} {info.libc_version or 'version unknown'}"
    return pods


@pytest.fixture(scope="session")
def reopen_pod(k8sdns_run: Run) -> Iterator[ProbePod]:
    """Session. A glibc ClusterFirst pod with dnsConfig option single-request-reopen (a new socket
    for the AAAA query), whose retry signatures are reported apart from plain glibc's."""
    spec = ProbeSpec(key="glibc-reopen", libc="glibc", image=k8sdns_run.settings.glibc_image,
                     dns_config={"options": [{"name": "single-request-reopen"}]})
    started = _start(k8sdns_run, [spec])
    yield started[spec.key]
    probes.stop(k8sdns_run.cluster, k8sdns_run.namespace, started)


@pytest.fixture(scope="session")
def cluster_resolv_conf(probe_pods: dict[str, ProbePod]) -> str:
    """Session. The text of /etc/resolv.conf in a ClusterFirst pod of the run's namespace."""
    info = probe_pods["glibc"].info()
    assert info.resolv_conf, f"{probe_pods['glibc'].where} has no readable /etc/resolv.conf"
    return info.resolv_conf


@pytest.fixture(scope="session")
def cluster_nameserver(cluster_resolv_conf: str) -> str:
    """Session. The first nameserver ClusterFirst pods are given: the cluster DNS (or NodeLocal) IP."""
    servers = parse_resolv_conf(cluster_resolv_conf).nameservers
    assert servers, f"no nameserver line in a ClusterFirst pod's resolv.conf:\n{cluster_resolv_conf}"
    return servers[0]


@pytest.fixture(scope="session")
def capture_pods(k8sdns_run: Run, cluster_resolv_conf: str) -> Iterator[dict[tuple[str, int], ProbePod]]:
    """Session. dnsPolicy None pods per (libc, ndots) for ndots 5 and 2, nameserver 127.0.0.1 (the
    in-pod capturing forwarder), with the cluster's search list: {("glibc", 5): ProbePod, ...}."""
    search = parse_resolv_conf(cluster_resolv_conf).search
    specs = []
    for libc in LIBCS:
        for ndots in (5, 2):
            specs.append(ProbeSpec(
                key=f"capture-{libc}-ndots{ndots}", libc=libc, image=_image(k8sdns_run.settings, libc),
                dns_policy="None",
                dns_config={"nameservers": ["127.0.0.1"], "searches": list(search),
                            "options": [{"name": "ndots", "value": str(ndots)}]},
            ))
    started = _start(k8sdns_run, specs)
    yield {(p.libc, int(k.rsplit("ndots", 1)[1])): p for k, p in started.items()}
    probes.stop(k8sdns_run.cluster, k8sdns_run.namespace, started)


@pytest.fixture(scope="session")
def node_probe_pods(k8sdns_run: Run) -> Iterator[dict[str, ProbePod]]:
    """Session. One glibc ClusterFirst probe pod pinned to every node: {node name: ProbePod}."""
    nodes = [n.name for n in k8sdns_run.cluster.nodes()]
    specs = [ProbeSpec(key=f"node{i}-glibc", libc="glibc", image=k8sdns_run.settings.glibc_image, node=n)
             for i, n in enumerate(nodes)]
    started = _start(k8sdns_run, specs)
    yield {p.node: p for p in started.values()}
    probes.stop(k8sdns_run.cluster, k8sdns_run.namespace, started)


@pytest.fixture(scope="session")
def default_policy_pods(k8sdns_run: Run) -> Iterator[dict[str, ProbePod]]:
    """Session. A dnsPolicy Default pod on every node, to read the node's resolv.conf: {node: ProbePod}."""
    nodes = [n.name for n in k8sdns_run.cluster.nodes()]
    specs = [ProbeSpec(key=f"node{i}-default", libc="glibc", image=k8sdns_run.settings.glibc_image, node=n,
                       dns_policy="Default") for i, n in enumerate(nodes)]
    started = _start(k8sdns_run, specs)
    yield {p.node: p for p in started.values()}
    probes.stop(k8sdns_run.cluster, k8sdns_run.namespace, started)


@pytest.fixture(scope="session")
def coredns(k8sdns_run: Run, cluster_nameserver: str) -> CoreDNSInspector:
    """Session. Read-only view of the cluster DNS provider found through the pods' nameserver."""
    inspector: CoreDNSInspector = _guarded(CoreDNSInspector, k8sdns_run.cluster, cluster_nameserver,
                                           k8sdns_run.dns_restarts_at_start)
    k8sdns_run.facts["coredns"] = inspector.describe()
    return inspector


@pytest.fixture(scope="session")
def nodelocal(k8sdns_run: Run) -> NodeLocalInspector | None:
    """Session. The NodeLocal DNSCache inspector, or None when no node-local-dns DaemonSet exists."""
    found = find_nodelocal(k8sdns_run.cluster)
    k8sdns_run.facts["nodelocal"] = found.describe() if found else "absent"
    return found


@pytest.fixture(scope="session")
def dns_paths(k8sdns_run: Run, probe_fleet: Fleet, coredns: CoreDNSInspector, cluster_domain: str,
              k8sdns_settings: Settings) -> DnsPaths:
    """Session. Direct queries from every chosen node to every cluster-DNS pod and the Service,
    measured once per protocol: the node x replica matrix that names the place a failure is."""
    paths = DnsPaths(probe_fleet, coredns, f"kubernetes.default.svc.{cluster_domain}.", k8sdns_settings.max_error_rate)
    k8sdns_run.findings.append(paths.found)
    return paths


@pytest.fixture()
def root_causes(request: pytest.FixtureRequest) -> Callable[[], list[str]]:
    """Function. Gives the transport causes (a silent replica, a node whose clients lose queries) that
    the node x replica matrix finds, measuring it on first use: what a check spoiled by timeouts names."""

    def causes() -> list[str]:
        paths: DnsPaths = request.getfixturevalue("dns_paths")
        return [c.text for c in paths.causes()]

    return causes


@pytest.fixture()
def k8sdns_record(request: pytest.FixtureRequest) -> Recorder:
    """Function. A Recorder: record(name, value, unit) keeps a measurement of the current check for
    the HTML report, the results file and JUnit properties; .table() and .plot() add evidence.

    JUnit XML gets each figure as a <property>: on the test case with junit_family = legacy or
    xunit1; with the default xunit2, whose schema has properties only on the test suite, on the
    suite, named `<nodeid>::<figure>` (pytest drops suite properties under xdist)."""
    return Recorder(request.config.stash[RESULTS_KEY], request.node.nodeid, _junit_property(request))


def _junit_property(request: pytest.FixtureRequest) -> Callable[[str, Any], None] | None:
    if not request.config.getoption("xmlpath", None):
        return None
    if request.config.getini("junit_family") != "xunit2":
        record: Callable[[str, Any], None] = request.getfixturevalue("record_property")
        return record
    suite: Callable[[str, Any], None] = request.getfixturevalue("record_testsuite_property")
    nodeid = request.node.nodeid
    return lambda name, value: suite(f"{nodeid}::{name}", value)


@pytest.fixture(scope="session")
def cluster_domain(cluster_resolv_conf: str) -> str:
    """Session. The cluster domain, read from the `svc.<domain>` entry of the pods' search list."""
    for entry in parse_resolv_conf(cluster_resolv_conf).search:
        if entry.startswith("svc."):
            return entry[len("svc."):]
    pytest.fail(f"no svc.<domain> entry in a ClusterFirst pod's search list:\n{cluster_resolv_conf}", pytrace=False)
    raise AssertionError


@pytest.fixture(scope="session")
def external_name(k8sdns_run: Run) -> tuple[str, str | None]:
    """Session. (name, expected address or None) of a name outside the cluster that must resolve:
    the test upstream's api.example.test on kind clusters the plugin made, else
    --k8sdns-external-name (skips the upstream check when unset)."""
    if k8sdns_run.kind is not None:
        return "api.example.test", UPSTREAM_NAMES["api.example.test"]
    if not k8sdns_run.settings.external_name:
        pytest.skip("no external name to resolve: pass --k8sdns-external-name=NAME (e.g. one your upstream serves)")
    # a {n} template (for the external-latency check's fresh names) resolves here as one fixed name
    return k8sdns_run.settings.external_name.replace("{n}", "k8sdns"), None


@pytest.fixture(scope="session")
def dns_objects(k8sdns_run: Run, cluster_domain: str) -> objects.DnsObjects:
    """Session. A ClusterIP Service `web` with a named port, a headless Service `hl` with two ready
    pods (h0, h1 under subdomain hl) and an ExternalName Service `ext`, in the run's namespace. The
    ExternalName's target is the external name (api.example.test on kind), else a name of
    example.com: the checks ask for the CNAME, which the cluster DNS answers without resolving it."""
    s = k8sdns_run.settings
    target = ("api.example.test" if k8sdns_run.kind is not None
              else (s.external_name or "k8sdns-target.example.com").replace("{n}", "k8sdns"))
    made: objects.DnsObjects = _guarded(
        objects.create, k8sdns_run.cluster, k8sdns_run.namespace, k8sdns_run.run_id, cluster_domain,
        s.glibc_image, target, s.pod_timeout, s.image_options())
    return made


@pytest.fixture(scope="session")
def named_pods(k8sdns_run: Run) -> Iterator[dict[str, ProbePod]]:
    """Session. A probe pod of each libc with hostname `own-<libc>` and subdomain `hl`, outside the
    headless Service: only the /etc/hosts the kubelet wrote knows its names. {libc: ProbePod}."""
    s = k8sdns_run.settings
    started: dict[str, ProbePod] = _guarded(
        objects.start_named, k8sdns_run.cluster, k8sdns_run.namespace, k8sdns_run.run_id,
        {libc: _image(s, libc) for libc in LIBCS}, s.pod_timeout, s.image_options())
    yield started
    probes.stop(k8sdns_run.cluster, k8sdns_run.namespace, started)


@pytest.fixture(scope="session")
def propagation(k8sdns_run: Run, probe_fleet: Fleet, cluster_domain: str,
                nodelocal: NodeLocalInspector | None) -> propagation_.Propagation:
    """Session. Check 17's measurement, made once: how long new Services and headless pods take to
    answer, and how long pre-asked names stay NXDOMAIN, from every chosen node (at most 32) and libc."""
    from pytest_k8sdns.monitor.fixtures import MAX_MONITOR_NODES

    s = k8sdns_run.settings
    nodes = probe_fleet.nodes[:MAX_MONITOR_NODES]
    pods = [probe_fleet.pod(node, libc) for node in nodes for libc in LIBCS]
    path, path_of = "the cluster DNS", dict[str, str]()
    upstream = _guarded(nodelocal.cluster_upstream, cluster_domain) if nodelocal is not None else None
    direct: dict[str, ProbePod] = {}
    if nodelocal is not None and upstream is not None:
        # beside each pod that the cache answers, one that asks where the cache forwards the cluster
        # zone: CoreDNS without the cache in between, so that each way's delay is its own
        specs = [ProbeSpec(key=f"{libc}-coredns-n{i}", libc=libc, image=_image(s, libc), node=node,
                           dns_policy="None", dns_config={"nameservers": [upstream]})
                 for i, node in enumerate(nodes) for libc in LIBCS]
        direct = _start(k8sdns_run, specs)
        path = f"NodeLocal DNSCache ({nodelocal.local_ip}), and CoreDNS through the cache's upstream {upstream}"
        path_of = {**{p.name: "nodelocal" for p in pods}, **{p.name: "coredns" for p in direct.values()}}
    elif nodelocal is not None:
        path = f"NodeLocal DNSCache ({nodelocal.local_ip}); its Corefile names no upstream to ask CoreDNS by"
    try:
        measured: propagation_.Propagation = _guarded(lambda: asyncio.run(propagation_.measure(
            k8sdns_run.cluster, k8sdns_run.namespace, k8sdns_run.run_id, [*pods, *direct.values()], cluster_domain,
            image=s.glibc_image, objects=s.propagation_objects, budget_qps=probe_fleet.budget_qps,
            pod_timeout_s=s.pod_timeout, path=path, path_of=path_of,
            give_up_s=3 * s.propagation_p99_s, primed_give_up_s=2 * s.negative_window_s + 5,
            p99_s=s.propagation_p99_s, window_s=s.negative_window_s)))
    finally:
        if direct:
            probes.stop(k8sdns_run.cluster, k8sdns_run.namespace, direct)
    return measured


@pytest.fixture(scope="session")
def big_name(k8sdns_run: Run, cluster_domain: str) -> bigname.BigName:
    """Session. Check 18's headless Service `big` with 40 ready endpoints (its A answer about 700
    bytes, over DNS's 512 over UDP without EDNS), in the run's namespace."""
    run = k8sdns_run
    made: bigname.BigName = _guarded(lambda: bigname.create(run.cluster, run.namespace, run.run_id, cluster_domain,
                                                            timeout_s=run.settings.pod_timeout))
    return made


@pytest.fixture(scope="session")
def kubernetes_service_ip(k8sdns_cluster: Cluster) -> str:
    """Session. The ClusterIP of default/kubernetes, which kubernetes.default.svc.<domain> must name."""
    svc = _guarded(k8sdns_cluster.call, "get", "services", "default", k8sdns_cluster.core.read_namespaced_service,
                   "kubernetes", "default")
    return str(svc.spec.cluster_ip)
