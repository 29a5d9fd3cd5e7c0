"""The summary's Nodes and Replicas sections: the node x check matrix, the per-node figures, and
what each cluster-DNS replica answered; left out for documents without them."""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

from results_docs import check, doc, healthy

from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.report import nodes, summary

LAT = "test_latency.py::test_lookup_latency[{}]"
RETRY = "test_latency.py::test_retry_signature[{}]"
REPLICAS = "test_replicas.py::test_every_replica_answers[{}]"


def _add(c: dict[str, Any], name: str, value: Any, quantity: str, unit: str = "", **entity: Any) -> None:
    c["measurements"][name] = {"value": value, "unit": unit, "quantity": quantity, "entity": entity}


def _verdicts(c: dict[str, Any], names: list[str], failing: set[str], **entity: Any) -> dict[str, Any]:
    for node in names:
        _add(c, f"verdict[{node}]", "failed" if node in failing else "passed", Q.NODE_VERDICT, node=node, **entity)
    return c


def _three_nodes() -> dict[str, Any]:
    """worker2 fails glibc's lookup latency and retry signature; one replica misses two UDP answers."""
    names = ["worker1", "worker2", "worker3"]
    checks = []
    for libc in ("glibc", "musl"):
        lat = check(LAT.format(libc), "failed" if libc == "glibc" else "passed")
        for i, node in enumerate(names):
            slow = libc == "glibc" and node == "worker2"
            for name, quantity, value in (("p50_ms", Q.LOOKUP_P50, 0.5 + i), ("p99_ms", Q.LOOKUP_P99, 250.0 if slow else 8.0),
                                          ("errors", Q.LOOKUP_ERRORS, 3 if slow else 0),
                                          ("retry_signatures", Q.LOOKUP_RETRIES, 4 if slow else 0)):
                _add(lat, f"{name}[{node}]", value, quantity, "ms" if name.endswith("_ms") else "", libc=libc, node=node)
        checks.append(_verdicts(lat, names, {"worker2"} if libc == "glibc" else set(), libc=libc))
    retry = check(RETRY.format("glibc"), "failed", number=11)
    for node in names:
        _add(retry, f"retry_signatures[{node}]", 5 if node == "worker2" else 0, Q.BURST_RETRIES, libc="glibc", node=node)
    checks.append(_verdicts(retry, names, {"worker2"}, libc="glibc"))
    for proto in ("udp", "tcp"):
        rep = check(REPLICAS.format(proto), number=15)
        for pod, answered in (("coredns-b", 300), ("coredns-a", 298 if proto == "udp" else 300), ("service", 300)):
            entity = {"replica": pod, "proto": proto}
            _add(rep, f"answered[{pod}/{proto}]", answered, Q.REPLICA_ANSWERED, **entity)
            _add(rep, f"sent[{pod}/{proto}]", 300, Q.REPLICA_SENT, **entity)
            _add(rep, f"p50_ms[{pod}/{proto}]", 0.4, Q.REPLICA_P50, "ms", **entity)
            _add(rep, f"p99_ms[{pod}/{proto}]", 2.5, Q.REPLICA_P99, "ms", **entity)
        checks.append(_verdicts(rep, names, set(), proto=proto))
    return doc(*checks)


def _section(html: str, title: str) -> str:
    return html.split(f"<h3>{title}</h3>", 1)[1].split("<h3>", 1)[0]


def _png_size(html: str) -> tuple[int, int]:
    data = base64.b64decode(re.search(r"<div class='k8sdns-matrix'><img [^>]*src='data:image/png;base64,([^']+)'",
                                      html).group(1))  # type: ignore[union-attr]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _rows(table: str) -> list[list[str]]:
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)
            if "<td" in row]


def test_matrix_of_three_nodes_is_a_png() -> None:
    html = summary.render(_three_nodes(), {})
    section = _section(html, "Nodes")
    width, height = _png_size(section)
    assert width > 0 and height > 0
    assert "3 nodes x 5 checks that judge every node" in section
    assert "3 nodes; 1 failed at least one of the 5 checks" in section
    # the checks as short labels, in the order of their numbers
    v = nodes.verdicts(_three_nodes())
    assert v.columns == ["lookup_latency[glibc]", "lookup_latency[musl]", "retry_signature[glibc]",
                         "every_replica_answers[tcp]", "every_replica_answers[udp]"]


