"""Checks 1, 7 and 12: resolv.conf shape, dnsConfig, and the queries each libc sends per lookup."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns import resolvconf, resolver
from pytest_k8sdns.dns.coredns import NODELOCAL_IP
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.probe.pods import LIBCS
from pytest_k8sdns.verdict import answers
from pytest_k8sdns.verdict.expect import expect
from pytest_k8sdns.verdict.rootcause import spoiled_message

#: short, dotted, dotted-but-divergent (exists only under a search domain), external, absolute
NAMES = ["web", "kubernetes.default", "web.{ns}.svc", "{external}", "kubernetes.default.svc.{domain}."]


@pytest.mark.k8sdns_check(1)
@pytest.mark.parametrize("libc", LIBCS)
def test_resolv_conf_shape(probe_pods, coredns, k8sdns_namespace, cluster_domain, k8sdns_record, libc):
    """A ClusterFirst pod gets the cluster DNS as nameserver, the namespace search list and ndots:5."""
    text = probe_pods[libc].info().resolv_conf or ""
    conf = resolvconf.parse_resolv_conf(text, libc)
    k8sdns_record("resolv_conf", text)
    allowed = [coredns.provider.cluster_ip, NODELOCAL_IP]
    expect(bool(conf.nameservers) and conf.nameservers[0] in allowed, f"{libc} pod nameserver", allowed,
           conf.nameservers, "kubelet --cluster-dns must name the cluster DNS Service (or NodeLocal's 169.254.20.10)")
    want = [f"{k8sdns_namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
    expect(list(conf.search[:3]) == want, f"{libc} pod search list as {libc} reads it", want, list(conf.search),
           "a search line of 255 bytes or more is ignored by musl: shorten the node's search domains")
    expect(conf.ndots == 5, f"{libc} pod ndots", 5, conf.ndots, "kubelet writes options ndots:5 for ClusterFirst pods")


@pytest.mark.k8sdns_check(7)
@pytest.mark.parametrize("ndots", [5, 2])
@pytest.mark.parametrize("libc", LIBCS)
def test_dns_config_applied(capture_pods, cluster_resolv_conf, k8sdns_record, libc, ndots):
    """dnsPolicy None with dnsConfig: the nameserver, search list and ndots given appear in the pod."""
    text = capture_pods[(libc, ndots)].info().resolv_conf or ""
    conf = resolvconf.parse_resolv_conf(text, libc)
    want_search = resolvconf.parse_resolv_conf(cluster_resolv_conf).search
    k8sdns_record("resolv_conf", text)
    expect(conf.nameservers == ["127.0.0.1"] and conf.search == want_search and conf.ndots == ndots,
           f"{libc} dnsConfig pod resolv.conf", f"nameserver 127.0.0.1, search {want_search}, ndots {ndots}",
           f"nameserver {conf.nameservers}, search {conf.search}, ndots {conf.ndots}",
           "kubelet must write dnsConfig for dnsPolicy None pods as given")


@pytest.mark.k8sdns_check(7)
@pytest.mark.parametrize("libc", LIBCS)
def test_dns_config_nameserver_pod(nameserver_pod, nameserver_clients, k8sdns_record, libc):
    """dnsPolicy None with dnsConfig nameservers [a DNS server pod's IP] and one search domain (the
    e2e [Conformance] test "configurable pod DNS nameservers"): the pod's resolv.conf names that pod
    as its libc reads it, and getaddrinfo gets the server's answer for the test name and, through
    the search domain, for its first label."""
    server, pod = nameserver_pod, nameserver_clients[libc]
    text = pod.info().resolv_conf or ""
    conf = resolvconf.parse_resolv_conf(text, libc)
    k8sdns_record("resolv_conf", text)
    expect(conf.nameservers == [server.ip] and list(conf.search) == [server.search],
           f"{libc} resolv.conf of dnsPolicy None {pod.where}", f"nameserver {server.ip} (the DNS server pod "
           f"{server.pod.name}), search {server.search}", f"nameservers {conf.nameservers}, search {list(conf.search)}",
           "kubelet must write dnsConfig.nameservers and searches for dnsPolicy None pods as given")
    short = server.name.split(".", 1)[0]
    names = {server.name: [server.address], short: [server.address]}
    bad = answers.names_in_pod(pod, names, k8sdns_record)
    heard = server.heard_from(pod.pod_ip)
    k8sdns_record("server_queries", len(heard), "")
    k8sdns_record.table(f"{libc} queries the DNS server pod answered", ["name", "type", "proto", "outcome"],
                        [[q["qname"], q["qtype"], q["proto"], q["outcome"]] for q in heard])
    said = "; ".join(f"{n}: {a}" for n, a in bad.items())
    expect(not bad, f"{libc} getaddrinfo through the DNS server pod {server.ip} in {pod.where}", names,
           f"{said} (the server pod heard {len(heard)} queries from this pod)",
           "a pod must reach the nameserver its dnsConfig names: look for a NetworkPolicy or node firewall that "
           "allows DNS only to the cluster DNS" if not heard else "the libc must use the server's answers")


#: Seconds after which the capturing forwarder sends an unanswered query to the cluster DNS again:
#: well under each libc's first retry (glibc 5 s, musl 2.5 s, also 1 s with `options timeout:1`).
RESEND_S = 0.2


@pytest.mark.k8sdns_check(12)
@pytest.mark.parametrize("ndots", [5, 2])
@pytest.mark.parametrize("libc", LIBCS)
def test_queries_per_lookup(capture_pods, coredns, k8sdns_namespace, cluster_domain, external_name, k8sdns_record,
                            root_causes, libc, ndots):
    """The names each lookup sends, in order, match the libc's documented search rules."""
    pod = capture_pods[(libc, ndots)]
    names = [n.format(ns=k8sdns_namespace, domain=cluster_domain, external=external_name[0]) for n in NAMES]
    text = pod.info().resolv_conf or ""
    # the forwarder resends a query its upstream has not answered in RESEND_S, so that a query lost
    # on the way to the cluster DNS does not make the libc retry and change the names it sends
    result = pod.capture([coredns.provider.cluster_ip], names, resend_s=RESEND_S)
    k8sdns_record("upstream_resends", result.resent)
    rows, wrong, spoiled = [], [], []
    for lookup in result.lookups:
        existing = {q.qname for q in lookup.queries if q.rcode == "NOERROR"}
        predicted = resolver.expected_queries(libc, text, lookup.name, existing)
        seen = list(lookup.qnames)
        types = sorted({q.qtype for q in lookup.queries})
        rows.append([lookup.name, len(lookup.queries), " ".join(seen), " ".join(predicted), "ok" if lookup.ok else lookup.error])
        lost = [q.qname for q in lookup.queries if q.rcode in (None, "SERVFAIL")]
        if seen != predicted and lost:
            # a query of the sequence got no answer (or SERVFAIL): the libc retried or moved on, so the
            # sequence says nothing about its search rules
            spoiled.append(f"{lookup.name}: {len(lost)} queries without an answer ({', '.join(lost[:3])})")
        elif seen != predicted:
            wrong.append(f"{lookup.name}: sent {seen}, rules say {predicted}")
        elif seen and types != ["A", "AAAA"]:
            wrong.append(f"{lookup.name}: query types {types}, expected A and AAAA per name")
    k8sdns_record.table(f"{libc} ndots:{ndots} queries per lookup",
                        ["name", "queries", "names sent", "names predicted", "outcome"], rows)
    for row in rows:
        k8sdns_record(f"queries[{row[0]}]", row[1], quantity=Q.QUERIES_PER_LOOKUP,
                      entity={"libc": libc, "ndots": ndots, "name": row[0]})
    k8sdns_record("divergences", resolver.divergences(text, names))
    what = f"{libc} queries per lookup under ndots:{ndots}"
    if spoiled and not wrong:
        pytest.fail(spoiled_message(what, f"on {pod.node} ({'; '.join(spoiled)})", "unanswered queries", root_causes()),
                    pytrace=False)
    expect(not wrong, what, "the libc's search rules",
           "; ".join(wrong) + (f"; spoiled by unanswered queries: {'; '.join(spoiled)}" if spoiled else ""),
           f"this {libc} does not follow its documented search-list behaviour")


