"""Checks 2-6 and 8: the records the Kubernetes DNS specification promises, from inside pods."""

from __future__ import annotations

import ipaddress

import pytest

from pytest_k8sdns.dns import dualstack, externalname, resolver
from pytest_k8sdns.dns.objects import PORT
from pytest_k8sdns.evidence.latency import ms
from pytest_k8sdns.probe.fleet import ONE_SHOT_QPS
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict import answers
from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.verdict.pernode import node_verdicts
from pytest_k8sdns.verdict.rootcause import lookup_spoiled, spoiled_message

pytestmark = pytest.mark.k8sdns_check(4)


@pytest.mark.k8sdns_check(2)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cluster_name_raw(probe_pods, coredns, cluster_domain, kubernetes_service_ip, k8sdns_record, root_causes, tcp):
    """kubernetes.default.svc.<domain> A, asked of the cluster DNS Service over UDP and TCP."""
    name = f"kubernetes.default.svc.{cluster_domain}"
    svc = kubernetes_service_ip
    result = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="A", tcp=tcp, count=1)
    reply = result.replies[0]
    k8sdns_record("rcode", reply.rcode)
    k8sdns_record("latency_ms", ms(reply.latency_ns), "ms")
    answers.reply(reply, probe_pods["glibc"].node, f"{name} A over {'TCP' if tcp else 'UDP'}",
                  reply.rcode == "NOERROR" and svc in reply.addresses(), f"NOERROR with {svc}",
                  f"{reply.rcode or reply.error} {list(reply.addresses())}",
                  "check the kubernetes plugin of the cluster DNS and that it answers on TCP too", root_causes)


@pytest.mark.k8sdns_check(2)
@pytest.mark.parametrize("libc", LIBCS)
def test_cluster_name_libc(probe_fleet, cluster_domain, kubernetes_service_ip, k8sdns_record, root_causes, libc):
    """The same name through each libc's getaddrinfo and the pod's own resolv.conf, on every node."""
    name = f"kubernetes.default.svc.{cluster_domain}"
    svc = kubernetes_service_ip
    family = dualstack.lookup_family(svc)  # an IPv6-only cluster's kubernetes Service has only AAAA
    got = answers.lookups_everywhere(_everywhere(probe_fleet, libc, name, family), libc,
                                     f"{libc} getaddrinfo({name}, {family})", svc,
                                     lambda addrs: svc in addrs, "check the pod's resolv.conf nameserver and the "
                                     "cluster DNS", root_causes, k8sdns_record)
    k8sdns_record("addresses", sorted({a for addrs in got.values() for a in addrs}))


def _everywhere(fleet, libc, name, family="inet"):
    """One libc lookup of `name` (of `family`) from every chosen node: {node: LookupResult}."""
    return fleet.each(libc, lambda pod: pod.lookup([name], count=1, family=family), qps_per_probe=ONE_SHOT_QPS)


PARTIAL = ["kubernetes.default", "web", "web.{ns}", "web.{ns}.svc"]


@pytest.mark.k8sdns_check(3)
@pytest.mark.parametrize("libc", LIBCS)
@pytest.mark.parametrize("template", PARTIAL)
def test_partial_names(probe_fleet, dns_objects, kubernetes_service_ip, k8sdns_record, root_causes, libc, template):
    """Partial names resolve through the search list (ndots:5), in glibc and in musl pods, on every node
    (the four names looked up together, one thread each, when the first of them is judged)."""
    name = template.format(ns=dns_objects.namespace)
    want = kubernetes_service_ip if name == "kubernetes.default" else dns_objects.service_ip
    got = answers.lookups_everywhere(
        probe_fleet.lookup_in_batch(libc, [t.format(ns=dns_objects.namespace) for t in PARTIAL], name), libc,
        f"{libc} getaddrinfo({name}) through the search list", want,
        lambda addrs: want in addrs, "the pod's search list or ndots is wrong, or this libc drops it (a musl search "
        "line over 255 bytes is ignored)", root_causes, k8sdns_record)
    k8sdns_record("addresses", sorted({a for addrs in got.values() for a in addrs}))


