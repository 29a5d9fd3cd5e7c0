"""Wall time of the full default suite on a warm kind cluster, broken down, for 1, 2 and 3 workers.

    python benchmarks/suite_walltime.py [--workers 1 2 3] [--runs 3]

For each cluster size it makes one kind cluster the way --k8sdns-kind does (test upstream, probe
images loaded), runs the packaged suite on it once to warm it, then --runs times by its context,
and prints the median of each phase (benchmarks/timing_plugin.py says what each phase holds) and
how the wall time grows per added node. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse

from common import median, suite_args, timed_session, warm_cluster

PHASES = ["session start", "pod start", "probe copy", "other setup", "measurement", "teardown"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    walls: dict[int, float] = {}
    print(f"{'workers':>7} {'runs':>4} {'wall s':>7} {'startup':>8} " + " ".join(f"{p:>13}" for p in PHASES))
    for workers in args.workers:
        with warm_cluster(f"bench-{workers}w", workers) as run:
            timed_session(suite_args(run))  # warm-up: page cache, CoreDNS cache, kubelet's image checks
            docs = [timed_session(suite_args(run)) for _ in range(args.runs)]
        bad = [d["summary"] for d in docs if d["exit"] != 0]
        walls[workers] = median([d["wall"] for d in docs])
        startup = median([d["wall"] - d["in pytest"] for d in docs])  # interpreter, imports, collection
        cells = " ".join(f"{median([d.get(p, 0.0) for d in docs]):13.1f}" for p in PHASES)
        print(f"{workers:7d} {len(docs):4d} {walls[workers]:7.1f} {startup:8.1f} {cells}", flush=True)
        for d in docs:
            print(f"{'':13}run: wall {d['wall']:.1f} s, exit {d['exit']}: {d['summary']}")
        if bad:
            print(f"{'':13}{len(bad)} run(s) did not pass")
    sizes = sorted(walls)
    for a, b in zip(sizes, sizes[1:]):
        print(f"growth {a} -> {b} workers: {100 * (walls[b] / walls[a] - 1):+.1f} % "
              f"({(100 * (walls[b] / walls[sizes[0]] - 1)) / (b - sizes[0]):+.1f} % per added node from {sizes[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