@pytest.mark.k8sdns_check(7)
@pytest.mark.parametrize("libc", LIBCS)
def test_long_search_list(long_search_pods, dns_objects, kubernetes_service_ip, k8sdns_settings, k8sdns_record, libc):
    """ClusterFirst with dnsConfig adding 7 search paths (10 in all, over 256 characters): the
    kubelet writes them all (Kubernetes allows 32 and 2048 characters), and getaddrinfo finds
    `kubernetes.default` through the first and the headless pod `h0` only through the last. glibc
    (2.26 and later) reads them all; musl ignores a search line of 255 bytes or more: a client
    finding for the workloads on it, a failure only under --k8sdns-strict-clients."""
    pod = long_search_pods[libc]
    text = pod.info().resolv_conf or ""
    want = [*long_search_pods["glibc"].spec.dns_config["searches"]]
    written = list(resolvconf.parse_resolv_conf(text, "glibc").search)
    line = next((ln for ln in text.splitlines() if ln.startswith("search")), "")
    k8sdns_record("search_paths", len(written), "")
    k8sdns_record("search_line_bytes", len(line), "")
    # the kubelet writes the cluster's three paths, the node's own search domains, then dnsConfig's
    cluster = [f"{dns_objects.namespace}.svc.{dns_objects.domain}", f"svc.{dns_objects.domain}", dns_objects.domain]
    expect(written[:3] == cluster and written[-len(want):] == want, f"search list the kubelet wrote into "
           f"{pod.where}", f"the cluster's 3 paths, the node's, then these {len(want)}: {' '.join(want)}",
           line or "no search line",
           "the kubelet must write every dnsConfig search path (up to 32 and 2048 characters since Kubernetes 1.28)")
    names = {dns_objects.hostname: [dns_objects.hostname_ip], "kubernetes.default": [kubernetes_service_ip]}
    bad = answers.names_in_pod(pod, names, k8sdns_record)
    if not bad:
        return
    said = "; ".join(f"{n}: {a}" for n, a in bad.items())
    read = resolvconf.parse_resolv_conf(text, libc).search
    if read == written:  # the libc read every path, so the cluster answered wrong
        expect(False, f"{libc} getaddrinfo through a search list of {len(written)} paths in {pod.where}",
               {n: a for n, a in names.items()}, said, "names under the cluster's search paths must resolve")
    finding = (f"{libc} reads {len(read)} of the {len(written)} search paths the kubelet wrote ({len(line)}-byte "
               f"search line), so {said}: musl ignores a resolv.conf line of 255 bytes or more. Workloads on it "
               f"cannot use such a dnsConfig; fix: shorter or fewer search paths (under 255 bytes in all)")
    k8sdns_record("client_finding", finding)
    expect(not k8sdns_settings.strict_clients, f"{libc} getaddrinfo through a long search list",
           "every name (--k8sdns-strict-clients)", finding, "")