def test_service_a(probe_pods, coredns, dns_objects, k8sdns_record, root_causes):
    name = dns_objects.fqdn(dns_objects.service)
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="A").replies[0]
    got = sorted(reply.rdata("A"))
    answers.reply(reply, probe_pods["glibc"].node, f"{name} A", got == [dns_objects.service_ip],
                  [dns_objects.service_ip], got or reply.rcode, "the ClusterIP Service must have exactly its ClusterIP as A",
                  root_causes)


def test_service_srv(probe_pods, coredns, dns_objects, k8sdns_record, root_causes):
    """A named port gives _<port>._<proto>.<svc>.<ns>.svc.<domain> SRV pointing at the Service."""
    svc = dns_objects.fqdn(dns_objects.service)
    name = f"_http._tcp.{svc}"
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="SRV").replies[0]
    k8sdns_record("srv", list(reply.rdata("SRV")))
    answers.reply(reply, probe_pods["glibc"].node, f"{name} SRV",
                  any(r.port == 80 and r.target.rstrip(".") == svc for r in reply.srv()), f"port 80 target {svc}.",
                  list(reply.rdata("SRV")) or reply.rcode,
                  "named ports must publish SRV records (kubernetes/dns specification 2.3.1)", root_causes)


def test_service_ptr(probe_pods, coredns, dns_objects, k8sdns_record, root_causes):
    svc = dns_objects.fqdn(dns_objects.service)
    rev = ipaddress.ip_address(dns_objects.service_ip).reverse_pointer
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, rev, rdtype="PTR").replies[0]
    ptr = [target.rstrip(".") for target in reply.rdata("PTR")]
    k8sdns_record("ptr", ptr)
    answers.reply(reply, probe_pods["glibc"].node, f"PTR {rev}", svc in ptr, svc, ptr or reply.rcode,
                  "the kubernetes plugin must serve in-addr.arpa for Service IPs", root_causes)


def test_headless_a(probe_pods, coredns, dns_objects, k8sdns_record, root_causes):
    """A headless Service has one A record per ready endpoint, none for its not-ready endpoint."""
    name = dns_objects.fqdn(dns_objects.headless)
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="A").replies[0]
    got = sorted(reply.rdata("A"))
    k8sdns_record("a_records", got)
    k8sdns_record("not_ready_endpoints", list(dns_objects.not_ready_ips))
    published = sorted(set(got) & set(dns_objects.not_ready_ips))
    answers.reply(reply, probe_pods["glibc"].node, f"{name} A", got == list(dns_objects.headless_ips),
                  f"the ready endpoints {list(dns_objects.headless_ips)}",
                  f"{got or reply.rcode}" + (f", including not-ready {published}" if published else ""),
                  "headless Services answer with exactly the ready endpoints' addresses (publishNotReadyAddresses is "
                  "false)", root_causes)


def test_dns_version(probe_pods, coredns, cluster_domain, k8sdns_record, root_causes):
    name = f"dns-version.{cluster_domain}"
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="TXT").replies[0]
    txt = list(reply.rdata("TXT"))
    k8sdns_record("txt", txt)
    answers.reply(reply, probe_pods["glibc"].node, f"{name} TXT", bool(txt), "the schema version, e.g. \"1.1.0\"",
                  txt or reply.rcode, "the kubernetes plugin publishes dns-version; a missing record means another "
                  "provider or zone", root_causes)


@pytest.mark.k8sdns_check(5)
@pytest.mark.parametrize("libc", LIBCS)
def test_pod_hostname_subdomain(probe_fleet, dns_objects, k8sdns_record, root_causes, libc):
    """<hostname>.<subdomain>.<ns>.svc.<domain> names a pod behind a headless Service, on every node."""
    name = f"{dns_objects.hostname}.{dns_objects.fqdn(dns_objects.headless)}"
    want = [dns_objects.hostname_ip]
    got = answers.lookups_everywhere(_everywhere(probe_fleet, libc, name), libc, f"{libc} getaddrinfo({name})", want,
                                     lambda addrs: addrs == want, "pods with hostname and subdomain need a headless "
                                     "Service of that name", root_causes, k8sdns_record)
    k8sdns_record("addresses", sorted({a for addrs in got.values() for a in addrs}))


