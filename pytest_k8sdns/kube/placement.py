"""Which nodes the probe pods run on: every schedulable node, a label selector, or a seeded sample
that still covers every zone and node pool (--k8sdns-nodes). Pure logic over NodeFacts."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.kube.client import NodeFacts

ZONE_LABEL = "topology.kubernetes.io/zone"
#: The node-pool label of each distribution, first match wins. Not node.kubernetes.io/instance-type:
#: one pool may mix instance types, and one type may serve several pools.
POOL_LABELS = (
    "cloud.google.com/gke-nodepool",  # GKE
    "eks.amazonaws.com/nodegroup",  # EKS managed node groups
    "kubernetes.azure.com/agentpool",  # AKS
    "agentpool",  # AKS, older clusters
    "karpenter.sh/nodepool",  # Karpenter v1beta1 and later
    "karpenter.sh/provisioner-name",  # Karpenter v1alpha5
    "doks.digitalocean.com/node-pool",  # DigitalOcean
)
ALL_SCHEDULABLE = "all schedulable nodes"
#: Past this many names a header list is cut short, so it stays readable for 1000 nodes.
HEADER_NAMES = 20

_OPTION = "--k8sdns-nodes"
_FORMS = ("give all, a number of nodes of at least 1, or a label selector like "
          "topology.kubernetes.io/zone=eu-west-1a")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KEY = r"[^\s!=(),]+"


def zone(node: NodeFacts) -> str:
    return node.labels.get(ZONE_LABEL, "")


def pool(node: NodeFacts) -> str:
    """The node's pool from the first of POOL_LABELS it carries; "" when it has none."""
    return next((node.labels[k] for k in POOL_LABELS if k in node.labels), "")


def schedulable(node: NodeFacts) -> str | None:
    """None when an ordinary pod (no tolerations) may run on the node, else why not."""
    if not node.ready:
        return "NotReady"
    if node.unschedulable:
        return "cordoned (spec.unschedulable)"
    os_name = node.labels.get("kubernetes.io/os", "linux")
    if os_name != "linux":
        return f"os {os_name} (the probe images are Linux)"
    for taint in node.taints:
        if taint.rpartition(":")[2] in ("NoSchedule", "NoExecute"):
            return f"taint {taint}"
    return None


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: op is =, !=, in, notin, exists or !exists."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op in ("exists", "!exists"):
            return (value is not None) == (self.op == "exists")
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # != and notin also match an absent label


@dataclass(frozen=True)
class NodesSpec:
    """A parsed --k8sdns-nodes: all nodes (count and selector None), a count, or a selector."""

    text: str
    count: int | None = None
    selector: tuple[Requirement, ...] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.selector or ())


def _bad(text: str, why: str = "") -> ConfigError:
    return ConfigError(f"{_OPTION}={text!r} is not valid{f' ({why})' if why else ''}: {_FORMS}")


def _valid_key(key: str) -> bool:
    parts = key.split("/")
    if len(parts) > 2 or len(parts[-1]) > 63 or not _NAME.fullmatch(parts[-1]):
        return False
    return len(parts) == 1 or (len(parts[0]) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(parts[0])))


def _valid_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_NAME.fullmatch(value)))


def _requirement(term: str, text: str) -> Requirement:
    t = term.strip()
    if m := re.fullmatch(rf"!\s*({_KEY})", t):
        key, op, values = m.group(1), "!exists", []
    elif m := re.fullmatch(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)", t):
        key, op, values = m.group(1), m.group(2), [v.strip() for v in m.group(3).split(",")]
        if values == [""]:
            raise _bad(text, f"{op} needs at least one value")
    elif m := re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*([^\s!=(),]*)", t):
        key, op, values = m.group(1), "=" if m.group(2) == "==" else m.group(2), [m.group(3)]
    elif re.fullmatch(_KEY, t):
        key, op, values = t, "exists", []
    else:
        raise _bad(text, f"cannot read {t!r}" if t else "empty term")
    if not _valid_key(key):
        raise _bad(text, f"bad label key {key!r}")
    if bad := next((v for v in values if not _valid_value(v)), None):
        raise _bad(text, f"bad label value {bad!r}")
    return Requirement(key, op, frozenset(values))


def parse_nodes_spec(text: str) -> NodesSpec:
    """Read --k8sdns-nodes: "all" (or empty), a count of at least 1, or a Kubernetes label selector
    (k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k; commas AND them)."""
    t = text.strip()
    if t in ("", "all"):
        return NodesSpec("all")
    if re.fullmatch(r"[+-]?\d[\d.]*", t):
        if not t.isdigit() or int(t) < 1:
            raise _bad(text)
        return NodesSpec(t, count=int(t))
    # commas AND the terms, except those inside the parentheses of in/notin; a stray parenthesis
    # leaves a term that _requirement cannot read
    terms = re.split(r",(?![^()]*\))", t)
    return NodesSpec(t, selector=tuple(_requirement(term, t) for term in terms))


def _where(zone_pool: tuple[str, str]) -> str:
    z, p = zone_pool
    return f"{f'zone {z}' if z else 'no zone label'}, {f'pool {p}' if p else 'no pool label'}"


