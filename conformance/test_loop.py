"""Check 13 and Corefile analysis: no forwarding loop, no CrashLoopBackOff, a sane Corefile."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns import corefile, resolvconf
from pytest_k8sdns.verdict.expect import expect

pytestmark = pytest.mark.k8sdns_check(13)


def test_dns_pods_ready(coredns, k8sdns_record):
    """Every pod behind the cluster DNS Service is Ready, none waits in CrashLoopBackOff."""
    pods = coredns.pods()
    k8sdns_record.table("cluster DNS pods", ["pod", "node", "ready", "restarts", "waiting"],
                        [[p.name, p.node, p.ready, p.restarts, p.waiting_reason] for p in pods])
    k8sdns_record("pods", len(pods))
    bad = [f"{p.name} ({p.waiting_reason or 'not Ready'})" for p in pods if not p.ready or p.waiting_reason]
    expect(bool(pods) and not bad, "cluster DNS pods", "all Ready", bad or "no pods",
           "read their logs: a `plugin/loop: Loop` line means the forward target leads back to the cluster DNS")


@pytest.mark.k8sdns_last
def test_no_restarts_during_run(coredns, k8sdns_record):
    """No DNS pod restarted between the start of the run and now; it runs last, so "now" is the end."""
    before = coredns.restarts_at_start
    now = {p.name: p.restarts for p in coredns.pods()}
    grown = {name: (before.get(name), n) for name, n in now.items() if name in before and n > before[name]}
    k8sdns_record("restarts", now)
    expect(not grown, "DNS pod restarts during the run", "none", grown, "a pod that restarts loses its cache and drops queries; read its previous logs")


def test_no_loop_in_logs(coredns, k8sdns_record):
    """Current and previous logs of the DNS pods hold no `plugin/loop: Loop (` line."""
    found = coredns.loop_lines()
    k8sdns_record("loop_lines", found)
    first = next((f"{pod}: {lines[0]}" for pod, lines in found.items()), "")
    expect(not found, "loop plugin log lines", "none", first,
           "the forward target resolves through the cluster DNS itself: forward to the upstream's IPs, or point "
           "kubelet resolvConf at the real upstream file (not a 127.0.0.53 stub)")


def test_ready_endpoint(coredns, probe_pods, k8sdns_record):
    """Each CoreDNS pod answers /ready on :8181 (the ready plugin)."""
    if coredns.provider.implementation != "coredns":
        pytest.skip(f"the cluster DNS is {coredns.provider.implementation}, not CoreDNS: no /ready endpoint")
    rows = []
    for pod in coredns.pods():
        status, _ = probe_pods["glibc"].http_status(f"http://{pod.ip}:8181/ready")
        rows.append([pod.name, status])
    k8sdns_record.table("/ready", ["pod", "status"], rows)
    bad = [r for r in rows if r[1] != 200]
    expect(not bad, "CoreDNS /ready on :8181", "200 from every pod", bad, "a plugin is not ready: read the pod's log")


def test_node_resolv_conf_not_loopback(coredns, default_policy_pods, k8sdns_record):
    """Where CoreDNS forwards to /etc/resolv.conf, no node's resolv.conf names a loopback server."""
    rows, bad = [], []
    for node, pod in sorted(default_policy_pods.items()):
        servers = resolvconf.nameservers_of(pod.info().resolv_conf or "")
        rows.append([node, " ".join(servers)])
        if any(resolvconf.is_loopback(s) for s in servers):
            bad.append(f"{node}: {servers}")
    k8sdns_record.table("dnsPolicy Default resolv.conf per node", ["node", "nameservers"], rows)
    if not corefile.forwards_to_resolv_conf(coredns.corefile() or ""):
        k8sdns_record("forwards_to_resolv_conf", False)
        return
    expect(not bad, "node resolv.conf nameservers seen by dnsPolicy Default pods", "no 127.0.0.0/8 or ::1",
           "; ".join(bad), "CoreDNS inherits these and will loop: set kubelet resolvConf to the real upstream file")


def test_corefile_analysis(coredns, default_policy_pods, cluster_domain, k8sdns_record):
    """The Corefile forwards nowhere that leads back to CoreDNS itself (a loopback port it serves,
    a loopback nameserver of the node's resolv.conf, the cluster DNS Service), caches, and serves
    the cluster domain."""
    text = coredns.corefile()
    if text is None:
        pytest.skip(f"no Corefile ConfigMap found for {coredns.describe()}")
    node_conf = next(iter(default_policy_pods.values())).info().resolv_conf if default_policy_pods else None
    findings = corefile.analyse(text, node_resolv_conf=node_conf, cluster_domain=cluster_domain,
                                cluster_dns_ip=coredns.provider.cluster_ips, coredns_version=coredns.provider.version)
    k8sdns_record.table("Corefile findings", ["code", "severity", "block", "message"],
                        [[f.code, f.severity, f.server_block, f.message] for f in findings])
    k8sdns_record("findings", [f"{f.severity}:{f.code}" for f in findings])
    errors = [f"{f.code}: {f.message}" for f in findings if f.severity == "error"]
    expect(not errors, "Corefile analysis", "no error findings", "; ".join(errors), "fix the Corefile as each finding says")