@pytest.mark.k8sdns_check(6)
def test_external_name_cname(probe_pods, coredns, dns_objects, k8sdns_record, root_causes):
    name = dns_objects.fqdn(dns_objects.external)
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="CNAME").replies[0]
    targets = [target.rstrip(".") for target in reply.rdata("CNAME")]
    k8sdns_record("cname", targets)
    answers.reply(reply, probe_pods["glibc"].node, f"{name} CNAME", dns_objects.external_target in targets,
                  dns_objects.external_target, targets or reply.rcode,
                  "ExternalName Services must be a CNAME to spec.externalName", root_causes)


@pytest.mark.k8sdns_check(8)
@pytest.mark.parametrize("libc", LIBCS)
def test_upstream_name(probe_fleet, external_name, k8sdns_record, root_causes, libc):
    """A name outside the cluster resolves through the cluster DNS's upstream, on every node. The
    upstream's SERVFAIL is this check's own subject: only timeouts that the node x replica matrix
    places elsewhere make it point there."""
    name, want = external_name
    runs = _everywhere(probe_fleet, libc, name)
    got = {node: list(r.addresses[0] or ()) for node, r in runs.items()}
    k8sdns_record("addresses", sorted({a for addrs in got.values() for a in addrs}))
    bad = {node: addrs for node, addrs in got.items() if not addrs or (want is not None and want not in addrs)}
    k8sdns_record.add(*node_verdicts(bad, got, {"libc": libc}))
    if bad and all(lookup_spoiled(runs[n], libc) for n in bad):
        causes = root_causes()
        if causes:
            pytest.fail(spoiled_message(f"{libc} getaddrinfo({name})", "on " + ", ".join(bad), "timeouts", causes),
                        pytrace=False)
    others = len(got) - len(bad)
    expect(not bad, f"{libc} getaddrinfo({name})", want or "an address",
           "; ".join(f"{n}: {a or dict(runs[n].errors)}" for n, a in bad.items())
           + (f"; the other {others} node{'s' if others > 1 else ''}: as expected" if others else ""),
           "check the cluster DNS's forward target and that the upstream answers")


def test_headless_srv(probe_pods, coredns, dns_objects, k8sdns_record, root_causes):
    """A headless Service's named port gives one SRV per ready endpoint, its target the pod's own
    name under the Service (h0, h1) and its port the endpoint's; not-ready endpoints have none."""
    svc = dns_objects.fqdn(dns_objects.headless)
    name = f"_http._tcp.{svc}"
    reply = probe_pods["glibc"].query(coredns.provider.cluster_ip, name, rdtype="SRV").replies[0]
    got = sorted((r.target.rstrip("."), r.port) for r in reply.srv())
    want = sorted((f"{h}.{svc}", PORT["targetPort"]) for h in dns_objects.hostnames)
    k8sdns_record("srv", [f"{t}:{p}" for t, p in got])
    answers.reply(reply, probe_pods["glibc"].node, f"{name} SRV", got == want, [f"{t}:{p}" for t, p in want],
                  [f"{t}:{p}" for t, p in got] or reply.rcode, "a headless Service publishes one SRV per ready "
                  "endpoint, targeting <hostname>.<service> (kubernetes/dns specification 2.4.1)", root_causes)