def _first(items: list[str]) -> str:
    more = f", ... and {len(items) - HEADER_NAMES} more" if len(items) > HEADER_NAMES else ""
    return ", ".join(items[:HEADER_NAMES]) + more


@dataclass(frozen=True)
class Placement:
    """The nodes chosen for probe pods, why each was or was not, and the option that chose them."""

    chosen: tuple[str, ...]
    reasons: Mapping[str, str]
    excluded: Mapping[str, str]
    spec: str
    seed: int
    raised_from: int | None = None
    #: chosen node -> (zone, pool), "" where the node has no such label
    strata: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def header(self) -> str:
        """One line for the pytest report header."""
        parsed = parse_nodes_spec(self.spec)
        how = f"{_OPTION}={self.spec}"
        if self.raised_from is not None:
            how += f" raised to {len(self.chosen)} to cover every zone and pool, seed {self.seed}"
        elif parsed.count is not None and any(r != ALL_SCHEDULABLE for r in self.reasons.values()):
            how += f", seed {self.seed}"
        elif parsed.selector is None:
            how += ": every schedulable node"
        total = len(self.chosen) + len(self.excluded)
        chosen = [f"{n} [{_where(self.strata.get(n, ('', '')))}]" for n in self.chosen]
        line = f"k8sdns: probing {len(self.chosen)} of {total} nodes ({how}): {_first(chosen)}"
        if self.excluded:
            # the seed and selector are stated once above, not after every node they left out
            short = {f"not sampled (seed {self.seed})": "not sampled",
                     f"not matched by selector {self.spec}": "not matched"}
            out = [f"{n} ({short.get(r, r)})" for n, r in self.excluded.items()]
            line += f"; not probed: {_first(out)}"
        return line

    def describe(self) -> dict[str, Any]:
        """The placement as plain data, for the results file."""
        where = {n: self.strata.get(n, ("", "")) for n in self.chosen}
        return {
            "spec": self.spec, "seed": self.seed, "raised_from": self.raised_from,
            "chosen": [{"name": n, "zone": where[n][0], "pool": where[n][1], "reason": self.reasons[n]}
                       for n in self.chosen],
            "excluded": [{"name": n, "reason": r} for n, r in self.excluded.items()],
        }


def _nothing_to_probe(spec: str, total: int, excluded: Mapping[str, str]) -> ConfigError:
    counts = ", ".join(f"{c} {r}" for r, c in Counter(excluded.values()).most_common())
    return ConfigError(
        f"{_OPTION}={spec}: no node to probe among the cluster's {total} nodes ({counts or 'none listed'}); "
        f"give {_OPTION} a selector of schedulable nodes, or uncordon (kubectl uncordon NODE) or untaint "
        f"(kubectl taint nodes NODE KEY:EFFECT-) the nodes to probe"
    )


def _sample(candidates: list[NodeFacts], count: int, seed: int) -> tuple[dict[str, str], int | None]:
    """One node of each (zone, pool), then round-robin over them until count; chosen -> reason."""
    rng = random.Random(seed)
    strata: dict[tuple[str, str], list[str]] = {}
    for node in candidates:  # name-sorted, so the same nodes give the same draw in any input order
        strata.setdefault((zone(node), pool(node)), []).append(node.name)
    raised_from = count if count < len(strata) else None
    count = max(count, len(strata))
    keys = sorted(strata)
    for key in keys:
        rng.shuffle(strata[key])
    chosen = {strata[k].pop(0): f"{_where(k)}: covers its zone and pool" for k in keys}
    queues = [strata[k] for k in keys]
    rng.shuffle(queues)
    while len(chosen) < count:
        for q in queues:
            if q and len(chosen) < count:
                chosen[q.pop(0)] = f"sampled (seed {seed})"
    return chosen, raised_from


def choose(nodes: Sequence[NodeFacts], spec: str, seed: int) -> Placement:
    """The nodes --k8sdns-nodes picks among those an ordinary pod may run on; the same nodes, spec
    and seed always give the same Placement."""
    parsed = parse_nodes_spec(spec)
    ordered = sorted(nodes, key=lambda n: n.name)
    excluded = {n.name: why for n in ordered if (why := schedulable(n))}
    candidates = [n for n in ordered if n.name not in excluded]
    raised_from = None
    if parsed.selector is not None:
        reasons = {n.name: f"matches selector {parsed.text}" for n in candidates if parsed.matches(n.labels)}
    elif parsed.count is None or parsed.count >= len(candidates):
        reasons = {n.name: ALL_SCHEDULABLE for n in candidates}
    else:
        reasons, raised_from = _sample(candidates, parsed.count, seed)
    for n in candidates:
        if n.name not in reasons:
            excluded[n.name] = (f"not matched by selector {parsed.text}" if parsed.selector is not None
                                else f"not sampled (seed {seed})")
    if not reasons:
        raise _nothing_to_probe(parsed.text, len(ordered), excluded)
    chosen = tuple(sorted(reasons))
    return Placement(chosen, {n: reasons[n] for n in chosen}, dict(sorted(excluded.items())), parsed.text, seed,
                     raised_from, {n.name: (zone(n), pool(n)) for n in candidates if n.name in reasons})
