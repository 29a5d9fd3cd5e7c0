"""Which nodes probe pods run on: schedulability, --k8sdns-nodes forms, the zone- and pool-covering
seeded sample, and the report header."""

from __future__ import annotations

import random

import pytest

from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.kube.client import NodeFacts
from pytest_k8sdns.kube.placement import (
    POOL_LABELS,
    ZONE_LABEL,
    choose,
    parse_nodes_spec,
    pool,
    schedulable,
)

CONTROL_PLANE = "node-role.kubernetes.io/control-plane:NoSchedule"


def node(name: str, zone: str = "", pool: str = "", *, ready: bool = True, taints: tuple[str, ...] = (),
         unschedulable: bool = False, **labels: str) -> NodeFacts:
    if zone:
        labels[ZONE_LABEL] = zone
    if pool:
        labels["cloud.google.com/gke-nodepool"] = pool
    return NodeFacts(name, "10.0.0.1", ready, "6.1", "Debian", "containerd://1.7", "v1.31.0",
                     labels, taints, unschedulable)


def fleet(zones: int = 3, pools: int = 2, per: int = 10) -> list[NodeFacts]:
    """zones x pools strata of `per` nodes each, named so that name order mixes the strata."""
    return [node(f"n{i:03d}", f"z{i % zones}", f"p{i // zones % pools}") for i in range(zones * pools * per)]


def strata(nodes: list[NodeFacts], names: tuple[str, ...]) -> set[tuple[str, str]]:
    by_name = {n.name: n for n in nodes}
    return {(by_name[n].labels[ZONE_LABEL], pool(by_name[n])) for n in names}


def test_positional_node_facts_still_work() -> None:
    n = NodeFacts("w1", "10.0.0.1", True, "6.1", "Debian", "containerd://1.7", "v1.31.0")
    assert (n.labels, n.taints, n.unschedulable) == ({}, (), False) and hash(n)


def test_all_probes_every_schedulable_node() -> None:
    nodes = [node("w2", "a"), node("w1", "b"), node("cp", "a", taints=(CONTROL_PLANE,))]
    for spec in ("all", "", " all "):
        p = choose(nodes, spec, 0)
        assert p.chosen == ("w1", "w2") and p.spec == "all" and p.raised_from is None
        assert p.reasons == {"w1": "all schedulable nodes", "w2": "all schedulable nodes"}
        assert p.excluded == {"cp": f"taint {CONTROL_PLANE}"}


def test_unschedulable_nodes_are_excluded_with_their_reason() -> None:
    nodes = [
        node("down", ready=False), node("cordoned", unschedulable=True),
        node("cp", taints=(CONTROL_PLANE,)), node("gpu", taints=("nvidia.com/gpu=present:NoExecute",)),
        node("soft", taints=("spot:PreferNoSchedule",)), node("plain"),
    ]
    assert [schedulable(n) for n in nodes] == [
        "NotReady", "cordoned (spec.unschedulable)", f"taint {CONTROL_PLANE}",
        "taint nvidia.com/gpu=present:NoExecute", None, None,
    ]
    p = choose(nodes, "all", 0)
    assert p.chosen == ("plain", "soft")
    assert p.excluded["down"] == "NotReady" and p.excluded["cordoned"] == "cordoned (spec.unschedulable)"


def test_pool_labels_of_the_distributions() -> None:
    for label in POOL_LABELS:
        assert pool(NodeFacts("w", "", True, "", "", "", "", {label: "p1"})) == "p1"
    assert pool(NodeFacts("w", "", True, "", "", "", "", {"node.kubernetes.io/instance-type": "m5.large"})) == ""
    both = NodeFacts("w", "", True, "", "", "", "", {"agentpool": "old", "kubernetes.azure.com/agentpool": "new"})
    assert pool(both) == "new"


