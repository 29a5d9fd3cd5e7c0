"""Propagation figures (check 17): per kind of object, node, libc and (with NodeLocal DNSCache)
path, the p50, p99 and worst time from ready to answering, and a table of every stream."""

from __future__ import annotations

from pytest_k8sdns.dns.propagation import Delay, Propagation, quantile_s
from pytest_k8sdns.evidence.measure import Measurement, Q

#: one stream of lookups: (node, libc, path); the path is "" when every pod asked the same way
Key = tuple[str, str, str]


def _shown(value: float | None) -> float | str | None:
    if value is None:
        return None
    return "never" if value == float("inf") else round(value, 3)


def label(key: Key) -> str:
    """node/libc, and /path when the pods asked more than one way."""
    return "/".join(part for part in key if part)


def by_stream(p: Propagation, kind: str) -> dict[Key, list[Delay]]:
    out: dict[Key, list[Delay]] = {}
    for d in p.of(kind):
        out.setdefault((d.node, d.libc, d.path), []).append(d)
    return dict(sorted(out.items()))


def paths(p: Propagation) -> list[str]:
    """The ways the pods asked, when more than one (NodeLocal DNSCache and CoreDNS beside it)."""
    found = sorted({d.path for d in p.delays if d.path})
    return found if len(found) > 1 else []


def measurements(p: Propagation, kind: str) -> list[Measurement]:
    quantity = {"primed": Q.NEGATIVE_WINDOW}.get(kind)
    out = []
    for key, delays in by_stream(p, kind).items():
        node, libc, path = key
        entity = {"kind": kind, "node": node, "libc": libc, **({"path": path} if path else {})}
        name = label(key)
        if quantity is not None:
            out.append(Measurement(f"worst_s[{name}]", _shown(quantile_s(delays, 100)), "s", quantity, entity))
            continue
        out.append(Measurement(f"p50_s[{name}]", _shown(quantile_s(delays, 50)), "s", Q.PROPAGATION_P50, entity))
        out.append(Measurement(f"p99_s[{name}]", _shown(quantile_s(delays, 99)), "s", Q.PROPAGATION_P99, entity))
    every = p.of(kind)
    out.append(Measurement("objects", len({d.name for d in every}), ""))
    for path in paths(p):  # each way pooled over its nodes and libcs
        mine = [d for d in every if d.path == path]
        out.append(Measurement(f"p99_s[{path}]", _shown(quantile_s(mine, 99)), "s",
                               Q.PROPAGATION_P99 if quantity is None else None, {"kind": kind, "path": path}))
    out.append(Measurement("p50_s", _shown(quantile_s(every, 50)), "s",
                           Q.PROPAGATION_P50 if quantity is None else None, {"kind": kind}))
    out.append(Measurement("p99_s", _shown(quantile_s(every, 99)), "s",
                           Q.PROPAGATION_P99 if quantity is None else None, {"kind": kind}))
    out.append(Measurement("chase_every_s", round(p.chase_every_s, 3), "s"))
    return out


def table(p: Propagation, kind: str) -> tuple[list[str], list[list[object]]]:
    multi = bool(paths(p))
    header = ["node", "libc", *(["path"] if multi else []), "objects", "p50 s", "p99 s", "worst s",
              "lookups refused first"]
    rows: list[list[object]] = [
        [node, libc, *([path] if multi else []), len(ds), _shown(quantile_s(ds, 50)), _shown(quantile_s(ds, 99)),
         _shown(quantile_s(ds, 100)), sum(d.failed_before for d in ds)]
        for (node, libc, path), ds in by_stream(p, kind).items()]
    return header, rows
