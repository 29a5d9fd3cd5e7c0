"""The upgrade gate: compare a run's results with an earlier run's (no pytest, no cluster).

A run regresses against its baseline when a check's p99 grew by more than a ratio, when a check
shows more lookups at the libc retry signature than before, or when a check that passed before
now fails or skips. Checks are matched by their stable id (`test_latency.py::test_lookup_latency[glibc]`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from pytest_k8sdns.config import default
from pytest_k8sdns.evidence.measure import (
    GROWTH_BOUNDED,
    MUST_NOT_GROW,
    SHOWN,
    quantity_of,
)

FAILING = ("failed", "error")


@dataclasses.dataclass(frozen=True)
class Figure:
    """One measurement of one check, before and after."""

    check: str
    figure: str
    unit: str
    before: float | None
    after: float | None

    @property
    def ratio(self) -> float | None:
        if self.before is None or self.after is None or self.before == 0:
            return None
        return round(self.after / self.before, 3)


@dataclasses.dataclass(frozen=True)
class Regression:
    kind: str  # now-failing | now-skipped | p99-growth | new-retry-signatures
    check: str
    message: str
    figure: str | None = None
    before: Any = None
    after: Any = None


@dataclasses.dataclass(frozen=True)
class Comparison:
    max_p99_growth: float
    p99_floor_ms: float
    before_created: str
    before_version: str
    figures: tuple[Figure, ...]
    outcomes: tuple[tuple[str, str, str], ...]  # (check, before, after) for every check in both runs
    regressions: tuple[Regression, ...]
    missing: tuple[str, ...]  # checks of the baseline this run did not run

    @property
    def ok(self) -> bool:
        return not self.regressions

    def lines(self, source: str) -> list[str]:
        """The terminal section: a head line, then one line per regression."""
        head = (f"upgrade gate against {source} ({self.before_created}, pytest-k8sdns {self.before_version}): "
                + ("passed" if self.ok else f"FAILED, {len(self.regressions)} regression"
                   f"{'s' if len(self.regressions) != 1 else ''}"))
        lines = [head] + [f"  {r.message}" for r in self.regressions]
        if self.missing:
            lines.append(f"  not run this time (not compared): {', '.join(self.missing)}")
        return lines

    def as_dict(self, source: str) -> dict[str, Any]:
        return {
            "file": source, "created": self.before_created, "suite_version": self.before_version,
            "max_p99_growth": self.max_p99_growth, "p99_floor_ms": self.p99_floor_ms, "ok": self.ok,
            "regressions": [dataclasses.asdict(r) for r in self.regressions],
            "figures": [{**dataclasses.asdict(f), "ratio": f.ratio} for f in self.figures],
        }


def check_id(nodeid: str) -> str:
    """A check's name that does not depend on where the suite was run from:
    `test_latency.py::test_lookup_latency[glibc]` for any path to test_latency.py."""
    path, _, rest = nodeid.partition("::")
    return f"{PurePosixPath(path).name}::{rest}" if rest else PurePosixPath(path).name


def _number(entry: dict[str, Any] | None) -> float | None:
    value = (entry or {}).get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _checks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("id") or check_id(c["nodeid"]): c for c in doc.get("checks", [])}


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def compare(before: dict[str, Any], after: dict[str, Any], max_p99_growth: float = default("max_p99_growth"),
            p99_floor_ms: float = default("p99_floor_ms")) -> Comparison:
    """Compare two results documents.

    p99 growth is after / before with both raised to at least p99_floor_ms, so that jitter of a
    fast cluster (1 ms -> 2 ms) does not count as growth; it regresses when above max_p99_growth.
    """
    old, new = _checks(before), _checks(after)
    figures: list[Figure] = []
    regressions: list[Regression] = []
    outcomes = []
    for cid in sorted(set(old) & set(new)):
        b, a = old[cid], new[cid]
        outcomes.append((cid, b["outcome"], a["outcome"]))
        if b["outcome"] == "passed" and a["outcome"] in FAILING:
            regressions.append(Regression("now-failing", cid, f"passed before, {a['outcome']} now: {cid}: "
                                          f"{a.get('message', '')[:300]}", None, b["outcome"], a["outcome"]))
        elif b["outcome"] == "passed" and a["outcome"] == "skipped":
            # what the cluster served before and no longer does (NodeLocal gone, pod records
            # withdrawn) shows as a check that now skips
            regressions.append(Regression("now-skipped", cid, f"passed before, skipped now: {cid}: "
                                          f"{a.get('message', '')[:300]}", None, b["outcome"], a["outcome"]))
        bm, am = b.get("measurements", {}), a.get("measurements", {})
        # which figures are compared, and by which rule, follows from what they measure (their
        # quantity), not from their names or the check's
        # per-node figures are not gated one by one (a p99 of 100 nodes would be 100 coin tosses): the
        # pooled figure of the check is, and the report shows each node's
        shown = {name: q for name in {**bm, **am}
                 if (q := quantity_of(a if name in am else b, name, am.get(name) or bm[name])) in SHOWN
                 and "node" not in ((am.get(name) or bm.get(name) or {}).get("entity") or {})}
        for name in sorted(shown, key=lambda n: (SHOWN.index(shown[n]), n)):
            fig = Figure(cid, name, (am.get(name) or bm.get(name) or {}).get("unit", ""), _number(bm.get(name)),
                         _number(am.get(name)))
            figures.append(fig)
            if fig.before is None or fig.after is None:
                continue
            if shown[name] in GROWTH_BOUNDED:
                growth = max(fig.after, p99_floor_ms) / max(fig.before, p99_floor_ms)
                if growth > max_p99_growth:
                    regressions.append(Regression(
                        "p99-growth", cid, f"p99 grew x{growth:.2f} (more than x{max_p99_growth:g}): {cid} {name} "
                        f"{_fmt(fig.before)} -> {_fmt(fig.after)} ms", name, fig.before, fig.after))
            elif shown[name] in MUST_NOT_GROW and fig.after > fig.before:
                regressions.append(Regression(
                    "new-retry-signatures", cid, f"new retry signatures: {cid} {_fmt(fig.before)} -> "
                    f"{_fmt(fig.after)} lookups at the libc retry time", name, fig.before, fig.after))
    order = {"now-failing": 0, "now-skipped": 1, "p99-growth": 2, "new-retry-signatures": 3}
    regressions.sort(key=lambda r: (order[r.kind], r.check))
    return Comparison(max_p99_growth, p99_floor_ms, str(before.get("created", "?")), str(before.get("suite_version", "?")),
                      tuple(figures), tuple(outcomes), tuple(regressions),
                      tuple(sorted(c for c in set(old) - set(new) if old[c]["outcome"] == "passed")))


def by_check(figures: Iterable[Figure]) -> dict[str, dict[str, Figure]]:
    """{check id: {figure name: Figure}}, for side-by-side tables."""
    out: dict[str, dict[str, Figure]] = {}
    for f in figures:
        out.setdefault(f.check, {})[f.figure] = f
    return out
