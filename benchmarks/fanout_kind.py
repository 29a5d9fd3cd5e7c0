"""The fan-out's cost on kind: the packaged suite by context on a control plane plus 1, 2 and 4
workers, with the plugin's own API requests (results file `cluster.api_requests`) per size.

    python benchmarks/fanout_kind.py [--workers 1 2 4]

For each size it makes one kind cluster the way --k8sdns-kind does, runs the default suite on it
once by its context, deletes it, and prints the wall time, the checks passed and failed, the API
requests (total, "create pods", "create pods/exec"), the probe pods, and the increments per added
worker. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from common import failures, suite_with_results, warm_cluster

from pytest_k8sdns.session import new_run_id

COLUMNS = ["wall s", "passed", "failed", "requests", "pod creates", "execs", "probe pods", "fleet pods"]


def figures(timing: dict[str, Any], results: dict[str, Any]) -> dict[str, float]:
    requests = results["cluster"].get("api_requests", {})
    summary = results["summary"]
    return {
        "wall s": timing["wall"],
        "passed": summary.get("passed", 0),
        "failed": summary.get("failed", 0) + summary.get("error", 0),
        "requests": sum(requests.values()),
        "pod creates": requests.get("create pods", 0),
        "execs": requests.get("create pods/exec", 0),
        # every pod the suite creates runs a probe image (the fleet, capture, dnsConfig, headless ones)
        "probe pods": requests.get("create pods", 0),
        # the per-node fleet: one pod of each libc on every node the placement chose
        "fleet pods": 2 * len(results["cluster"].get("placement", {}).get("chosen", [])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    began = time.monotonic()
    rows: dict[int, dict[str, float]] = {}
    for workers in args.workers:
        made = time.monotonic()
        with warm_cluster(f"bench-fan{workers}w-{new_run_id()}", workers) as run:
            assert run.kind is not None
            ready = time.monotonic()
            print(f"{workers} worker(s): cluster {run.kind.name} made in {ready - made:.1f} s", flush=True)
            timing, results = suite_with_results(run)
        rows[workers] = figures(timing, results)
        requests = results["cluster"].get("api_requests")
        print(f"  suite: exit {timing['exit']}: {timing['summary']}")
        print(f"  api_requests: {requests if requests is not None else 'absent from the results file'}")
        for name, message in failures(results).items():
            print(f"  FAILED {name}: {message[:200]}")
        print(f"  cluster made, tested and deleted in {time.monotonic() - made:.1f} s", flush=True)
    print()
    print(f"{'workers':>7} " + " ".join(f"{c:>11}" for c in COLUMNS))
    for workers, row in rows.items():
        print(f"{workers:7d} " + " ".join(f"{row[c]:11.1f}" if c == "wall s" else f"{row[c]:11d}" for c in COLUMNS))
    sizes = sorted(rows)
    for a, b in zip(sizes, sizes[1:]):
        per = {c: (rows[b][c] - rows[a][c]) / (b - a) for c in COLUMNS if c not in ("passed", "failed")}
        print(f"per added worker, {a} -> {b}: " + ", ".join(f"{c} {v:+.1f}" for c, v in per.items()))
    print(f"total {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
