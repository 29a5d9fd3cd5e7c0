"""Corefile parsing, the analyser's findings, and the editor."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_k8sdns.dns import corefile
from pytest_k8sdns.dns.corefile import (
    Finding,
    ServerBlock,
    analyse,
    is_placeholder,
    parse,
    split_key,
)
from pytest_k8sdns.dns.nodelocal import denial_ttl
from pytest_k8sdns.errors import ConfigError

CORE_FILES = Path(__file__).resolve().parents[2] / "fixtures" / "corefiles"


def sample(name: str) -> str:
    return (CORE_FILES / name).read_text()


def codes(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.code, f.severity, f.server_block) for f in findings]


# -- parsing ------------------------------------------------------------------------------


def test_parse_kubeadm_default() -> None:
    (block,) = parse(sample("kubeadm.Corefile"))
    assert isinstance(block, ServerBlock)
    assert block.keys == [".:53"]
    assert block.zones == ["."]
    assert [d.name for d in block.directives] == [
        "errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload", "loadbalance",
    ]
    (k8s,) = block.find("kubernetes")
    assert k8s.args == ["cluster.local", "in-addr.arpa", "ip6.arpa"]
    assert [(d.name, d.args) for d in k8s.block] == [
        ("pods", ["insecure"]), ("fallthrough", ["in-addr.arpa", "ip6.arpa"]), ("ttl", ["30"]),
    ]
    (fwd,) = block.find("forward")
    assert fwd.args == [".", "/etc/resolv.conf"]
    assert fwd.find("max_concurrent")[0].args == ["1000"]
    assert block.find("health")[0].block[0].args == ["5s"]
    assert k8s.line == 8


@pytest.mark.parametrize(
    ("key", "zone", "port"),
    [
        (".:53", ".", "53"),
        (".", ".", "53"),
        ("dns://.:53", ".", "53"),
        ("cluster.local:53", "cluster.local.", "53"),
        ("Cluster.Local.", "cluster.local.", "53"),
        ("tls://example.org", "example.org.", "853"),
        ("in-addr.arpa:5353", "in-addr.arpa.", "5353"),
    ],
)
def test_split_key(key: str, zone: str, port: str) -> None:
    assert split_key(key) == (zone, port)


def test_several_keys_on_one_line_and_brace_on_the_next() -> None:
    text = "cluster.local in-addr.arpa ip6.arpa {\n  kubernetes\n}\nexample.org:53,\n  example.net:53\n{\n  whoami\n}\n"
    first, second = parse(text)
    assert first.keys == ["cluster.local", "in-addr.arpa", "ip6.arpa"]
    assert first.label == "cluster.local in-addr.arpa ip6.arpa"
    assert second.keys == ["example.org:53", "example.net:53"]
    assert [d.name for d in second.directives] == ["whoami"]


def test_comments_quotes_and_one_line_nested_blocks() -> None:
    text = (
        "# leading comment\n"
        ".:53 { # after the brace\n"
        '  log . "{remote} - {type} {name}" # the format is one word\n'
        '  template IN TXT { answer "{{ .Name }} 60 IN TXT \\"quoted\\"" }\n'
        "  cache 30#glued comment\n"
        "  forward . 10.0.0.53 10.0.0.54 { force_tcp }\n"
        "}\n"
    )
    (block,) = parse(text)
    log, template, cache, forward = block.directives
    assert log.args == [".", "{remote} - {type} {name}"]
    assert template.block[0].args == ['{{ .Name }} 60 IN TXT "quoted"']
    assert cache.args == ["30"]
    assert forward.args == [".", "10.0.0.53", "10.0.0.54"]
    assert forward.has("force_tcp")


def test_multiline_cache_block() -> None:
    (block,) = parse("cluster.local:53 {\n    cache {\n        success 9984 30\n        denial 9984 5\n    }\n}\n")
    (cache,) = block.find("cache")
    assert cache.args == []
    assert [(d.name, d.args) for d in cache.block] == [("success", ["9984", "30"]), ("denial", ["9984", "5"])]


def test_snippets_are_expanded_and_not_blocks() -> None:
    blocks = parse(sample("k3s-like.Corefile"))
    assert [b.keys for b in blocks] == [[".:53"]]
    names = [d.name for d in blocks[0].directives]
    assert names[:4] == ["errors", "health", "ready", "kubernetes"]
    assert names[-1] == "import"
    assert blocks[0].find("import")[0].args == ["/etc/coredns/custom/*.override"]
    assert blocks[0].find("hosts")[0].args == ["/etc/coredns/NodeHosts"]


def test_snippet_inside_a_nested_block_and_snippet_chains() -> None:
    text = "(fall) {\n  fallthrough in-addr.arpa\n}\n(both) {\n  import fall\n  ttl 5\n}\n"
    text += ".:53 {\n  kubernetes cluster.local {\n    pods verified\n    import both\n  }\n  loop\n}\n"
    (block,) = parse(text)
    k8s = block.find("kubernetes")[0]
    assert [(d.name, d.args) for d in k8s.block] == [
        ("pods", ["verified"]), ("fallthrough", ["in-addr.arpa"]), ("ttl", ["5"]),
    ]
    assert [d.name for d in block.directives] == ["kubernetes", "loop"]


def test_given_import_files_are_spliced() -> None:
    imports = {
        "custom/log.override": "log\nerrors\n",
        "custom/zz.override": "rewrite name foo.example bar.example\n",
        "custom/example.server": "example.com:53 {\n  forward . 10.0.0.53\n}\n",
    }
    main, extra = parse(sample("aks-like.Corefile"), imports)
    assert [d.name for d in main.directives][-3:] == ["log", "errors", "rewrite"]
    assert extra.keys == ["example.com:53"]
    assert extra.find("forward")[0].args == [".", "10.0.0.53"]


def test_placeholders_are_kept_verbatim() -> None:
    text = ".:{$PORT:53} {\n  forward . {$UPSTREAM} {%WIN%}\n  bind __PILLAR__LOCAL__DNS__\n}\n"
    (block,) = parse(text)
    assert block.keys == [".:{$PORT:53}"]
    assert block.find("forward")[0].args == [".", "{$UPSTREAM}", "{%WIN%}"]
    assert block.find("bind")[0].args == ["__PILLAR__LOCAL__DNS__"]
    assert all(is_placeholder(w) for w in ("{$UPSTREAM}", "{%WIN%}", "__PILLAR__DNS__SERVER__", "{$A:b}"))
    assert not is_placeholder("10.0.0.10")


def test_nodelocal_template_parses() -> None:
    blocks = parse(sample("nodelocal-template.Corefile"))
    assert [b.label for b in blocks] == ["__PILLAR__DNS__DOMAIN__:53", "in-addr.arpa:53", "ip6.arpa:53", ".:53"]
    cluster = blocks[0]
    assert cluster.find("bind")[0].args == ["__PILLAR__LOCAL__DNS__", "__PILLAR__DNS__SERVER__"]
    assert cluster.find("forward")[0].has("force_tcp")
    assert not blocks[3].find("forward")[0].has("force_tcp")


def test_single_block_without_braces() -> None:
    (block,) = parse(".:53\nforward . 10.0.0.53\ncache\n")
    assert block.keys == [".:53"]
    assert [d.name for d in block.directives] == ["forward", "cache"]


def test_empty_corefile() -> None:
    assert parse("# nothing here\n\n") == []


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (".:53 {\n  errors\n  forward . 10.0.0.1 {\n    force_tcp\n}\n", 1, "never closed"),
        (".:53 {\n  kubernetes cluster.local {\n    pods insecure\n", 2, "never closed"),
        (".:53 {\n  errors\n}\n}\n", 4, "no matching"),
        ("}\n", 1, "no matching"),
        ("{\n  errors\n}\n", 1, "no key"),
        (".:53 {\n  log . \"unterminated\n}\n", 2, "quoted string"),
        ("(s) {\n  errors\n}\n(s) {\n  log\n}\n", 4, "declared twice"),
        (".:53 {\n  import\n}\n", 2, "needs a snippet"),
        (".:53 {\n  forward . 10.0.0.1\n  {\n  force_tcp\n  }\n}\n", 3, "must be on the line"),
        ("(s) {\n  import s\n}\n.:53 {\n  import s\n}\n", 2, "without end"),
        ("(s) {\n  errors\n", 1, "never closed"),
        (".:53,\n", 1, "ends with ','"),
    ],
)
def test_malformed_corefiles(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"Corefile line {line}:")
    assert words in message
    assert "\n" not in message
    with pytest.raises(ConfigError):
        analyse(text)


# -- analysis -----------------------------------------------------------------------------

LOOPBACK_NODE = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.internal\n"
REAL_NODE = "nameserver 10.0.0.2\nnameserver 10.0.0.3\n"


@pytest.mark.parametrize(
    ("name", "node", "expected"),
    [
        ("kubeadm.Corefile", None, [("forward-resolv-conf", "warning", ".:53")]),
        ("kubeadm.Corefile", REAL_NODE, [("forward-resolv-conf", "warning", ".:53")]),
        (
            "kubeadm.Corefile",
            LOOPBACK_NODE,
            [("loopback-upstream", "error", ".:53"), ("forward-resolv-conf", "error", ".:53")],
        ),
        ("aks-like.Corefile", None, [("forward-resolv-conf", "warning", ".:53")]),
        ("k3s-like.Corefile", None, [("forward-resolv-conf", "warning", ".:53")]),
        (
            "loop-localhost.Corefile",
            None,
            [("loopback-upstream", "error", ".:53"), ("no-loop-plugin", "error", ".:53")],
        ),
        ("nodelocal-template.Corefile", LOOPBACK_NODE, []),
    ],
)
def test_sample_corefiles(name: str, node: str | None, expected: list[tuple[str, str, str]]) -> None:
    findings = analyse(sample(name), node_resolv_conf=node)
    assert codes(findings) == expected
    for f in findings:
        assert "\n" not in f.message
        assert f"`{f.server_block}`" in f.message


def test_loopback_through_resolv_conf_message_names_the_server_and_the_fix() -> None:
    (loop, _) = analyse(sample("kubeadm.Corefile"), node_resolv_conf=LOOPBACK_NODE)
    assert "127.0.0.53" in loop.message
    assert "point kubelet resolvConf at the real upstream file" in loop.message


@pytest.mark.parametrize(
    ("target", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("127.0.0.1:53", True),
        ("dns://127.0.0.1:53", True),
        ("127.1.2.3:53", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]:53", True),
        ("10.96.0.10", False),
        ("dns://8.8.8.8:53", False),
        ("[2001:db8::1]:53", False),
        ("/etc/resolv.conf.upstream", False),
        ("{$UPSTREAM}", False),
    ],
)
def test_loopback_forward_targets(target: str, loopback: bool) -> None:
    text = f".:53 {{\n  forward . 10.0.0.9 {target}\n  cache 30\n  loop\n}}\n"
    found = codes(analyse(text))
    assert found == ([("loopback-upstream", "error", ".:53")] if loopback else [])


def test_old_proxy_plugin_counts_as_forwarding() -> None:
    assert codes(analyse(".:53 {\n  proxy . 127.0.0.1\n  cache 30\n}\n", coredns_version="1.4.0")) == [
        ("loopback-upstream", "error", ".:53"),
        ("no-loop-plugin", "error", ".:53"),
    ]


@pytest.mark.parametrize("target", ["tls://127.0.0.1", "127.1.2.3:5353", "127.0.0.1:5301"])
def test_a_loopback_port_no_block_serves_is_a_sidecar_not_a_loop(target: str) -> None:
    found = analyse(f".:53 {{\n  forward . {target}\n  cache 30\n}}\n")
    assert codes(found) == [("loopback-sidecar", "warning", ".:53")]
    assert "no block of this Corefile serves" in found[0].message


def test_forwards_to_other_blocks_of_the_same_corefile_are_followed() -> None:
    # the forward plugin's README example: 5301 and 5302 are served here, and they go outside
    fanout = (".:53 {\n  forward . 127.0.0.1:5301 127.0.0.1:5302\n  cache 30\n}\n"
              ".:5301 {\n  forward . 8.8.8.8\n}\n.:5302 {\n  forward . 8.8.4.4\n}\n")
    assert [c for c in codes(analyse(fanout)) if c[1] == "error"] == []
    # ... but a block that sends them back closes a loop, through two blocks
    back = fanout.replace("forward . 8.8.4.4", "forward . 127.0.0.1:53")
    assert ("loopback-upstream", "error", ".:53") in codes(analyse(back))
    assert ("loopback-upstream", "error", ".:5302") in codes(analyse(back))


def test_a_stub_domain_without_loop_is_healthy() -> None:
    # the Kubernetes documentation's stub domain: no loop plugin, an outside upstream
    text = sample("kubeadm.Corefile") + "consul.local:53 {\n  errors\n  cache 30\n  forward . 10.150.0.1\n}\n"
    assert [c for c in codes(analyse(text)) if c[2] == "consul.local:53"] == []


def test_forwarding_to_the_cluster_dns_service_is_a_loop_for_coredns_not_for_a_node_cache() -> None:
    coredns = ".:53 {\n  kubernetes cluster.local\n  forward . 10.96.0.10\n  cache 30\n  loop\n}\n"
    assert codes(analyse(coredns, cluster_dns_ip="10.96.0.10")) == [("loopback-upstream", "error", ".:53")]
    assert codes(analyse(coredns)) == []
    # NodeLocal in IPVS mode binds only its link-local address and forwards to the Service: no loop;
    # binding the Service address too and forwarding there is one
    cache = "cluster.local:53 {\n  bind 169.254.20.10\n  forward . 10.96.0.10 {\n    force_tcp\n  }\n  cache 30\n}\n"
    assert [c for c in codes(analyse(cache, cluster_dns_ip="10.96.0.10")) if c[1] == "error"] == []
    both = cache.replace("bind 169.254.20.10", "bind 169.254.20.10 10.96.0.10")
    assert ("loopback-upstream", "error", "cluster.local:53") in codes(analyse(both, cluster_dns_ip="10.96.0.10"))


def test_a_host_name_upstream_is_named() -> None:
    assert codes(analyse(".:53 {\n  forward . dns.example.net\n  cache 30\n}\n")) == [
        ("forward-hostname", "warning", ".:53")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (".:53 {\n  forward . 10.0.0.53\n  loop\n}\n", [("no-cache", "warning", ".:53")]),
        (".:53 {\n  kubernetes cluster.local\n}\n", [("no-cache", "warning", ".:53")]),
        ("example.org:53 {\n  forward . 10.0.0.53\n  loop\n}\n", [("no-cache", "warning", "example.org:53")]),
        ("example.org:53 {\n  file /etc/db.example.org\n}\n", []),
        (".:53 {\n  forward . 10.0.0.53\n  loop\n  cache\n}\n", []),
    ],
)
def test_no_cache(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert codes(analyse(text)) == expected


NODELOCAL_RENDERED = """\
cluster.local:53 {
    errors
    cache {
        success 9984 30
        denial 9984 5
    }
    reload
    loop
    bind 169.254.20.10 10.96.0.10
    forward . 10.96.0.11
    prometheus :9253
    health 169.254.20.10:8080
}
in-addr.arpa:53 {
    errors
    cache 30
    loop
    bind 169.254.20.10 10.96.0.10
    forward . 10.96.0.11
}
.:53 {
    errors
    cache 30
    loop
    bind 169.254.20.10 10.96.0.10
    forward . /etc/resolv.conf
}
"""


def test_nodelocal_without_force_tcp() -> None:
    findings = analyse(NODELOCAL_RENDERED, node_resolv_conf=REAL_NODE)
    assert codes(findings) == [
        ("forward-resolv-conf", "warning", ".:53"),
        ("nodelocal-no-force-tcp", "error", "cluster.local:53"),
        ("nodelocal-no-force-tcp", "warning", "in-addr.arpa:53"),
    ]
    assert "add `force_tcp`" in findings[1].message


def test_nodelocal_check_follows_the_cluster_domain() -> None:
    text = NODELOCAL_RENDERED.replace("cluster.local:53", "k8s.example:53")
    assert ("nodelocal-no-force-tcp", "error", "k8s.example:53") in codes(analyse(text, cluster_domain="k8s.example"))
    # For another cluster domain this is not a NodeLocal cluster block at all.
    assert not any(f.code == "nodelocal-no-force-tcp" for f in analyse(text))


def test_a_cluster_zone_block_serving_with_kubernetes_is_not_nodelocal() -> None:
    text = "cluster.local:53 {\n  bind 10.0.0.5\n  kubernetes\n  forward . 10.0.0.53\n  cache\n  loop\n}\n"
    assert codes(analyse(text)) == []


@pytest.mark.parametrize(
    ("text", "domain", "expected"),
    [
        # The kubeadm layout serves the default domain...
        (".:53 {\n  kubernetes cluster.local in-addr.arpa ip6.arpa\n  cache\n}\n", "cluster.local", []),
        # ...but not a cluster created with another --cluster-domain.
        (
            ".:53 {\n  kubernetes cluster.local in-addr.arpa ip6.arpa\n  cache\n}\n",
            "k8s.example",
            [("zone-mismatch", "error", ".:53")],
        ),
        # A kubernetes plugin without zones takes its block's zones.
        ("cluster.local:53 {\n  kubernetes\n}\n", "cluster.local", []),
        ("example.org:53 {\n  kubernetes\n}\n", "cluster.local", [("zone-mismatch", "error", "example.org:53")]),
        # A more specific block without the plugin takes the cluster zone's queries.
        (
            ".:53 {\n  kubernetes cluster.local\n  cache\n}\ncluster.local:53 {\n  file /etc/db\n}\n",
            "cluster.local",
            [("zone-mismatch", "error", "cluster.local:53")],
        ),
        # Different ports route separately: the :53 block serves it.
        (
            ".:53 {\n  kubernetes cluster.local\n  cache\n}\ncluster.local:5353 {\n  file /etc/db\n}\n",
            "cluster.local",
            [],
        ),
        # No kubernetes plugin at all (a NodeLocal file, a plain forwarder): nothing to compare.
        (".:53 {\n  forward . 10.0.0.53\n  cache\n  loop\n}\n", "cluster.local", []),
        # An unfilled placeholder could be the right zone: no verdict.
        (".:53 {\n  kubernetes {$CLUSTER_DOMAIN}\n  cache\n}\n", "cluster.local", []),
    ],
)
def test_zone_mismatch(text: str, domain: str, expected: list[tuple[str, str, str]]) -> None:
    assert codes(analyse(text, cluster_domain=domain)) == expected


def test_zone_mismatch_message() -> None:
    (finding,) = analyse(".:53 {\n  kubernetes k8s.local\n  cache\n}\n")
    assert finding.message.startswith("no `kubernetes` plugin serves the cluster domain `cluster.local`")
    assert "k8s.local." in finding.message


def test_imported_server_blocks_are_analysed() -> None:
    imports = {"custom/example.server": "example.com:53 {\n  forward . 10.0.0.53\n}\n"}
    assert codes(analyse(sample("aks-like.Corefile"), imports=imports)) == [
        ("forward-resolv-conf", "warning", ".:53"),
        ("no-cache", "warning", "example.com:53"),
    ]


def test_finding_is_frozen() -> None:
    finding = Finding("no-cache", "warning", "m", ".:53")
    with pytest.raises(AttributeError):
        finding.code = "x"  # type: ignore[misc]


def test_errors_in_imported_files_name_the_file() -> None:
    imports = {"custom/bad.override": "log }\n}\n"}
    with pytest.raises(ConfigError, match=r"^custom/bad.override line 2: '\}' has no matching"):
        parse(sample("aks-like.Corefile"), imports)


def test_top_level_snippet_import_brings_server_blocks() -> None:
    text = "(zone) {\n  example.org:53 {\n    file /etc/db.example.org\n  }\n}\nimport zone\n.:53 {\n  loop\n}\n"
    assert [b.label for b in parse(text)] == ["example.org:53", ".:53"]


# -- editing --------------------------------------------------------------------------------
# The editor changes the words of one plugin and leaves every other line as it was written, so
# restoring a faulted Corefile restores the user's text, comments and snippets included.

SAMPLES = ["kubeadm.Corefile", "aks-like.Corefile", "k3s-like.Corefile"]


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """The lines that differ, for texts with the same number of lines."""
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), (a, b)
    return [(x, y) for x, y in zip(a, b) if x != y]


def removed_lines(before: str, after: str) -> list[str]:
    a, b = before.splitlines(), after.splitlines()
    left = list(a)
    for line in b:
        left.remove(line)  # every line of the result was in the original
    return [line.strip() for line in left]


@pytest.mark.parametrize("name", SAMPLES)
def test_set_forward_changes_one_line_and_keeps_its_options(name: str) -> None:
    text = sample(name)
    edited = corefile.set_forward(text, ["192.0.2.53", "192.0.2.54"])
    assert changed_lines(text, edited) == [("    forward . /etc/resolv.conf" + (" {" if name == "kubeadm.Corefile" else ""),
                                            "    forward . 192.0.2.53 192.0.2.54" + (" {" if name == "kubeadm.Corefile" else ""))]
    (fwd,) = parse(edited)[0].find("forward")
    assert fwd.args == [".", "192.0.2.53", "192.0.2.54"]
    assert fwd.block == parse(text)[0].find("forward")[0].block
    assert corefile.set_forward(edited, ["/etc/resolv.conf"]) == text  # and back, byte for byte


@pytest.mark.parametrize("name", SAMPLES)
def test_remove_plugin_removes_its_lines_only(name: str) -> None:
    text = sample(name)
    edited = corefile.remove_plugin(text, "loop")
    assert removed_lines(text, edited) == ["loop"]
    assert not parse(edited)[0].has("loop")
    if name != "k3s-like.Corefile":
        assert removed_lines(text, corefile.remove_plugin(text, "health")) in (["health {", "lameduck 5s", "}"],)


def test_the_faults_edits_make_what_the_analysis_finds() -> None:
    text = corefile.remove_plugin(corefile.set_forward(sample("kubeadm.Corefile"), ["127.0.0.1"]), "loop")
    assert codes(analyse(text)) == [("loopback-upstream", "error", ".:53"), ("no-loop-plugin", "error", ".:53")]
    served = corefile.set_kubernetes_zones(sample("kubeadm.Corefile"), ["k8sdns-other.local", "in-addr.arpa", "ip6.arpa"])
    assert ("zone-mismatch", "error", ".:53") in codes(analyse(served))


@pytest.mark.parametrize("name", SAMPLES)
def test_kubernetes_zones(name: str) -> None:
    text = sample(name)
    dropped = corefile.drop_reverse_zones(text)
    (k8s,) = parse(dropped)[0].find("kubernetes")
    assert k8s.args == ["cluster.local"]
    assert k8s.block == parse(text)[0].find("kubernetes")[0].block  # fallthrough, pods, ttl kept
    assert len(changed_lines(text, dropped)) == 1
    other = corefile.set_kubernetes_zones(text, ["k8s.example"])
    assert parse(other)[0].find("kubernetes")[0].args == ["k8s.example"]
    assert parse(corefile.set_kubernetes_zones(text, []))[0].find("kubernetes")[0].args == []
    with pytest.raises(ConfigError, match=r"serves no reverse zone \(cluster.local\); there is nothing to drop$"):
        corefile.drop_reverse_zones(dropped)


def test_snippets_imports_and_comments_survive_an_edit() -> None:
    text = sample("k3s-like.Corefile")
    edited = corefile.set_forward(text, ["192.0.2.53"])
    for kept in ("# k3s-like:", "(common) {", "    import common", "import /etc/coredns/custom/*.server",
                 "    import /etc/coredns/custom/*.override"):
        assert kept in edited
    assert [d.name for d in parse(edited)[0].directives][:3] == ["errors", "health", "ready"]  # from the snippet


def test_a_plugin_written_in_a_snippet_is_not_edited_in_the_block() -> None:
    with pytest.raises(ConfigError) as info:
        corefile.remove_plugin(sample("k3s-like.Corefile"), "health")
    assert str(info.value) == ("server block `.:53` has no `health` plugin (it imports common, "
                               "/etc/coredns/custom/*.override: edit the plugin where it is written); add it, "
                               "or edit a block that has it")


NODELOCAL_ZONE = "__PILLAR__DNS__DOMAIN__"


def test_remove_force_tcp_from_the_cluster_zone_only() -> None:
    text = sample("nodelocal-template.Corefile")
    edited = corefile.remove_option(text, "forward", "force_tcp", block=NODELOCAL_ZONE)
    with_tcp = "forward . __PILLAR__CLUSTER__DNS__ {\n        force_tcp\n    }\n"
    assert edited == text.replace(with_tcp, "forward . __PILLAR__CLUSTER__DNS__\n", 1)  # the first block's only
    blocks = parse(edited)
    assert not blocks[0].find("forward")[0].block
    assert all(b.find("forward")[0].has("force_tcp") for b in blocks[1:3])
    rendered = edited.replace(NODELOCAL_ZONE, "cluster.local").replace("__PILLAR__LOCAL__DNS__", "169.254.20.10")
    assert ("nodelocal-no-force-tcp", "error", "cluster.local:53") in codes(analyse(rendered))


def test_remove_one_option_of_several() -> None:
    text = sample("kubeadm.Corefile")
    edited = corefile.remove_option(text, "kubernetes", "ttl")
    assert removed_lines(text, edited) == ["ttl 30"]
    assert [d.name for d in parse(edited)[0].find("kubernetes")[0].block] == ["pods", "fallthrough"]
    one_line = ".:53 {\n  forward . 10.0.0.53 10.0.0.54 { force_tcp }\n  loop\n}\n"
    assert corefile.remove_option(one_line, "forward", "force_tcp") == ".:53 {\n  forward . 10.0.0.53 10.0.0.54\n  loop\n}\n"


def test_set_cache_denial_ttl() -> None:
    text = sample("nodelocal-template.Corefile")
    edited = corefile.set_cache_denial_ttl(text, 120, block=f"{NODELOCAL_ZONE}:53")
    assert changed_lines(text, edited) == [("        denial 9984 5", "        denial 9984 120")]
    assert denial_ttl(edited.replace(NODELOCAL_ZONE, "cluster.local"), "cluster.local") == 120
    short = ".:53 {\n  cache {\n    denial 5000\n  }\n}\n"
    assert parse(corefile.set_cache_denial_ttl(short, 7))[0].find("cache")[0].block[0].args == ["5000", "7"]


def test_words_that_need_quotes_are_quoted() -> None:
    edited = corefile.set_forward(".:53 {\n  forward . 10.0.0.1\n}\n", ["a b", 'say "x"', "#x"])
    assert parse(edited)[0].find("forward")[0].args == [".", "a b", 'say "x"', "#x"]


def test_blocks_are_found_by_zone_or_by_key() -> None:
    text = ".:53 {\n  forward . 10.0.0.1\n}\n.:5353 {\n  forward . 10.0.0.2\n}\n"
    edited = corefile.set_forward(text, ["10.0.0.9"], block=".:5353")
    assert [b.find("forward")[0].args[1] for b in parse(edited)] == ["10.0.0.1", "10.0.0.9"]
    with pytest.raises(ConfigError, match=r"^several server blocks serve `.` \(.:53, .:5353\); name the one"):
        corefile.set_forward(text, ["10.0.0.9"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: corefile.set_forward(t, ["10.0.0.1"], block="cluster.local"),
         "the Corefile has no server block for `cluster.local` (its blocks: `.:53`); name one of those"),
        (lambda t: corefile.remove_plugin(t, "autopath"),
         "server block `.:53` has no `autopath` plugin; add it, or edit a block that has it"),
        (lambda t: corefile.set_forward(t, ["10.0.0.1"], zone="example.org"),
         "server block `.:53` has no `forward example.org` plugin; add it, or edit a block that has it"),
        (lambda t: corefile.remove_option(t, "forward", "force_tcp"),
         "`forward` in server block `.:53` has no `force_tcp` option; there is nothing to remove"),
        (lambda t: corefile.set_cache_denial_ttl(t, 60),
         "`cache` in server block `.:53` has no `denial CAPACITY` line; add one (`denial 9984 60`)"),
    ],
)
def test_what_is_missing_is_named_in_one_line(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        edit(sample("kubeadm.Corefile"))
    assert str(info.value) == message


@pytest.mark.parametrize(("text", "forwards"), [
    ((CORE_FILES / "kubeadm.Corefile").read_text(), True),
    (". {\n    forward . 10.0.0.1 /etc/resolv.conf\n}\n", True),
    (". {\n    # forward . /etc/resolv.conf\n    forward . 10.0.0.1\n}\n", False),  # a comment is no forward
    ("example.test {\n    file /etc/resolv.conf\n}\n", False),
])
def test_forwards_to_resolv_conf(text: str, forwards: bool) -> None:
    assert corefile.forwards_to_resolv_conf(text) is forwards
