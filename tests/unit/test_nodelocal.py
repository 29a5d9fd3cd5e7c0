"""The NodeLocal manifest and its guards: every placeholder filled, the checks' Corefile facts,
and no write to a cluster the plugin did not create."""

from __future__ import annotations

import types

import pytest

from pytest_k8sdns.config import DEFAULT_NODELOCAL_IMAGE, resolve
from pytest_k8sdns.dns import corefile
from pytest_k8sdns.dns.nodelocal import (
    NODELOCAL_LABEL,
    bound_addresses,
    cluster_upstream,
    denial_ttl,
)
from pytest_k8sdns.dns.nodelocal_deploy import (
    _template,
    deploy_nodelocal,
    remove_nodelocal,
    render_nodelocal,
)
from pytest_k8sdns.errors import ClusterError, ConfigError

FACTS = {"image": "k8sdns/node-cache:test", "local_ip": "169.254.20.10", "dns_server": "10.96.0.10",
         "domain": "cluster.local", "cluster_dns": "10.96.7.7", "upstream": "172.18.0.9"}


def _docs() -> dict[str, dict]:
    return {d["kind"]: d for d in render_nodelocal(_template(), **FACTS)}


def test_template_has_upstreams_placeholders() -> None:
    text = _template()
    for word in ("__PILLAR__DNS__SERVER__", "__PILLAR__LOCAL__DNS__", "__PILLAR__DNS__DOMAIN__",
                 "__PILLAR__CLUSTER__DNS__", "__PILLAR__UPSTREAM__SERVERS__", "__K8SDNS__NODECACHE__IMAGE__"):
        assert word in text


def test_render_fills_everything() -> None:
    docs = _docs()
    assert set(docs) == {"Service", "ConfigMap", "DaemonSet"}
    assert all(d["metadata"]["namespace"] == "kube-system" for d in docs.values())
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pytest-k8sdns" for d in docs.values())
    ds = docs["DaemonSet"]
    assert ds["metadata"]["name"] == "node-local-dns"
    assert NODELOCAL_LABEL == "k8s-app=" + ds["spec"]["template"]["metadata"]["labels"]["k8s-app"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] and pod["dnsPolicy"] == "Default"
    container = pod["containers"][0]
    assert container["image"] == FACTS["image"]
    assert "NET_ADMIN" in container["securityContext"]["capabilities"]["add"]
    assert "-localip=169.254.20.10,10.96.0.10" in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"host": "169.254.20.10", "path": "/health", "port": 8080}
    assert docs["Service"]["metadata"]["name"] == "kube-dns-upstream"
    assert docs["Service"]["spec"]["selector"] == {"k8s-app": "kube-dns"}


def test_corefile_is_what_the_reference_describes() -> None:
    text = _docs()["ConfigMap"]["data"]["Corefile"]
    blocks = {b.label: b for b in corefile.parse(text)}
    zone = blocks["cluster.local:53"]
    assert zone.find("bind")[0].args == ["169.254.20.10", "10.96.0.10"]
    assert zone.find("forward")[0].args == [".", "10.96.7.7"] and zone.find("forward")[0].has("force_tcp")
    assert zone.find("health")[0].args == ["169.254.20.10:8080"] and zone.has("loop")
    assert all(b.find("prometheus")[0].args == [":9253"] for b in blocks.values())
    assert blocks["in-addr.arpa:53 ip6.arpa:53"].find("forward")[0].has("force_tcp")
    assert blocks[".:53"].find("forward")[0].args == [".", "172.18.0.9"]
    assert denial_ttl(text, "cluster.local") == 5
    assert corefile.analyse(text, cluster_domain="cluster.local") == []


def test_a_left_placeholder_is_an_error() -> None:
    with pytest.raises(ClusterError, match="still holds __PILLAR__NEW__"):
        render_nodelocal(_template() + "\n---\n{kind: X, value: __PILLAR__NEW__}\n", **FACTS)


def test_the_caches_upstream_for_the_cluster_zone_is_where_coredns_is_asked_directly() -> None:
    text = _docs()["ConfigMap"]["data"]["Corefile"]
    assert bound_addresses(text)[:2] == ["169.254.20.10", "10.96.0.10"]
    assert cluster_upstream(text, "cluster.local", bound_addresses(text)) == "10.96.7.7"
    # a cache that forwards the zone to an address it holds itself names no way around it
    own = text.replace("10.96.7.7", "dns://10.96.0.10:53")
    assert cluster_upstream(own, "cluster.local.", bound_addresses(own)) is None
    assert cluster_upstream(None, "cluster.local") is None


def test_denial_ttl_unknown() -> None:
    assert denial_ttl(None, "cluster.local") is None
    assert denial_ttl(".:53 {\n cache 30\n}\n", "cluster.local") is None


@pytest.mark.parametrize("action", [lambda c: deploy_nodelocal(c, "img"), remove_nodelocal])
def test_refuses_clusters_it_did_not_create(action) -> None:
    cluster = types.SimpleNamespace(created=False, context="prod", server="https://10.0.0.1:6443")
    with pytest.raises(ClusterError) as err:
        action(cluster)
    message = str(err.value)
    assert "refusing" in message and "prod" in message and "--k8sdns-kind" in message and "\n" not in message


def test_options() -> None:
    s = resolve({"kind": True, "kind_nodelocal": True}, lambda name: "")
    assert s.kind_nodelocal and s.nodelocal_image == DEFAULT_NODELOCAL_IMAGE
    assert resolve({"nodelocal_image": "x:1"}, lambda name: "").nodelocal_image == "x:1"
    with pytest.raises(ConfigError, match="add --k8sdns-kind"):
        resolve({"kind_nodelocal": True, "context": "prod"}, lambda name: "")


def test_default_image_is_what_substrate_builds() -> None:
    from pathlib import Path

    env = Path(__file__).resolve().parents[2] / "substrate" / "versions.env"
    version = next(line.split("=", 1)[1].strip() for line in env.read_text().splitlines()
                   if line.startswith("NODECACHE_VERSION="))
    assert DEFAULT_NODELOCAL_IMAGE == f"k8sdns/node-cache:{version}"
