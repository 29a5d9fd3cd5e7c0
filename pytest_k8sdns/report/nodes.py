"""The summary's Nodes and Replicas sections: a node x check matrix of the checks that judge every
node, each node's lookup figures, and what each cluster-DNS replica answered. Empty for results
documents without per-node or per-replica figures (older versions of the suite)."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pytest_k8sdns.evidence import measure
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.evidence.replicas import SERVICE
from pytest_k8sdns.report.plots import matrix_png, png_img

#: past this many nodes the matrix shows only the failing ones
MAX_ROWS = 60
#: per libc, the node table's figures: (header, quantity)
NODE_FIGURES = (("p50 (ms)", Q.LOOKUP_P50), ("p99 (ms)", Q.LOOKUP_P99), ("errors", Q.LOOKUP_ERRORS),
                ("retry signatures", Q.LOOKUP_RETRIES), ("retry signatures, bursts", Q.BURST_RETRIES))
REPLICA_FIGURES = (Q.REPLICA_ANSWERED, Q.REPLICA_SENT, Q.REPLICA_P50, Q.REPLICA_P99)
_PROTOS = ("udp", "tcp")
_E = html.escape


def _entries(doc: Mapping[str, Any], quantities: set[str] | frozenset[str]
             ) -> Iterator[tuple[Mapping[str, Any], str, dict[str, Any], Any]]:
    """(check, quantity, entity, value) of every measurement of these quantities, in one pass."""
    for check in doc.get("checks", []):
        for name, entry in (check.get("measurements") or {}).items():
            quantity = measure.quantity_of(check, name, entry)
            if quantity is not None and quantity in quantities:
                yield check, quantity, measure.entity_of(check, entry), entry.get("value")


def _natural(name: str) -> list[Any]:
    """worker2 before worker10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _column(check: Mapping[str, Any]) -> str:
    """A check's short label: lookup_latency[glibc] for test_latency.py::test_lookup_latency[glibc]."""
    cid = str(check.get("id") or check.get("nodeid") or "?")
    return (cid.partition("::")[2] or cid).removeprefix("test_")


@dataclasses.dataclass(frozen=True)
class Verdicts:
    """Each node's part of every check that judged each node: `nodes` failing first."""

    columns: list[str]
    nodes: list[str]
    cells: dict[tuple[str, str], str]

    def failed(self, node: str) -> list[str]:
        return [c for c in self.columns if self.cells.get((node, c)) == "failed"]

    def failing(self) -> list[str]:
        return [n for n in self.nodes if self.failed(n)]


def verdicts(doc: Mapping[str, Any], more_nodes: Iterable[str] = ()) -> Verdicts:
    """The node.verdict measurements of a document, plus `more_nodes` that only have figures."""
    columns: dict[str, tuple[bool, float, str]] = {}
    cells: dict[tuple[str, str], str] = {}
    for check, _, entity, value in _entries(doc, {Q.NODE_VERDICT}):
        if not entity.get("node"):
            continue
        label = _column(check)
        number = check.get("number")
        columns[label] = (number is None, float(number or 0), label)
        cells[(str(entity["node"]), label)] = str(value)
    names = {node for node, _ in cells} | set(more_nodes)
    ordered = sorted(columns, key=lambda c: columns[c])
    bad = {n: sum(cells.get((n, c)) == "failed" for c in ordered) for n in names}
    nodes = sorted(names, key=lambda n: (-bad[n], _natural(n)))
    return Verdicts(ordered, nodes, cells)


def node_figures(doc: Mapping[str, Any]) -> dict[tuple[str, str, str], Any]:
    """(quantity, libc, node) -> value of the per-node figures of the plain lookup checks."""
    out: dict[tuple[str, str, str], Any] = {}
    for _, quantity, entity, value in _entries(doc, {q for _, q in NODE_FIGURES}):
        if entity.get("node") and entity.get("libc") and not entity.get("option"):
            out.setdefault((quantity, str(entity["libc"]), str(entity["node"])), value)
    return out


