"""Verdicts of both runs for scripts/e2e_parity.py: the e2e JUnit XML, our results JSON, and the
markdown table that puts them side by side."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from e2e_parity_map import Parity, parity_of


class E2eResult(NamedTuple):
    verdict: str  # passed, failed, skipped, or "not run (--e2e-skip)"
    message: str  # first line of the failure message, or ""
    seconds: float


def _last_lookups(log: str, message: str) -> str:
    """The lookups a DNS test's probe pod last failed, from the run's log: the JUnit message names
    only the result file it was reading when the 600 s poll ran out, often one that had passed."""
    pod = re.search(r"from pod (\S+?):", message)
    if not pod:
        return ""
    seen = re.findall(rf"Lookups using {re.escape(pod.group(1))} failed for: \[([^\]]*)\]", log)
    return " ".join(dict.fromkeys(seen[-1].split())) if seen else ""


def e2e_verdicts(report_dir: Path, focus: str, skip: str, log: Path | None = None) -> dict[str, E2eResult]:
    """Each e2e test the focus selects, from ginkgo's JUnit file(s) in `report_dir`; with the run's
    `log`, a DNS test's failure also names the lookups that failed last."""
    out: dict[str, E2eResult] = {}
    log_text = log.read_text(errors="replace") if log is not None and log.exists() else ""
    for xml in sorted(report_dir.glob("junit*.xml")):
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = " ".join(case.get("name", "").removeprefix("[It] ").split())
            if not re.search(focus, name):
                continue
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            if failure is not None:
                text = (failure.get("message") or failure.text or "").strip()
                first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
                lookups = _last_lookups(log_text, first)
                if lookups:
                    first = f"last failed lookups: {lookups} ({first})"
                out[name] = E2eResult("failed", first, float(case.get("time") or 0))
            elif case.find("skipped") is not None:
                verdict = "not run (--e2e-skip)" if skip and re.search(skip, name) else "skipped"
                out[name] = E2eResult(verdict, "", 0.0)
            else:
                out[name] = E2eResult("passed", "", float(case.get("time") or 0))
    return out


def our_verdicts(results: Path, checks: Sequence[str]) -> dict[str, str]:
    """Each named check's verdict over its parametrizations: `passed`, `failed 2/4`, `skipped`, or
    `not run` (absent from the results file)."""
    doc = json.loads(results.read_text()) if results.exists() else {"checks": []}
    by: dict[str, Counter[str]] = {c: Counter() for c in checks}
    for check in doc.get("checks", []):
        if check.get("name") in by:
            by[check["name"]][check.get("outcome", "unknown")] += 1
    out = {}
    for name, n in by.items():
        total = sum(n.values())
        bad = n["failed"] + n["error"] + n["unknown"]
        if not total:
            out[name] = "not run"
        elif bad:
            out[name] = f"failed {bad}/{total}"
        elif n["passed"] and n["skipped"]:
            out[name] = f"passed ({n['skipped']} of {total} skipped)"
        else:
            out[name] = "passed" if n["passed"] else "skipped"
    return out


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(scenario: str, e2e: dict[str, E2eResult], ours: dict[str, str], e2e_s: float, ours_s: float,
          parity: Sequence[Parity]) -> str:
    """One scenario's markdown table, e2e tests in the parity table's order, then any unmapped."""
    order = {p.key: i for i, p in enumerate(parity)}

    def rank(name: str) -> tuple[int, str]:
        p = parity_of(name)
        return (order[p.key] if p else len(order), name)

    rows = [f"### {scenario}: e2e.test {e2e_s:.0f} s, our suite {ours_s:.0f} s", "",
            "| e2e test | e2e verdict | our checks | our verdict |", "|---|---|---|---|"]
    for name in sorted(e2e, key=rank):
        r = e2e[name]
        p = parity_of(name)
        short = name.removeprefix("[sig-network] ")
        verdict = f"{r.verdict} ({r.seconds:.0f} s)" if r.verdict in ("passed", "failed") else r.verdict
        if r.message:
            verdict += f": {r.message}"
        checks = p.checks if p else ()
        mine = "<br>".join(ours.get(c, "not run") for c in checks) or "-"
        rows.append(f"| {_cell(short, 140)} | {_cell(verdict)} | {'<br>'.join(checks) or 'none'} | {mine} |")
    return "\n".join(rows)
