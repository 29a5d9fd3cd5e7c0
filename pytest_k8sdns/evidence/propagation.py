"""Propagation figures (check 17): per kind of object, node and libc, the p50, p99 and worst time
from ready to answering, and a table of every stream."""

from __future__ import annotations

from pytest_k8sdns.dns.propagation import Delay, Propagation, quantile_s
from pytest_k8sdns.evidence.measure import Measurement, Q


def _shown(value: float | None) -> float | str | None:
    if value is None:
        return None
    return "never" if value == float("inf") else round(value, 3)


def by_stream(p: Propagation, kind: str) -> dict[tuple[str, str], list[Delay]]:
    out: dict[tuple[str, str], list[Delay]] = {}
    for d in p.of(kind):
        out.setdefault((d.node, d.libc), []).append(d)
    return out


def measurements(p: Propagation, kind: str) -> list[Measurement]:
    quantity = {"primed": Q.NEGATIVE_WINDOW}.get(kind)
    out = []
    for (node, libc), delays in sorted(by_stream(p, kind).items()):
        entity = {"kind": kind, "node": node, "libc": libc}
        if quantity is not None:
            out.append(Measurement(f"worst_s[{node}/{libc}]", _shown(quantile_s(delays, 100)), "s", quantity, entity))
            continue
        out.append(Measurement(f"p50_s[{node}/{libc}]", _shown(quantile_s(delays, 50)), "s", Q.PROPAGATION_P50, entity))
        out.append(Measurement(f"p99_s[{node}/{libc}]", _shown(quantile_s(delays, 99)), "s", Q.PROPAGATION_P99, entity))
    every = p.of(kind)
    out.append(Measurement("objects", len({d.name for d in every}), ""))
    out.append(Measurement("p50_s", _shown(quantile_s(every, 50)), "s",
                           Q.PROPAGATION_P50 if quantity is None else None, {"kind": kind}))
    out.append(Measurement("p99_s", _shown(quantile_s(every, 99)), "s",
                           Q.PROPAGATION_P99 if quantity is None else None, {"kind": kind}))
    out.append(Measurement("chase_every_s", round(p.chase_every_s, 3), "s"))
    return out


def table(p: Propagation, kind: str) -> tuple[list[str], list[list[object]]]:
    header = ["node", "libc", "objects", "p50 s", "p99 s", "worst s", "lookups refused first"]
    rows: list[list[object]] = [
        [node, libc, len(ds), _shown(quantile_s(ds, 50)), _shown(quantile_s(ds, 99)), _shown(quantile_s(ds, 100)),
         sum(d.failed_before for d in ds)]
        for (node, libc), ds in sorted(by_stream(p, kind).items())]
    return header, rows