def test_a_small_sample_is_raised_to_cover_every_zone_and_pool() -> None:
    nodes = fleet()
    p = choose(nodes, "2", 0)
    assert len(p.chosen) == 6 and p.raised_from == 2
    assert strata(nodes, p.chosen) == {(f"z{z}", f"p{q}") for z in range(3) for q in range(2)}
    assert all(r.endswith(": covers its zone and pool") for r in p.reasons.values())
    assert sum(r == "not sampled (seed 0)" for r in p.excluded.values()) == 54


def test_a_larger_sample_covers_every_stratum_and_fills_round_robin() -> None:
    nodes = fleet()
    p = choose(nodes, "10", 0)
    assert len(p.chosen) == 10 and p.raised_from is None and len(strata(nodes, p.chosen)) == 6
    assert list(p.reasons.values()).count("sampled (seed 0)") == 4
    counts = [sum(n.name in p.chosen and n.labels[ZONE_LABEL] == f"z{z}" and pool(n) == f"p{q}" for n in nodes)
              for z in range(3) for q in range(2)]
    assert sorted(counts) == [1, 1, 2, 2, 2, 2]  # round-robin: no stratum gets a third before all have two


def test_a_sample_of_at_least_all_candidates_is_all() -> None:
    nodes = fleet(per=1)
    p = choose(nodes, "6", 0)
    assert len(p.chosen) == 6 and set(p.reasons.values()) == {"all schedulable nodes"} and not p.excluded


def test_nodes_without_zone_or_pool_labels_form_one_stratum() -> None:
    nodes = [node("a1", "a"), node("a2", "a"), node("bare1"), node("bare2")]
    p = choose(nodes, "1", 0)
    assert p.raised_from == 1 and len(p.chosen) == 2
    assert {p.reasons[n] for n in p.chosen} == {"zone a, no pool label: covers its zone and pool",
                                                 "no zone label, no pool label: covers its zone and pool"}


def test_the_same_seed_gives_the_same_nodes_in_any_input_order() -> None:
    nodes = fleet()
    first = choose(nodes, "9", 3)
    for i in range(5):
        shuffled = nodes[:]
        random.Random(i).shuffle(shuffled)
        assert choose(shuffled, "9", 3) == first
    assert len({choose(nodes, "9", seed).chosen for seed in range(10)}) > 1


@pytest.mark.parametrize(("spec", "expected"), [
    ("role=dns", {"w1"}),
    ("role==dns", {"w1"}),
    ("role!=dns", {"w2", "w3"}),
    ("topology.kubernetes.io/zone in (a, b)", {"w1", "w2"}),
    ("topology.kubernetes.io/zone notin (a)", {"w2", "w3"}),
    ("role", {"w1", "w2"}),
    ("!role", {"w3"}),
    ("role,topology.kubernetes.io/zone in (b,c)", {"w2"}),
    ("role in (dns,edge), !gpu", {"w1"}),
])
def test_selector_forms(spec: str, expected: set[str]) -> None:
    nodes = [node("w1", "a", role="dns"), node("w2", "b", role="edge", gpu="yes"), node("w3", "c")]
    p = choose(nodes, spec, 0)
    assert set(p.chosen) == expected
    assert all(r == f"matches selector {spec}" for r in p.reasons.values())
    assert all(r == f"not matched by selector {spec}" for r in p.excluded.values())


def test_parse_nodes_spec_forms() -> None:
    assert parse_nodes_spec("all").count is None and parse_nodes_spec("all").selector is None
    assert parse_nodes_spec(" 4 ").count == 4
    sel = parse_nodes_spec("a in (b,c),d notin (e),f!=g,!h,i,j==k,l=").selector
    assert sel is not None and [(r.key, r.op, sorted(r.values)) for r in sel] == [
        ("a", "in", ["b", "c"]), ("d", "notin", ["e"]), ("f", "!=", ["g"]), ("h", "!exists", []),
        ("i", "exists", []), ("j", "=", ["k"]), ("l", "=", [""]),
    ]


@pytest.mark.parametrize("spec", ["0", "-1", "+2", "1.5", "a in (b", "a in ()", "a=b,,c", "a b", "a=b=c",
                                  "a/b/c", "Bad_Prefix/k=v", "k=" + "v" * 64, "k=-v", "a in (b c)", "(a)"])
