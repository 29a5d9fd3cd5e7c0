"""The Corefile analysis on Corefiles that distributions, tools and documentation really ship
(fixtures/corefiles/*.Corefile with a `# source:` line; fixtures/corefiles/EXPECTED.md says what a
correct analysis finds in each, from CoreDNS's documentation and source, and from starting each
file once with CoreDNS 1.14.7). Healthy ones give no error; broken ones exactly their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.dns.corefile import analyse

CORE_FILES = Path(__file__).resolve().parents[2] / "fixtures" / "corefiles"
REAL = sorted(p.name for p in CORE_FILES.glob("*.Corefile") if p.read_text().startswith("# source:"))
VERSION = "1.14.7"
#: the shipped files CoreDNS 1.14.7 refuses or loops on, and the error codes that say why
BROKEN = {
    "coredns-loop-readme.Corefile": {"loopback-upstream"},  # the loop plugin's own example
    "k8s-docs-kubedns-translation.Corefile": {"unknown-directive"},  # federation, gone in 1.7.0
    "kubespray-coredns-external-zones.Corefile": {"bad-value", "rewrite-args"},  # cache 0; `name stop`
    "kubespray-nodelocaldns-external-zones.Corefile": {"bad-value"},  # cache 0
    "minikube-registry-aliases.Corefile": {"unknown-directive", "unknown-property"},  # proxy; upstream
}


def errors(text: str, **kw: str) -> set[str]:
    return {f.code for f in analyse(text, coredns_version=kw.pop("version", VERSION), **kw) if f.severity == "error"}


def test_at_least_twenty_real_corefiles_each_naming_its_source() -> None:
    assert len(REAL) >= 20, REAL
    expected = (CORE_FILES / "EXPECTED.md").read_text()
    assert all(f"`{name}`" in expected for name in REAL), [n for n in REAL if f"`{n}`" not in expected]


@pytest.mark.parametrize("name", REAL)
def test_a_shipped_corefile_is_judged_as_coredns_judges_it(name: str) -> None:
    text = (CORE_FILES / name).read_text()
    assert errors(text) == BROKEN.get(name, set())
    for f in analyse(text, coredns_version=VERSION):
        assert "\n" not in f.message and f"`{f.server_block}`" in f.message


def test_kubespray_external_zones_once_it_starts_is_a_loop_through_the_cluster_dns_ip() -> None:
    """Fixed so that CoreDNS starts (cache 5, `rewrite stop name`), the documented example forwards
    mydomain.tld to kubespray's cluster DNS address, that is to this CoreDNS: a loop, undetected."""
    text = (CORE_FILES / "kubespray-coredns-external-zones.Corefile").read_text()
    fixed = text.replace("cache 0", "cache 5").replace("rewrite name stop", "rewrite stop name")
    assert errors(fixed) == set()  # without the Service address it cannot know
    found = [f for f in analyse(fixed, coredns_version=VERSION, cluster_dns_ip="10.233.0.3") if f.severity == "error"]
    assert {(f.code, f.server_block) for f in found} == {("loopback-upstream", "mydomain.tld"),
                                                        ("no-loop-plugin", "mydomain.tld")}
    # the node cache's copy forwards there too, but it binds only its own address: no loop
    cache = (CORE_FILES / "kubespray-nodelocaldns-external-zones.Corefile").read_text().replace("cache 0", "cache 5")
    assert errors(cache, cluster_dns_ip="10.233.0.3") == set()


def test_removed_plugins_are_no_error_on_the_versions_that_had_them() -> None:
    old = (CORE_FILES / "minikube-registry-aliases.Corefile").read_text()
    assert errors(old, version="1.4.0") == set()
    assert errors((CORE_FILES / "k8s-docs-kubedns-translation.Corefile").read_text(), version="1.6.2") == set()


def test_several_forwards_in_a_block_need_coredns_1_9_4() -> None:
    text = (CORE_FILES / "coredns-forward-multi.Corefile").read_text()
    assert errors(text) == set() and errors(text, version="1.9.3") == {"plugin-twice"}


def test_a_forward_for_a_zone_outside_its_block_is_named() -> None:
    found = analyse((CORE_FILES / "aks-docs-custom-forward.Corefile").read_text(), coredns_version=VERSION)
    assert [(f.code, f.severity) for f in found if f.code == "forward-outside-zone"] == [
        ("forward-outside-zone", "warning")]


def test_pod_records_mode_of_every_real_corefile() -> None:
    """The `pods` promise the pod A records check follows: `insecure` in every distribution's
    default; CoreDNS's own deployment template says nothing, which is `disabled`; a Corefile whose
    kubernetes plugin does not serve the cluster domain (a NodeLocal cache's) has no promise."""
    modes = {p.name: corefile.pod_records_mode(p.read_text()) for p in sorted(CORE_FILES.glob("*.Corefile"))}
    assert modes["coredns-deployment-stubdomains.Corefile"] == "disabled"
    assert modes["kubespray-nodelocaldns.Corefile"] is None and modes["k8s-nodelocaldns.Corefile"] is None
    promised = {n for n, m in modes.items() if m is not None} - {"coredns-deployment-stubdomains.Corefile"}
    assert len(promised) >= 25 and {modes[n] for n in promised} == {"insecure"}, modes


def test_pod_records_mode_follows_the_block_that_serves_the_domain() -> None:
    text = ("cluster.local:53 {\n  kubernetes cluster.local {\n    pods insecure\n    pods verified\n  }\n}\n"
            ".:53 {\n  kubernetes other.local {\n    pods disabled\n  }\n  forward . 192.0.2.53\n}\n")
    assert corefile.pod_records_mode(text, "cluster.local") == "verified"  # the last `pods` line wins
    assert corefile.pod_records_mode(text, "other.local") == "disabled"
    assert corefile.pod_records_mode(text, "k8sdns-none.local") is None
