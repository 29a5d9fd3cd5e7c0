"""The report's opening summary as HTML, from results documents: per libc flavour, per node and
replica, the upgrade gate's before and after, then every check's verdict and evidence, and the cluster facts."""

from __future__ import annotations

import html
from typing import Any

from pytest_k8sdns.evidence import measure
from pytest_k8sdns.evidence.measure import Q
from pytest_k8sdns.report import nodes
from pytest_k8sdns.verdict.baseline import Comparison, by_check, check_id
from pytest_k8sdns.verdict.expect import client_findings

LIBCS = ("glibc", "musl")
_E = html.escape

#: shown first in the page: pytest-html puts its environment table above the summary
STYLE = """<style>
body { display: flex; flex-direction: column; }
body > * { order: 3; }
#title, #title + p { order: 0; }
.summary { order: 1; }
#results-table { order: 2; }
.k8sdns-summary { color: #222; font-size: 13px; max-width: 1250px; }
.k8sdns-summary h3 { margin: 18px 0 6px; border-bottom: 1px solid #ddd; }
.k8sdns-summary table { border-collapse: collapse; margin: 4px 0 8px; }
.k8sdns-summary th, .k8sdns-summary td { border: 1px solid #e0e0e0; padding: 3px 7px; text-align: left;
  vertical-align: top; }
.k8sdns-summary th { background: #f4f4f4; }
.k8sdns-summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
.k8sdns-libcs { display: flex; flex-wrap: wrap; gap: 18px; }
.k8sdns-libc { flex: 0 1 560px; }
.k8sdns-libc img { display: block; width: 540px; max-width: 100%; }
.k8sdns-verdict { font-size: 15px; font-weight: bold; padding: 6px 10px; border-radius: 3px; display: inline-block; }
.k8sdns-ok { background: #e3f4e4; color: #1d6b22; }
.k8sdns-bad { background: #fbe3e3; color: #a11; }
.k8sdns-skip { background: #fff4d6; color: #7a5a00; }
.k8sdns-summary tr.regressed td { background: #fbe3e3; }
.k8sdns-summary tr.failing td { background: #fbe3e3; }
.k8sdns-matrix img { display: block; max-width: 100%; }
.k8sdns-summary .evidence { max-width: 720px; word-break: break-word; }
</style>"""