@pytest.mark.k8sdns_check(1)
@pytest.mark.parametrize("libc", LIBCS)
def test_host_network_pods(host_network_pods, coredns, dns_objects, kubernetes_service_ip, k8sdns_record, libc):
    """A hostNetwork pod with dnsPolicy ClusterFirstWithHostNet gets the cluster's resolv.conf, not
    the node's, and resolves partial Service names through its libc (the e2e test "partial
    qualified names for services on hostNetwork pods with dnsPolicy: ClusterFirstWithHostNet")."""
    pod = host_network_pods[libc]
    text = pod.info().resolv_conf or ""
    conf = resolvconf.parse_resolv_conf(text, libc)
    k8sdns_record("resolv_conf", text)
    allowed = [coredns.provider.cluster_ip, NODELOCAL_IP]
    ns, domain = dns_objects.namespace, dns_objects.domain
    expect(bool(conf.nameservers) and conf.nameservers[0] in allowed
           and list(conf.search[:3]) == [f"{ns}.svc.{domain}", f"svc.{domain}", domain],
           f"{libc} hostNetwork pod's resolv.conf as {libc} reads it", f"nameserver one of {allowed}, search "
           f"{ns}.svc.{domain} svc.{domain} {domain}", f"nameservers {conf.nameservers}, search {list(conf.search)}",
           "kubelet gives ClusterFirstWithHostNet pods the cluster DNS; `Default` would give them the node's")
    names = {f"{dns_objects.service}.{ns}": [dns_objects.service_ip], "kubernetes.default": [kubernetes_service_ip]}
    bad = answers.names_in_pod(pod, names, k8sdns_record)
    expect(not bad, f"{libc} getaddrinfo of partial names in hostNetwork {pod.where}", names,
           "; ".join(f"{n}: {a}" for n, a in bad.items()), "the cluster's search list must reach hostNetwork pods "
           "of dnsPolicy ClusterFirstWithHostNet")


@pytest.mark.k8sdns_check(7)
@pytest.mark.parametrize("libc", LIBCS)
def test_search_path_underscore_and_dot(underscore_search_pods, dns_objects, kubernetes_service_ip, k8sdns_record,
                                        libc):
    """dnsPolicy None with a search path of underscore labels and one of "." (the e2e test "a search
    path containing an underscore and a search path with a single dot"): the kubelet writes them as
    given, and the short Service name and kubernetes.default resolve through each libc. Neither libc
    refuses the underscore: both ask `<name>._sip._tcp.abc_d.<ns>.svc.<domain>` first, get NXDOMAIN
    from the kubernetes plugin, and go on. glibc asks the name itself where "." stands (res_search's
    root entry); musl skips "." (res_mkquery refuses the doubled final dot) and asks it last."""
    pod = underscore_search_pods[libc]
    text = pod.info().resolv_conf or ""
    want = list(pod.spec.dns_config["searches"])
    read = list(resolvconf.parse_resolv_conf(text, libc).search)
    k8sdns_record("resolv_conf", text)
    expect(read == want, f"search list of {pod.where} as {libc} reads it", want, read,
           "the kubelet must write dnsConfig search paths as given, underscores and \".\" included (Kubernetes "
           "1.33 and later admit them)")
    names = {dns_objects.service: [dns_objects.service_ip], "kubernetes.default": [kubernetes_service_ip]}
    for name in names:  # the names this libc asks, in order, if each is NXDOMAIN: where the two part ways
        k8sdns_record(f"candidates[{name}]", resolver.search_candidates(libc, text, name))
    bad = answers.names_in_pod(pod, names, k8sdns_record)
    expect(not bad, f"{libc} getaddrinfo through a search list with {want[0]} and \".\" in {pod.where}", names,
           "; ".join(f"{n}: {a}" for n, a in bad.items()), "the cluster DNS must answer names with underscore "
           "labels (NXDOMAIN, not REFUSED or SERVFAIL) so that the search goes on to the next path")