def replica_figures(doc: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(replica, proto) -> {quantity: value}, the Service last."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for _, quantity, entity, value in _entries(doc, set(REPLICA_FIGURES)):
        if entity.get("replica"):
            out.setdefault((str(entity["replica"]), str(entity.get("proto", ""))), {})[quantity] = value

    def order(key: tuple[str, str]) -> tuple[bool, list[Any], int]:
        replica, proto = key
        return replica == SERVICE, _natural(replica), _PROTOS.index(proto) if proto in _PROTOS else len(_PROTOS)

    return {key: out[key] for key in sorted(out, key=order)}


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _E(str(value))


def _tr(failing: bool) -> str:
    return "<tr class='failing'>" if failing else "<tr>"


def matrix_title(v: Verdicts) -> tuple[list[str], str]:
    """The matrix's rows and title: every node, or past MAX_ROWS only the failing ones."""
    checks = f"{len(v.columns)} check{'s' if len(v.columns) != 1 else ''} that judge every node"
    if len(v.nodes) <= MAX_ROWS:
        return v.nodes, f"{len(v.nodes)} nodes x {checks}"
    failing = v.failing()
    shown = failing[:MAX_ROWS]
    rest, rest_failing = len(v.nodes) - len(shown), len(failing) - len(shown)
    return shown, (f"{len(shown)} failing of {len(v.nodes)} nodes x {checks}; the other {rest} nodes not shown "
                   f"({f'{rest_failing} of them failing' if rest_failing else 'none of them failed'})")


def matrix(v: Verdicts) -> str:
    """The node x check matrix as an embedded PNG, or a line when no node failed in a large cluster."""
    if not v.columns:
        return ""
    rows, title = matrix_title(v)
    if not rows:
        return f"<p>{_E(title)}</p>"
    cells = [[v.cells.get((node, c)) for c in v.columns] for node in rows]
    return f"<div class='k8sdns-matrix'>{png_img(matrix_png(rows, v.columns, cells, title), title)}</div>"


def _node_table(v: Verdicts, figures: Mapping[tuple[str, str, str], Any]) -> str:
    libcs = sorted({libc for _, libc, _ in figures})
    head = "<tr><th rowspan='2'>node</th>" + "".join(
        f"<th colspan='{len(NODE_FIGURES)}'>{_E(libc)}</th>" for libc in libcs) + "<th rowspan='2'>failed checks</th></tr>"
    head += "<tr>" + "".join(f"<th>{_E(label)}</th>" for _ in libcs for label, _ in NODE_FIGURES) + "</tr>"
    rows = []
    for node in v.nodes:
        failed = v.failed(node)
        nums = "".join(f"<td class='num'>{_num(figures.get((q, libc, node)))}</td>"
                       for libc in libcs for _, q in NODE_FIGURES)
        names = f" <span class='checks'>{_E(', '.join(failed))}</span>" if failed else ""
        rows.append(f"{_tr(bool(failed))}<td>{_E(node)}</td>{nums}"
                    f"<td><span class='num'>{len(failed)}</span>{names}</td></tr>")
    return f"<table class='k8sdns-nodes'>{head}{''.join(rows)}</table>"


def nodes_section(doc: Mapping[str, Any]) -> str:
    """<h3>Nodes</h3> with the matrix and the per-node table; "" without per-node figures."""
    figures = node_figures(doc)
    v = verdicts(doc, {node for _, _, node in figures})
    if not v.nodes:
        return ""
    failing = v.failing()
    line = (f"{len(v.nodes)} nodes; {len(failing)} failed at least one of the {len(v.columns)} checks that judge "
            "every node" if v.columns else f"{len(v.nodes)} nodes")
    return f"<h3>Nodes</h3><p>{_E(line)}</p>{matrix(v)}{_node_table(v, figures)}"


def replicas_section(doc: Mapping[str, Any]) -> str:
    """<h3>Replicas</h3>: per cluster-DNS replica and protocol, answered of sent and latency."""
    rows = []
    for (replica, proto), f in replica_figures(doc).items():
        answered, sent = f.get(Q.REPLICA_ANSWERED), f.get(Q.REPLICA_SENT)
        short = isinstance(answered, int) and isinstance(sent, int) and answered < sent
        name = "the Service" if replica == SERVICE else replica
        rows.append(f"{_tr(short)}<td>{_E(name)}</td><td>{_E(proto.upper())}</td>"
                    f"<td class='num'>{_num(answered)} of {_num(sent)}</td>"
                    f"<td class='num'>{_num(f.get(Q.REPLICA_P50))}</td><td class='num'>{_num(f.get(Q.REPLICA_P99))}</td></tr>")
    if not rows:
        return ""
    return ("<h3>Replicas</h3><table class='k8sdns-replicas'><tr><th>replica</th><th>protocol</th>"
            f"<th>answered of sent</th><th>p50 (ms)</th><th>p99 (ms)</th></tr>{''.join(rows)}</table>")


def render(doc: Mapping[str, Any]) -> str:
    """Both sections, each left out when the document has no such figures."""
    return nodes_section(doc) + replicas_section(doc)