def short(value: Any, limit: int = 140) -> str:
    """A value as one short line of text."""
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple)):
        items = [short(v, 60) for v in value[:4]]
        text = "[" + ", ".join(items) + (f", ... +{len(value) - 4}" if len(value) > 4 else "") + "]"
    elif isinstance(value, dict):
        items = [f"{k}={short(v, 40)}" for k, v in list(value.items())[:4]]
        text = "{" + ", ".join(items) + (f", ... +{len(value) - 4}" if len(value) > 4 else "") + "}"
    else:
        text = " / ".join(line.strip() for line in str(value).splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def latency_series(doc: dict[str, Any], libc: str) -> list[float]:
    """Every paced lookup's latency (ms) of one libc's plain pods; [] if not recorded."""
    hits = measure.find(doc, Q.LOOKUP_LATENCY, store="series", libc=libc, option=None)
    return list(hits[0][2].get("values", [])) if hits else []


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else short(value, 40)


def _figure_rows(libc: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, quantity, entity) of the per-libc table."""
    plain = {"libc": libc, "option": None}
    rows = [(f"{k} (ms)", f"lookup.latency.{k}", plain) for k in ("p50", "p90", "p99", "max")]
    rows += [("lookups", Q.LOOKUP_COUNT, plain), ("errors", Q.LOOKUP_ERRORS, plain),
             ("retry signatures, paced", Q.LOOKUP_RETRIES, plain), ("retry signatures, bursts", Q.BURST_RETRIES, plain)]
    if libc == "glibc":
        rows.append(("retry signatures, bursts with single-request-reopen", Q.BURST_RETRIES,
                     {"libc": libc, "option": "single-request-reopen"}))
    return rows


def _libc_card(doc: dict[str, Any], libc: str, img: str, comparison: Comparison | None,
               before: dict[str, Any] | None) -> str:
    regressed = {(r.check, r.figure) for r in comparison.regressions} if comparison else set()
    head = "<tr><th></th><th>now</th>" + ("<th>before</th><th>now / before</th>" if before is not None else "") + "</tr>"
    body = []
    for label, quantity, entity in _figure_rows(libc):
        hits = measure.find(doc, quantity, **entity)
        now = hits[0][2].get("value") if hits else None
        cells = f"<td>{_E(label)}</td><td class='num'>{_num(now)}</td>"
        cls = ""
        if before is not None:
            old = measure.value(before, quantity, **entity)
            ratio = (f"x{now / old:.2f}" if isinstance(now, (int, float)) and isinstance(old, (int, float)) and old
                     else "-")
            cells += f"<td class='num'>{_num(old)}</td><td class='num'>{ratio}</td>"
            if hits and (hits[0][0]["id"], hits[0][1]) in regressed:
                cls = " class='regressed'"
        body.append(f"<tr{cls}>{cells}</tr>")
    namespace = str(doc.get("cluster", {}).get("namespace") or "")
    queries: dict[str, dict[int, Any]] = {}
    for ndots in (5, 2):
        for check, key, m in measure.find(doc, Q.QUERIES_PER_LOOKUP, libc=libc, ndots=ndots):
            looked_up = str(measure.entity_of(check, m).get("name") or key.partition("[")[2].rstrip("]"))
            name = looked_up.replace(namespace, "<ns>") if namespace else looked_up
            queries.setdefault(name, {})[ndots] = m.get("value")
    qrows = "".join(f"<tr><td><code>{_E(name)}</code></td><td class='num'>{_num(v.get(5))}</td>"
                    f"<td class='num'>{_num(v.get(2))}</td></tr>" for name, v in queries.items())
    qtable = (f"<table><tr><th>queries per lookup (A+AAAA, search list)</th><th>ndots:5</th><th>ndots:2</th></tr>"
              f"{qrows}</table>" if qrows else "<p>queries per lookup: not measured in this run</p>")
    return (f"<div class='k8sdns-libc'><h4>{_E(libc)}</h4>{img}<table>{head}{''.join(body)}</table>{qtable}</div>")


def _verdict(doc: dict[str, Any], comparison: Comparison | None) -> str:
    s = doc.get("summary", {})
    bad = s.get("failed", 0) + s.get("error", 0)
    counts = ", ".join(f"{n} {k}" for k, n in s.items() if n)
    profile = doc.get("profile", "default")
    ok = not bad and (comparison is None or comparison.ok)
    word = ("CERTIFIED" if ok else "NOT CERTIFIED") if profile == "certification" else ("PASSED" if ok else "FAILED")
    gate = ""
    if comparison is not None:
        gate = (f"; upgrade gate {'passed' if comparison.ok else 'FAILED'} "
                f"({len(comparison.regressions)} regression{'s' if len(comparison.regressions) != 1 else ''})")
    return (f"<p><span class='k8sdns-verdict {'k8sdns-ok' if ok else 'k8sdns-bad'}'>{word}</span> "
            f"{_E(profile)} profile, pytest-k8sdns {_E(str(doc.get('suite_version')))}: {_E(counts)}{_E(gate)}</p>")


def _evidence(check: dict[str, Any]) -> str:
    if check.get("outcome") != "passed" and check.get("message"):
        return _E(short(check["message"], 400))
    parts = []
    for name, m in check.get("measurements", {}).items():
        # file contents and long lists are cut here: the test's own row holds them whole
        parts.append(f"{name}={short(m.get('value'), 90)}{(' ' + m['unit']) if m.get('unit') else ''}")
    return _E("; ".join(parts[:8]) + (f"; ... +{len(parts) - 8}" if len(parts) > 8 else ""))


_BADGE = {"passed": "k8sdns-ok", "skipped": "k8sdns-skip"}


def _checks_table(doc: dict[str, Any], before: dict[str, Any] | None) -> str:
    old = {c.get("id") or check_id(c["nodeid"]): c for c in (before or {}).get("checks", [])}
    rows = []
    for c in sorted(doc.get("checks", []), key=lambda c: (c.get("number") is None, c.get("number") or 0, c["id"])):
        outcome = c.get("outcome", "unknown")
        was = ""
        if before is not None:
            b = old.get(c["id"])
            was = f"<td>{_E(b['outcome']) if b else 'not run'}</td>"
        rows.append(f"<tr><td class='num'>{_E(str(c.get('number') or ''))}</td><td><code>{_E(c['id'])}</code></td>"
                    f"<td class='{_BADGE.get(outcome, 'k8sdns-bad')}'>{_E(outcome)}</td>{was}"
                    f"<td class='evidence'>{_evidence(c)}</td></tr>")
    head = "<tr><th>no.</th><th>check</th><th>verdict</th>" + ("<th>before</th>" if before is not None else "") + \
        "<th>evidence</th></tr>"
    return f"<table class='k8sdns-checks'>{head}{''.join(rows)}</table>"


def _facts(doc: dict[str, Any]) -> str:
    f = doc.get("cluster", {})
    s = doc.get("settings", {})
    where = f"kind cluster {f['kind_cluster']}" if f.get("kind_cluster") else f"context {f.get('context')}"
    rows = [("cluster", f"{where}, {f.get('server', '')}"), ("server version", f.get("server_version", "")),
            ("cluster DNS", f.get("coredns", "")), ("NodeLocal DNSCache", f.get("nodelocal", "")),
            ("namespace", f.get("namespace", ""))]
    if f.get("upstream"):
        rows.append(("test upstream DNS", f["upstream"]))
    libcs = f.get("probe_libc") or {}
    rows += [("probe images", f"glibc {s.get('glibc_image')}, musl {s.get('musl_image')}"
                              + (f"; their libc: {', '.join(v for _, v in sorted(libcs.items()))}" if libcs else "")),
             ("samples", (f"{s.get('samples')} paced lookups per libc at {s.get('qps')}/s; "
                          f"{s.get('bursts')} bursts of {s.get('burst_size')}")),
             ("thresholds", (f"p50 <= {s.get('p50_ms')} ms, p99 <= {s.get('p99_ms')} ms, errors <= "
                             f"{s.get('max_error_rate')}, retry signatures <= {s.get('max_retry_signatures')}"))]
    table = "".join(f"<tr><th>{_E(k)}</th><td>{_E(str(v))}</td></tr>" for k, v in rows)
    nodes = "".join(f"<tr><td>{_E(n.get('name', ''))}</td><td>{_E(n.get('kubelet', ''))}</td>"
                    f"<td>{_E(n.get('container_runtime', ''))}</td><td>{_E(n.get('kernel', ''))}</td>"
                    f"<td>{_E(n.get('os_image', ''))}</td></tr>" for n in f.get("nodes", []))
    return (f"<table>{table}</table><table><tr><th>node</th><th>kubelet</th><th>container runtime</th>"
            f"<th>kernel</th><th>OS</th></tr>{nodes}</table>")


def _gate(comparison: Comparison, source: str) -> str:
    items = "".join(f"<li>{_E(r.message)}</li>" for r in comparison.regressions) or "<li>no regression</li>"
    regressed = {(r.check, r.figure) for r in comparison.regressions}
    rows = []
    for cid, figures in by_check(comparison.figures).items():
        for name, fig in figures.items():
            cls = " class='regressed'" if (cid, name) in regressed else ""
            ratio = f"x{fig.ratio:.2f}" if fig.ratio is not None else "-"
            rows.append(f"<tr{cls}><td><code>{_E(cid)}</code></td><td>{_E(name)}</td><td class='num'>{_num(fig.before)}"
                        f"</td><td class='num'>{_num(fig.after)}</td><td class='num'>{ratio}</td></tr>")
    changed = [(c, b, a) for c, b, a in comparison.outcomes if b != a]
    outcome_rows = "".join(f"<tr{' class=regressed' if b == 'passed' else ''}><td><code>{_E(c)}</code></td>"
                           f"<td>{_E(b)}</td><td>{_E(a)}</td></tr>" for c, b, a in changed)
    return (f"<p>against <code>{_E(source)}</code> ({_E(comparison.before_created)}), p99 may grow at most "
            f"x{comparison.max_p99_growth:g} (values below {comparison.p99_floor_ms:g} ms count as "
            f"{comparison.p99_floor_ms:g} ms)</p><ul>{items}</ul>"
            + (f"<table><tr><th>check</th><th>before</th><th>now</th></tr>{outcome_rows}</table>" if changed else "")
            + "<table class='k8sdns-gate'><tr><th>check</th><th>figure</th><th>before</th><th>now</th>"
              f"<th>now / before</th></tr>{''.join(rows)}</table>")


def _root_causes(doc: dict[str, Any]) -> str:
    """Root cause first: the lower-level failures, each with the checks it affected."""
    found = doc.get("root_causes") or []
    if not found:
        return ""
    items = "".join(
        f"<li><b>{_E(c.get('text', ''))}</b> <i>({_E(c.get('owner', ''))})</i>"
        + (f"<br/>affected {len(c['affected'])} checks: {_E(', '.join(str(n).split('::', 1)[-1] for n in c['affected']))}"
           if c.get("affected") else "") + "</li>" for c in found)
    return f"<h3 id='k8sdns-root-cause'>Root cause</h3><ul class='k8sdns-root-cause'>{items}</ul>"


def _client_findings(doc: dict[str, Any]) -> str:
    """What the workloads on a probe's libc should know (check 18): shown, not failed."""
    found = client_findings(doc)
    if not found:
        return ""
    items = "".join(f"<li><b>{_E(check)}</b>: {_E(text)}</li>" for check, text in found)
    return f"<h3 id='k8sdns-client-findings'>Client findings</h3><ul class='k8sdns-client-findings'>{items}</ul>"


def render(doc: dict[str, Any], plots: dict[str, str], comparison: Comparison | None = None,
           before: dict[str, Any] | None = None) -> str:
    """The whole summary block; `plots` maps each libc to its CDF <img>."""
    cards = "".join(_libc_card(doc, libc, plots.get(libc, ""), comparison, before) for libc in LIBCS)
    gate = ""
    if comparison is not None:
        source = str((doc.get("baseline") or {}).get("file", "the baseline"))
        gate = f"<h3>Upgrade gate: before and after</h3>{_gate(comparison, source)}"
    return (f"{STYLE}<div class='k8sdns-summary' id='k8sdns-summary'>{_root_causes(doc)}{_client_findings(doc)}{_verdict(doc, comparison)}"
            f"<h3>Lookups from inside pods, per libc</h3><div class='k8sdns-libcs'>{cards}</div>"
            f"{nodes.render(doc)}{gate}<h3>Checks</h3>{_checks_table(doc, before)}<h3>Cluster</h3>{_facts(doc)}</div>")