def test_node_table_lists_the_failing_node_first_with_its_figures() -> None:
    section = _section(summary.render(_three_nodes(), {}), "Nodes")
    table = section.split("<table class='k8sdns-nodes'>", 1)[1]
    assert "<th colspan='5'>glibc</th><th colspan='5'>musl</th>" in table
    rows = _rows(table)
    assert [r[0] for r in rows] == ["worker2", "worker1", "worker3"]
    # glibc p50, p99, errors, retry signatures paced and in bursts; then musl; then the failed checks
    assert rows[0][1:6] == ["1.5", "250", "3", "4", "5"]
    assert rows[0][6:11] == ["1.5", "8", "0", "0", "-"]
    assert rows[0][11].startswith("<span class='num'>2</span>")
    assert "lookup_latency[glibc], retry_signature[glibc]" in rows[0][11]
    assert rows[1][11] == "<span class='num'>0</span>"
    assert "<tr class='failing'><td>worker2</td>" in table and "<tr class='failing'><td>worker1" not in table


def test_replica_table_shows_answered_of_sent() -> None:
    section = _section(summary.render(_three_nodes(), {}), "Replicas")
    rows = _rows(section)
    assert rows[0] == ["coredns-a", "UDP", "298 of 300", "0.4", "2.5"]
    assert rows[1] == ["coredns-a", "TCP", "300 of 300", "0.4", "2.5"]
    assert [r[0] for r in rows] == ["coredns-a", "coredns-a", "coredns-b", "coredns-b", "the Service", "the Service"]
    assert "<tr class='failing'><td>coredns-a</td><td>UDP</td>" in section
    assert "<tr class='failing'><td>coredns-a</td><td>TCP</td>" not in section


def test_sections_in_order_after_the_libc_cards() -> None:
    html = summary.render(_three_nodes(), {})
    order = [html.index(h) for h in ("per libc</h3>", "<h3>Nodes</h3>", "<h3>Replicas</h3>", "<h3>Checks</h3>")]
    assert order == sorted(order)


def test_old_document_has_no_nodes_or_replicas() -> None:
    html = summary.render(healthy(), {})
    assert "<h3>Nodes</h3>" not in html and "<h3>Replicas</h3>" not in html and "class='k8sdns-matrix'" not in html
    assert nodes.render(doc()) == ""


def test_figures_without_verdicts_still_list_the_nodes() -> None:
    lat = check(LAT.format("glibc"))
    _add(lat, "p99_ms[worker1]", 9.0, Q.LOOKUP_P99, "ms", libc="glibc", node="worker1")
    section = nodes.render(doc(lat))
    assert "k8sdns-matrix" not in section and "<td>worker1</td>" in section and "<h3>Replicas</h3>" not in section


def _many(count: int, failing: set[str]) -> dict[str, Any]:
    names = [f"node{i}" for i in range(count)]
    checks = [_verdicts(check(LAT.format(libc)), names, failing, libc=libc) for libc in ("glibc", "musl")]
    return doc(*checks)


def test_eighty_nodes_show_the_failing_ones_and_count_the_rest() -> None:
    section = _section(summary.render(_many(80, {"node7", "node42"}), {}), "Nodes")
    width, height = _png_size(section)
    assert width > 0 and height > 0
    assert "alt='2 failing of 80 nodes x 2 checks that judge every node; the other 78 nodes not shown " \
           "(none of them failed)'" in section
    assert [r[0] for r in _rows(section.split("k8sdns-nodes", 1)[1])][:3] == ["node7", "node42", "node0"]


def test_past_sixty_failing_nodes_the_title_counts_the_failing_rest() -> None:
    rows, title = nodes.matrix_title(nodes.verdicts(_many(90, {f"node{i}" for i in range(70)})))
    assert len(rows) == nodes.MAX_ROWS and "the other 30 nodes not shown (10 of them failing)" in title


def test_eighty_nodes_that_all_passed_say_so_without_a_matrix() -> None:
    section = nodes.render(_many(80, set()))
    assert "k8sdns-matrix" not in section
    assert "<p>0 failing of 80 nodes x 2 checks that judge every node; the other 80 nodes not shown" in section


def test_sixty_nodes_by_thirty_checks_is_drawn_in_full() -> None:
    names = [f"ip-10-0-{i}-17.eu-west-1.compute.internal" for i in range(60)]
    checks = [_verdicts(check(f"test_x.py::test_check_{j}[glibc]", number=j), names, {names[j]}, libc="glibc")
              for j in range(30)]
    section = nodes.render(doc(*checks))
    width, height = _png_size(section)
    assert width > 30 * 20 and height > 60 * 15
