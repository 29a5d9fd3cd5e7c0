"""The whole `pytest --k8sdns-kind` session on this machine: create the cluster, prepare it, run the
full default suite, delete it.

    python benchmarks/kind_session.py [--runs 3]

Prints the median wall time and its parts (benchmarks/timing_plugin.py) over --runs sessions, one
after the other. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os

from common import NODE_IMAGE, median, timed_session

from pytest_k8sdns.plugin import _suite_dir

PARTS = ["kind create", "kind prepare", "pod start", "probe copy", "other setup", "measurement", "kind delete"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    docs = []
    for i in range(args.runs):
        doc = timed_session(["--k8sdns-kind", f"--k8sdns-kind-image={NODE_IMAGE}", str(_suite_dir())])
        docs.append(doc)
        print(f"run {i + 1}: {doc['wall']:.1f} s, exit {doc['exit']}: {doc['summary']}", flush=True)
    print(f"kind session on {os.cpu_count()} cores, median of {len(docs)}: {median([d['wall'] for d in docs]):.1f} s")
    for part in PARTS:
        print(f"  {part:<13} {median([d.get(part, 0.0) for d in docs]):6.1f} s")
    rest = median([d["wall"] - sum(d.get(p, 0.0) for p in PARTS) for d in docs])
    print(f"  {'the rest':<13} {rest:6.1f} s (interpreter, collection, namespace, teardown of fixtures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
