"""The summary the HTML report opens with: per libc, the checks, the cluster, before and after."""

from __future__ import annotations

import base64
import re

from results_docs import healthy

from pytest_k8sdns.report import summary
from pytest_k8sdns.report.html import render_summary
from pytest_k8sdns.verdict.baseline import compare

LAT = "test_latency.py::test_lookup_latency[glibc]"


def _cell_after(html: str, label: str) -> list[str]:
    row = re.search(rf"<tr[^>]*><td>{re.escape(label)}</td>(.*?)</tr>", html)
    assert row, label
    return re.findall(r"<td class='num'>(.*?)</td>", row.group(1))


def _card(html: str, libc: str) -> str:
    return html.split(f"<h4>{libc}</h4>", 1)[1].split("</div>", 1)[0]


def test_per_libc_figures_queries_and_order_of_sections() -> None:
    html = summary.render(healthy(), {"glibc": "<img id='g'/>", "musl": "<img id='m'/>"})
    glibc = _card(html, "glibc")
    assert glibc.startswith("<img id='g'/>")
    assert [_cell_after(glibc, f"{k} (ms)") for k in ("p50", "p90", "p99", "max")] == [["0.6"], ["0.9"], ["8"], ["12"]]
    assert _cell_after(glibc, "retry signatures, paced") == ["0"]
    assert _cell_after(glibc, "retry signatures, bursts") == ["0"]
    assert _cell_after(glibc, "retry signatures, bursts with single-request-reopen") == ["0"]
    assert "single-request-reopen" not in _card(html, "musl")
    # the run's namespace is shown as <ns>; ndots:5 and ndots:2 side by side
    assert "<td><code>web.&lt;ns&gt;.svc</code></td><td class='num'>6</td><td class='num'>2</td>" in glibc
    order = [html.index(h) for h in ("Lookups from inside pods, per libc", "<h3>Checks</h3>", "<h3>Cluster</h3>")]
    assert order == sorted(order)
    assert "PASSED</span> default profile" in html


def test_checks_with_verdict_and_evidence_sorted_by_number() -> None:
    doc = healthy(**{"test_latency.py::test_retry_signature[musl]": {"outcome": "failed",
                                                                       "message": "musl lookups at the retry signature"}})
    html = summary.render(doc, {})
    checks = html.split("<h3>Checks</h3>", 1)[1].split("<h3>Cluster</h3>", 1)[0]
    numbers = [int(n) for n in re.findall(r"<tr><td class='num'>(\d+)</td>", checks)]
    assert numbers == sorted(numbers) and numbers[0] == 9
    assert "<td class='k8sdns-bad'>failed</td><td class='evidence'>musl lookups at the retry signature</td>" in checks
    assert "p99_ms=8 ms" in checks and "<td class='k8sdns-skip'>skipped</td>" in checks
    assert "FAILED</span>" in html


def test_cluster_facts() -> None:
    facts = summary.render(healthy(), {}).split("<h3>Cluster</h3>", 1)[1]
    for text in ("v1.34.4", "containerd://1.6.20", "6.1.0", "coredns v1.12.1", "NodeLocal DNSCache</th><td>absent",
                 "300 paced lookups per libc"):
        assert text in facts


def test_before_and_after_side_by_side() -> None:
    before, after = healthy(), healthy(**{LAT: {"p99_ms": 800.0}})
    comparison = compare(before, after)
    after["baseline"] = comparison.as_dict("before.json")
    html = summary.render(after, {}, comparison, before)
    glibc = _card(html, "glibc")
    assert "<th>now</th><th>before</th><th>now / before</th>" in glibc
    assert re.search(r"<tr class='regressed'><td>p99 \(ms\)</td><td class='num'>800</td><td class='num'>8</td>"
                     r"<td class='num'>x100.00</td></tr>", glibc)
    gate = html.split("Upgrade gate: before and after", 1)[1].split("<h3>Checks</h3>", 1)[0]
    assert "against <code>before.json</code>" in gate and "p99 grew x100.00" in gate
    assert "upgrade gate FAILED (1 regression)" in html


def test_plots_are_embedded_images() -> None:
    html = render_summary(healthy())
    images = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(images) == 2
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "src='http" not in html and "assets/" not in html


def test_short_values() -> None:
    assert summary.short(0.25) == "0.25"
    assert summary.short(list(range(9))) == "[0, 1, 2, 3, ... +5]"
    assert summary.short("a\n b\n") == "a / b"
    assert summary.short("x" * 300, 20) == "x" * 17 + "..."