def test_bad_specs_are_one_line_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_nodes_spec(spec)
    msg = str(exc.value)
    assert msg.startswith(f"--k8sdns-nodes={spec!r} is not valid") and "\n" not in msg
    assert msg.endswith("give all, a number of nodes of at least 1, or a label selector like "
                        "topology.kubernetes.io/zone=eu-west-1a")


def test_header_names_the_spec_the_raise_and_the_seed() -> None:
    nodes = [node("cp", "a", "p", taints=(CONTROL_PLANE,)), node("w1", "a", "p"), node("w2", "b", "p"),
             node("w3", "b", "q"), node("w4", "a", "p")]
    header = choose(nodes, "2", 0).header()
    assert header.startswith("k8sdns: probing 3 of 5 nodes (--k8sdns-nodes=2 raised to 3 to cover every zone "
                             "and pool, seed 0): ")
    assert "w3 [zone b, pool q]" in header and f"; not probed: cp (taint {CONTROL_PLANE})" in header
    assert "(not sampled)" in header and "\n" not in header
    assert "(--k8sdns-nodes=all: every schedulable node)" in choose(nodes, "all", 0).header()
    assert "(--k8sdns-nodes=3, seed 7)" in choose(nodes[1:] + [node("w5", "b", "q")], "3", 7).header()
    selected = choose(nodes, "topology.kubernetes.io/zone=b", 0).header()
    assert "(--k8sdns-nodes=topology.kubernetes.io/zone=b)" in selected and "w1 (not matched)" in selected


def test_header_truncates_long_lists() -> None:
    nodes = [node(f"w{i:04d}", "a", "p") for i in range(1000)]
    header = choose(nodes, "30", 1).header()
    assert header.startswith("k8sdns: probing 30 of 1000 nodes (--k8sdns-nodes=30, seed 1): ")
    assert ", ... and 10 more; not probed: " in header and header.endswith(", ... and 950 more")
    assert header.count("[zone a, pool p]") == 20 and header.count("(not sampled)") == 20


def test_describe_is_plain_data() -> None:
    nodes = [node("w1", "a", "p"), node("w2", "b"), node("cp", taints=(CONTROL_PLANE,))]
    assert choose(nodes, "all", 5).describe() == {
        "spec": "all", "seed": 5, "raised_from": None,
        "chosen": [{"name": "w1", "zone": "a", "pool": "p", "reason": "all schedulable nodes"},
                   {"name": "w2", "zone": "b", "pool": "", "reason": "all schedulable nodes"}],
        "excluded": [{"name": "cp", "reason": f"taint {CONTROL_PLANE}"}],
    }


def test_no_candidate_says_why_and_what_to_do() -> None:
    nodes = [node("cp1", taints=(CONTROL_PLANE,)), node("cp2", taints=(CONTROL_PLANE,)), node("w1", ready=False),
             node("w2", unschedulable=True)]
    with pytest.raises(ConfigError) as exc:
        choose(nodes, "all", 0)
    msg = str(exc.value)
    assert "\n" not in msg and "among the cluster's 4 nodes" in msg
    assert f"(2 taint {CONTROL_PLANE}, 1 NotReady, 1 cordoned (spec.unschedulable))" in msg
    assert "--k8sdns-nodes a selector" in msg and "kubectl uncordon NODE" in msg and "untaint" in msg


def test_a_selector_matching_nothing_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^--k8sdns-nodes=role=dns: no node to probe .*\(2 not matched by "
                                          r"selector role=dns\)"):
        choose([node("w1"), node("w2", role="edge")], "role=dns", 0)


def test_a_windows_node_is_not_probed() -> None:
    from pytest_k8sdns.kube.client import NodeFacts
    from pytest_k8sdns.kube.placement import schedulable

    win = NodeFacts("win1", "", True, "", "", "", "", labels={"kubernetes.io/os": "windows"})
    assert schedulable(win) == "os windows (the probe images are Linux)"
