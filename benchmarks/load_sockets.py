"""What the number of sockets costs the capacity check's load generator (the probe's `load`).

    python benchmarks/load_sockets.py [--sockets 1,8,32,64] [--rounds 3] [--rate 8000] [--seconds 4]

Runs the payload's `load` in this process (the same code the probe pods run) against a real CoreDNS
in a container on Docker's bridge (fixtures/upstream's Corefile, the test upstream of the clusters
the plugin creates) at a rate that CoreDNS answers in full, for each socket count in turn, round
after round. Prints, per socket count, the medians of the rate answered and of the generator's own
CPU time per query (so its ceiling on one core, 1 / that), and the CPU ratio to the smallest socket
count's, measured in the same run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import time
from collections.abc import Iterator

from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.probe.payload.load import cmd_load
from pytest_k8sdns.session import new_run_id

NAME = "api.example.test."


def coredns_image() -> str:
    """The CoreDNS image substrate/build made (the one kubeadm names), from the local image list."""
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], check=True,
                         capture_output=True, text=True).stdout.split()
    found = [ref for ref in out if ref.rsplit(":", 1)[0].endswith("/coredns")]
    if not found:
        raise SystemExit("no CoreDNS image in the local Docker: run substrate/build first (see README)")
    return found[0]


@contextlib.contextmanager
def upstream() -> Iterator[str]:
    """The test upstream CoreDNS in a container on the default bridge; its address; removed at the end."""
    name = f"k8sdns-bench-upstream-{new_run_id()}"
    image = coredns_image()
    subprocess.run(["docker", "run", "-d", "--name", name, "-v", f"{fixture_path('upstream')}:/etc/k8sdns-upstream:ro",
                    image, "-conf", "/etc/k8sdns-upstream/Corefile"], check=True, capture_output=True)
    try:
        out = subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout
        address = json.loads(out)[0]["NetworkSettings"]["IPAddress"]
        time.sleep(1.0)  # CoreDNS listens within a few hundred ms of its start
        yield address
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)


def one(server: str, sockets: int, rate: float, seconds: int) -> tuple[float, float]:
    """(answered queries per second, this process's CPU microseconds per query sent)."""
    cpu = time.process_time()
    doc = cmd_load({"server": server, "names": [NAME], "rates": [rate] * seconds, "step_s": 1.0,
                    "timeout_s": 1.0, "sockets": sockets})
    cpu = time.process_time() - cpu
    steps = doc["steps"]
    sent = sum(s["sent"] for s in steps)
    return sum(s["answered"] for s in steps) / doc["elapsed_s"], cpu / sent * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", default="1,8,32,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=8000.0, help="queries/s: what the CoreDNS answers in full")
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    counts = [int(n) for n in args.sockets.split(",")]
    figures: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    with upstream() as server:
        print(f"upstream CoreDNS at {server}; asking {args.rate:.0f} queries/s for {args.seconds} s", flush=True)
        one(server, counts[0], args.rate, 2)  # warm-up: CoreDNS's cache, the page cache
        for r in range(args.rounds):
            for n in counts:
                answered, us = one(server, n, args.rate, args.seconds)
                figures[n].append((answered, us))
                print(f"round {r + 1}: {n:3d} sockets: answered {answered:7.0f}/s, {us:5.1f} CPU us per query",
                      flush=True)
    base = statistics.median(u for _, u in figures[counts[0]])
    print(f"\nsockets  answered/s  CPU us/query  ceiling/s  CPU vs {counts[0]} socket(s)")
    for n in counts:
        answered = statistics.median(a for a, _ in figures[n])
        us = statistics.median(u for _, u in figures[n])
        print(f"{n:7d} {answered:11.0f} {us:13.1f} {1e6 / us:10.0f}  {us / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
