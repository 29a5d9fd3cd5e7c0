"""What a lossy node costs in wall time: the packaged suite by context on a control plane plus 3
workers, healthy and then with node_client_loss(worker, 0.3) on one worker, same options.

    python benchmarks/lossy_time.py [--share 0.3] [--warmup 1]

Prints both wall times and their ratio (target: the faulted run at most 2x the healthy one), the
checks the faulted run failed with the first 200 characters of each message, and whether they
name only the faulted worker. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import time

from common import failures, suite_with_results, warm_cluster, workers

from pytest_k8sdns.faults import Faults
from pytest_k8sdns.session import new_run_id


def named(message: str, name: str) -> bool:
    """`name` is in the message as a whole name (worker is not worker2)."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", message) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed healthy runs first (page cache, kubelet)")
    args = parser.parse_args()
    began = time.monotonic()
    with warm_cluster(f"bench-lossy-{new_run_id()}", 3) as run:
        assert run.kind is not None
        print(f"cluster {run.kind.name} made in {time.monotonic() - began:.1f} s", flush=True)
        for _ in range(args.warmup):
            timing, _results = suite_with_results(run)
            print(f"warm-up: {timing['wall']:.1f} s, exit {timing['exit']}: {timing['summary']}", flush=True)
        healthy, healthy_results = suite_with_results(run)
        print(f"healthy: {healthy['wall']:.1f} s, exit {healthy['exit']}: {healthy['summary']}", flush=True)
        for name, message in failures(healthy_results).items():
            print(f"  FAILED {name}: {message[:200]}")
        node, others = workers(run)[-1], workers(run)[:-1]
        with Faults(run.cluster, run.kind).node_client_loss(node, args.share):
            faulted, results = suite_with_results(run)
        print(f"faulted ({args.share:g} of {node}'s UDP/53 lost): {faulted['wall']:.1f} s, exit {faulted['exit']}: "
              f"{faulted['summary']}", flush=True)
    bad = failures(results)
    for name, message in bad.items():
        print(f"  FAILED {name}: {message[:200]}")
    stray = {name: [o for o in others if named(m, o)] for name, m in bad.items()}
    stray = {name: o for name, o in stray.items() if o}
    unnamed = [name for name, m in bad.items() if not named(m, node)]
    only = bool(bad) and not stray and not unnamed
    print(f"only {node} named: {'yes' if only else 'no'}"
          + (f"; other workers named by {stray}" if stray else "")
          + (f"; {node} not named by {unnamed}" if unnamed else ""))
    for name in stray:
        print(f"  {name}, whole message: {bad[name]}")
    before = healthy.get("items", {})
    grew = sorted(((t - before.get(n, 0.0), n, t) for n, t in faulted.get("items", {}).items()), reverse=True)
    print("tests that grew most (set-up + call + teardown): "
          + "; ".join(f"{n} +{d:.1f} s (now {t:.1f} s)" for d, n, t in grew[:10]))
    ratio = faulted["wall"] / healthy["wall"]
    print(f"wall: healthy {healthy['wall']:.1f} s, faulted {faulted['wall']:.1f} s, "
          f"ratio {ratio:.2f} (target <= 2.00)")
    print(f"total {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