@pytest.mark.k8sdns_check(5)
@pytest.mark.parametrize("libc", LIBCS)
def test_pod_own_names(named_pods, dns_objects, k8sdns_record, libc):
    """A pod with hostname and subdomain finds its own FQDN and hostname through its libc: the
    kubelet writes both into the pod's /etc/hosts (no DNS record exists for them: the pod is not
    behind the headless Service), as the e2e test "/etc/hosts entries for the cluster" asks."""
    pod = named_pods[libc]
    short = pod.spec.hostname
    fqdn = f"{short}.{dns_objects.fqdn(pod.spec.subdomain)}"
    bad = answers.names_in_pod(pod, {fqdn: [pod.pod_ip], short: [pod.pod_ip]}, k8sdns_record)
    expect(not bad, f"{libc} getaddrinfo of the pod's own names in {pod.where}", f"{pod.pod_ip} for {fqdn} and "
           f"{short}", "; ".join(f"{n}: {a}" for n, a in bad.items()),
           "the kubelet writes `<pod IP> <hostname>.<subdomain>.<ns>.svc.<domain> <hostname>` into the pod's "
           "/etc/hosts; a runtime that mounts its own hosts file, or a hostNetwork pod, loses them")


@pytest.mark.k8sdns_check(5)
@pytest.mark.parametrize("libc", LIBCS)
def test_pod_ip_records(probe_fleet, probe_pods, coredns, cluster_domain, k8sdns_settings, k8sdns_record,
                        root_causes, libc):
    """Pod A records, <a-b-c-d>.<ns>.pod.<domain>, as the kubernetes plugin's `pods` option promises
    (or --k8sdns-pod-records pins): insecure and verified answer a pod's IP, through each libc on
    every node; verified answers no address that is not a pod's; disabled answers none."""
    promised = coredns.pod_records(cluster_domain)
    mode = promised if k8sdns_settings.pod_records == "corefile" else k8sdns_settings.pod_records
    k8sdns_record("corefile_pods", promised or "unknown")
    if mode is None:
        pytest.skip("the cluster DNS's Corefile could not be read, so its `pods` promise is unknown: pass "
                    "--k8sdns-pod-records=insecure (or verified, disabled) to say what it must serve")
    if mode == "disabled" and k8sdns_settings.pod_records == "corefile":
        pytest.skip("the Corefile's kubernetes plugin serves no pod A records (`pods disabled`, also its default): "
                    "pass --k8sdns-pod-records=insecure if your workloads use them")
    ns = probe_pods["glibc"].namespace
    ip = probe_pods["glibc"].pod_ip
    said = f"the Corefile says `pods {promised}`" if promised else "the Corefile is unknown"
    name, stranger = (f"{a.replace('.', '-')}.{ns}.pod.{cluster_domain}" for a in (ip, NOT_A_POD))
    want = [] if mode == "disabled" else [ip]
    answers.lookups_everywhere(
        _everywhere(probe_fleet, libc, name), libc, f"{libc} getaddrinfo({name}) (pods {mode}; {said})", want or
        "no address", lambda addrs: addrs == want, "pod A records are what the kubernetes plugin's `pods` option "
        "says; workloads that resolve a-b-c-d.<ns>.pod names break when it is disabled", root_causes, k8sdns_record)
    if mode == "verified":
        answers.lookups_everywhere(
            _everywhere(probe_fleet, libc, stranger), libc, f"{libc} getaddrinfo({stranger}) (pods verified; "
            f"{NOT_A_POD} is no pod's)", "no address", lambda addrs: not addrs, "`pods verified` answers only "
            "addresses of pods in that namespace", root_causes, k8sdns_record)


#: an address no pod has (TEST-NET-1): `pods verified` must not answer it
NOT_A_POD = "192.0.2.1"


