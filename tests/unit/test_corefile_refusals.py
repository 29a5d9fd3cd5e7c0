"""Corefiles CoreDNS refuses to start with (its setup code, v1.14): each is an error that quotes
CoreDNS and names the fix; what depends on the version is dated by it."""

from __future__ import annotations

import pytest

from pytest_k8sdns.dns.corefile import analyse
from pytest_k8sdns.dns.corefile.refusals import parse_version

BASE = ".:53 {{\n  errors\n  health {{\n    lameduck 5s\n  }}\n  ready\n  kubernetes cluster.local {{\n{k8s}  }}\n" \
       "  prometheus :9153\n  forward . 10.0.0.2\n  cache 30\n  loop\n  reload\n{extra}}}\n"


def corefile(extra: str = "", k8s: str = "") -> str:
    return BASE.format(extra=extra, k8s=k8s)


def refused(text: str, version: str | None = "1.12.1") -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in analyse(text, coredns_version=version)]


def test_the_base_corefile_starts() -> None:
    assert refused(corefile()) == []


@pytest.mark.parametrize(("text", "code", "quoted"), [
    (corefile() + ".:53 {\n  forward . 10.0.0.3\n  cache 30\n}\n", "duplicate-zone", "it is already defined"),
    (corefile() + ".:53 {\n  bind 10.0.0.10\n  forward . 10.0.0.3\n  cache 30\n}\n", "zone-overlap",
     "zone overlap listener capacity"),
    (corefile("  cache 60\n"), "plugin-twice", "can only be used once per Server Block"),
    (corefile(k8s="    pods insecurely\n"), "bad-value", "wrong value for pods"),
    (corefile(k8s="    ttl 30s\n"), "bad-value", "[0, 3600]"),
    (corefile(k8s="    podz insecure\n"), "unknown-property", "unknown property 'podz'"),
    (corefile("  forward .\n"), "forward-args", "Wrong argument count"),
    (corefile("  forward example.org " + " ".join(f"10.0.1.{i}" for i in range(16)) + "\n"), "forward-args",
     "more than 15 TOs"),
    (corefile("  forward example.org grpc://10.0.0.9\n"), "forward-args", "not supported as a destination protocol"),
    (corefile().replace("lameduck 5s", "lameduck 5"), "duration-without-unit", "missing unit in duration"),
    (corefile().replace("  reload\n", "  reload 30\n"), "duration-without-unit", "missing unit in duration"),
    (corefile().replace("prometheus :9153", "prometheus 9153"), "address-without-port", "missing port in address"),
    (corefile().replace("cache 30", "cache 0"), "bad-value", "can not be zero or negative"),
    (corefile("  rewrite name stop a.example b.example\n"), "rewrite-args", "received: stop"),
    (corefile("  rewrite name a.example\n"), "rewrite-args", "too few arguments for a name rule"),
])
def test_each_refusal_is_an_error_that_quotes_coredns(text: str, code: str, quoted: str) -> None:
    findings = [f for f in analyse(text, coredns_version="1.12.1") if f.code == code]
    assert findings and findings[0].severity == "error", analyse(text)
    assert quoted in findings[0].message and "refuses to start" in findings[0].message


def test_removed_options_and_plugins_are_dated_by_the_version() -> None:
    old = corefile(k8s="    upstream\n")
    assert ("unknown-property", "error") in refused(old, "v1.11.1")
    assert ("unknown-property", "warning") in refused(old, None)  # unknown: said, not failed
    assert refused(old, "1.6.7") == []  # it still had it
    proxy = corefile().replace("forward . 10.0.0.2", "proxy . 10.0.0.2")
    assert ("unknown-directive", "error") in refused(proxy, "1.8.0") and refused(proxy, "1.4.0") == []


def test_a_plugin_outside_the_default_build_is_a_warning() -> None:
    # custom builds ship their own (k8s_gateway, OpenShift's operator plugins): not failed
    assert refused(corefile("  k8s_gateway example.com\n")) == [("unknown-directive", "warning")]


def test_cache_with_a_unit_is_read_as_a_zone() -> None:
    assert refused(corefile().replace("cache 30", "cache 30s")) == [("cache-zone", "warning")]


def test_versions_are_read_from_image_tags() -> None:
    assert parse_version("v1.11.1") == (1, 11, 1) and parse_version("1.12.1-eksbuild.3") == (1, 12, 1)
    assert parse_version("latest") is None and parse_version(None) is None