@pytest.mark.k8sdns_check(6)
def test_external_name_change(probe_pods, coredns, dns_objects, k8sdns_run, k8sdns_settings, k8sdns_record,
                              root_causes):
    """An ExternalName Service's CNAME follows its target when the target changes, and an A record
    with its new ClusterIP once its type becomes ClusterIP, each within --k8sdns-negative-window-s
    plus --k8sdns-propagation-p99-s: an old answer may be cached for the zone's TTL (kubeadm's `ttl
    30`; NodeLocal DNSCache keeps it as long), and the change must reach the cluster DNS. Then each
    libc resolves it to that ClusterIP."""
    bound = k8sdns_settings.negative_window_s + k8sdns_settings.propagation_p99_s
    pod = probe_pods["glibc"]
    targets = (f"first.{dns_objects.external_target}", f"second.{dns_objects.external_target}")
    fqdn, steps = externalname.follow(k8sdns_run.cluster, dns_objects.namespace, k8sdns_run.run_id, pod,
                                      coredns.provider.cluster_ip, dns_objects.domain, targets,
                                      give_up_s=bound + k8sdns_settings.propagation_p99_s)
    for step in steps:
        k8sdns_record(f"{step.key}_s", "never" if step.seconds is None else step.seconds, "s")
    late = [s for s in steps if s.seconds is None or s.seconds > bound]
    said = "; ".join(f"{s.what}: {'never' if s.seconds is None else f'{s.seconds} s'} (last answer {s.last}"
                     + (f", {s.unanswered} polls unanswered" if s.unanswered else "") + ")" for s in late)
    if late and all(s.unanswered for s in late) and (causes := root_causes()):
        pytest.fail(spoiled_message(f"{fqdn} after each change", f"from {pod.node}", "queries that got no reply",
                                    causes), pytrace=False)
    expect(len(steps) == 3 and not late, f"{fqdn} after each change", f"each state answered within {bound:g} s",
           said, "the cluster DNS must follow Service changes (its API watch, its cache TTL)")
    ip = steps[-1].what.split()[-1]
    for libc, client in probe_pods.items():
        found = client.lookup([fqdn], count=1, family="inet")
        got = list(found.addresses[0] or ())
        if got != [ip] and lookup_spoiled(found, libc) and (causes := root_causes()):
            pytest.fail(spoiled_message(f"{libc} getaddrinfo({fqdn})", f"from {client.node}", "timeouts", causes),
                        pytrace=False)
        expect(got == [ip], f"{libc} getaddrinfo({fqdn}) in {client.where}", [ip], got or "no address",
               "the ClusterIP Service that was an ExternalName must resolve to its ClusterIP")


#: partial SRV names, as the e2e test "partial qualified names for services" asks them with dig +search
SRV_PARTIAL = ["_http._tcp.web", "_http._tcp.web.{ns}.svc", "_http._tcp.hl.{ns}.svc"]


@pytest.mark.parametrize("template", SRV_PARTIAL)
def test_srv_through_search_list(probe_pods, cluster_resolv_conf, cluster_nameserver, dns_objects, k8sdns_record,
                                 root_causes, template):
    """SRV of a partial name through the pod's search list and ndots, as `dig +search` asks it: each
    search candidate in glibc's order, to the pod's nameserver, until one is not NXDOMAIN. That one
    must be the full name _http._tcp.<svc>.<ns>.svc.<domain>, with the Service's SRV records."""
    d = dns_objects
    name = template.format(ns=d.namespace)
    service = name.split(".")[2]
    full = f"_http._tcp.{d.fqdn(service)}."
    pod = probe_pods["glibc"]
    asked: list[str] = []
    for candidate in resolver.search_candidates("glibc", cluster_resolv_conf, name):
        reply = pod.query(cluster_nameserver, candidate, rdtype="SRV").replies[0]
        asked.append(f"{candidate} {reply.rcode or reply.error}")
        if reply.rcode != "NXDOMAIN":
            break
    k8sdns_record("asked", asked)
    got = sorted((r.target.rstrip("."), r.port) for r in reply.srv())
    if service == d.headless:
        want = sorted((f"{h}.{d.fqdn(service)}", PORT["targetPort"]) for h in d.hostnames)
    else:
        want = [(d.fqdn(service), PORT["port"])]
    k8sdns_record("srv", [f"{t}:{p}" for t, p in got])
    answers.reply(reply, pod.node, f"SRV {name} through the search list of {pod.where}",
                  candidate == full and got == want, f"{full} with {[f'{t}:{p}' for t, p in want]}",
                  f"{'; '.join(asked)} -> {[f'{t}:{p}' for t, p in got] or reply.rcode}",
                  "partial Service names must reach their SRV records through the pod's search list (the first "
                  "search path, <ns>.svc.<domain>, or svc.<domain>)", root_causes)
