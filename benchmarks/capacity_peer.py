"""Capacity against its peers: the knee --k8sdns-capacity finds against resperf's on the same CoreDNS,
the probe's `load` from one pod against dnsperf from one pod, and one CoreDNS replica against two.

    python benchmarks/capacity_peer.py [--max-qps 30000] [--ramp-s 60] [--loss-pct 1] [--rounds 1]

One kind cluster made the way --k8sdns-kind makes it (one worker: CoreDNS, the load pods and the
peer pod share it). The peer pod runs substrate/build-dnsperf.sh's image (Debian's dnsperf 2.10.0).
Each round, on kubernetes.default.svc.cluster.local A against the kube-dns Service:
  - resperf -m MAX -r RAMP -L LOSS -C 8 -F 0 from one pod: its maximum throughput within the loss
    (-F 0: the test goes on when resperf's sender falls behind);
  - the packaged check, `pytest --k8sdns-capacity` (test_capacity[internal]), with one load pod and
    with two, 8 sockets each as resperf's 8 clients, the ramp 10 % per second up to MAX; its knee
    judged by loss only (p99 bound 1 s, as resperf has none) and, from the same steps, by the
    default bounds too;
  - dnsperf -l 10 from one pod (8 sockets, 2 threads, 500 outstanding) against `load` from one pod
    asked for MAX for 5 s: queries sent and answered per second.
Then CoreDNS under a CPU limit of --replica-cpu-m per pod, with one replica and with two: the knee
of each (two load pods, --replica-sockets each, so that the flows spread over both). Prints
figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import GLIBC_IMAGE, HERE, IMAGES, median, warm_cluster
from peer_tools import (
    dnsperf_command,
    parse_dnsperf,
    parse_resperf,
    query_file,
    resperf_command,
)

from pytest_k8sdns.faults import Faults
from pytest_k8sdns.kube import pods
from pytest_k8sdns.plugin import _suite_dir
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.load import LoadStep
from pytest_k8sdns.probe.pods import ProbeSpec
from pytest_k8sdns.session import Run

NAME = "kubernetes.default.svc.cluster.local"
DATAFILE = "/tmp/queries.txt"
#: sockets of resperf (-C), dnsperf (-c) and ours in the peer part: the same flows on each side
PEER_SOCKETS = 8
ROOT = HERE.parent


def build_peer_image() -> str:
    out = subprocess.run(["bash", str(ROOT / "substrate" / "build-dnsperf.sh")], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def start_peer(run: Run, image: str) -> str:
    """A pod of the dnsperf image (sleep as PID 1) with the query file written in /tmp."""
    spec = ProbeSpec(key="peer", libc="glibc", image=image)
    manifest = probes.manifest(spec, run.run_id)
    manifest["spec"]["containers"][0]["command"] = ["sleep", "infinity"]
    run.cluster.call("create", "pods", run.namespace, run.cluster.core.create_namespaced_pod, run.namespace, manifest)
    pods.wait_ready(run.cluster, run.namespace, [spec.pod_name], 180, {})
    text = query_file([(NAME, "A")]).strip()
    peer_exec(run, spec.pod_name, ["sh", "-c", f"printf '%s\\n' '{text}' > {DATAFILE}"])
    return spec.pod_name


def peer_exec(run: Run, pod: str, argv: list[str], timeout_s: float = 600) -> str:
    result = pods.exec_in_pod(run.cluster, run.namespace, pod, argv, timeout_s=timeout_s)
    if result.exit_code != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} exited {result.exit_code}: {result.stderr[-500:]}{result.stdout[-500:]}")
    return result.stdout


def ours(run: Run, *, max_qps: float, pods_n: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The packaged check's internal class, run as a user runs it; its capacity document."""
    assert run.kind is not None
    with tempfile.TemporaryDirectory(prefix="k8sdns-bench-") as tmp:
        results = Path(tmp) / "results.json"
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W",
                "ignore::pytest.PytestDeprecationWarning", *IMAGES, f"--k8sdns-context=kind-{run.kind.name}",
                f"--k8sdns-kubeconfig={run.kind.kubeconfig}", "--k8sdns-external-name=api.example.test",
                "--k8sdns-capacity", f"--k8sdns-capacity-max-rate={max_qps:g}", "--k8sdns-capacity-growth=1.1",
                "--k8sdns-capacity-step-s=1", "--k8sdns-capacity-p99-ms=1000", f"--k8sdns-capacity-pods={pods_n}",
                f"--k8sdns-results={results}", *extra, f"{_suite_dir() / 'test_capacity.py'}::test_capacity[internal]"]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, check=False, timeout=1800)
        if not results.exists():
            raise RuntimeError(f"pytest wrote no results (exit {proc.returncode}): {proc.stdout[-2000:]}")
        doc = json.loads(results.read_text())
    check = next(c for c in doc["checks"] if c.get("capacity"))
    cap: dict[str, Any] = check["capacity"]
    return cap


def knee_within(cap: dict[str, Any], p99_ms: float, max_loss: float = 0.01) -> float | None:
    """The knee of a capacity document's steps under other bounds."""
    best = None
    for s in cap["steps"]:
        if s["bad_share"] > max_loss or (s["p99_ms"] is not None and s["p99_ms"] > p99_ms):
            break
        best = max(best or 0.0, s["answered_qps"])
    return best


def one_pod_max(run: Run, server: str, max_qps: float, seconds: int = 5) -> tuple[float, float]:
    """(sent, answered) per second of one probe pod's `load` asked for max_qps."""
    spec = ProbeSpec(key="load-max", libc="glibc", image=GLIBC_IMAGE)
    started = probes.start(run.cluster, run.namespace, run.run_id, [spec], timeout_s=180, image_options={})
    try:
        result = started["load-max"].load(server, [NAME + "."], [max_qps] * seconds, step_s=1.0,
                                      sockets=PEER_SOCKETS)
    finally:
        probes.stop(run.cluster, run.namespace, started)
    merged = LoadStep.merged(list(result.steps[1:]))  # the first second warms up
    return merged.sent / (seconds - 1), merged.answered / (seconds - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-qps", type=float, default=30000)
    parser.add_argument("--ramp-s", type=float, default=60)
    parser.add_argument("--loss-pct", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--replica-cpu-m", type=int, default=250)
    parser.add_argument("--replica-sockets", type=int, default=None, help="sockets per load pod in the replica part "
                        "(default: --k8sdns-capacity-sockets's); kube-proxy pins each flow to one replica, so few "
                        "flows load two replicas unevenly")
    parser.add_argument("--parts", default="peer,replicas", help="peer (resperf, dnsperf), replicas, or both")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    image = build_peer_image() if "peer" in parts else ""
    figures: dict[str, list[float]] = {}

    def keep(key: str, value: float | None) -> None:
        if value is not None:
            figures.setdefault(key, []).append(value)
        print(f"  {key}: {value}", flush=True)

    with warm_cluster("bench-peer") as run:
        assert run.kind is not None
        if image:
            run.kind.load_images([image])
        server = run.cluster.call("get", "services", "kube-system", run.cluster.core.read_namespaced_service,
                                  "kube-dns", "kube-system").spec.cluster_ip
        peer = start_peer(run, image) if image else ""
        for r in range(args.rounds if "peer" in parts else 0):
            print(f"round {r + 1}", flush=True)
            out = peer_exec(run, peer, resperf_command(server, 53, DATAFILE, max_qps=int(args.max_qps), ramp_s=args.ramp_s,
                                                       loss_pct=args.loss_pct, clients=PEER_SOCKETS, timeout_s=1.0,
                                                       fall_behind=0))
            res = parse_resperf(out)
            keep("resperf max throughput", res.max_throughput_qps)
            if res.fell_behind_at_qps:
                print(f"  (resperf fell behind at {res.fell_behind_at_qps} qps)")
            same_flows = (f"--k8sdns-capacity-sockets={PEER_SOCKETS}",)  # as many source ports as resperf's -C
            one = ours(run, max_qps=args.max_qps, pods_n=1, extra=same_flows)
            keep("ours, 1 pod, knee (loss only)", one["knee_qps"])
            keep("ours, 1 pod, knee (default bounds: p99 100 ms)", knee_within(one, 100.0))
            two = ours(run, max_qps=args.max_qps, pods_n=2, extra=same_flows)
            keep("ours, 2 pods, knee (loss only)", two["knee_qps"])
            dp = parse_dnsperf(peer_exec(run, peer, dnsperf_command(server, 53, DATAFILE, seconds=10, clients=PEER_SOCKETS,
                                                                      threads=2, max_outstanding=500, timeout_s=1.0)))
            keep("dnsperf 1 pod sent/s", dp.queries_sent / dp.run_time_s)
            keep("dnsperf 1 pod answered/s", dp.qps)
            sent, answered = one_pod_max(run, server, min(args.max_qps * 2, 200000))
            keep("load 1 pod sent/s", sent)
            keep("load 1 pod answered/s", answered)
        faults = Faults(run.cluster, run.kind)
        for replicas in (2, 1) if "replicas" in parts else ():
            with faults.coredns_scaled(replicas, args.replica_cpu_m):
                spread = (f"--k8sdns-capacity-sockets={args.replica_sockets}",) if args.replica_sockets else ()
                cap = ours(run, max_qps=args.max_qps, pods_n=2, extra=spread)
                keep(f"ours, {replicas} replica(s) at {args.replica_cpu_m}m, knee", cap["knee_qps"])
                print(f"    broke at {cap['broke_at_qps']} qps ({cap['broke_because']}); cores per DNS pod at the "
                      f"knee {cap['cpu_at_knee']}", flush=True)

    def m(key: str) -> float:
        return median(figures.get(key, []))

    print("\nmedians over rounds:")
    for key in figures:
        print(f"  {key}: {m(key):.0f}")
    if "peer" in parts:
        print(f"knee ratio ours(1 pod)/resperf: {m('ours, 1 pod, knee (loss only)') / m('resperf max throughput'):.2f} "
              f"(target 0.85-1.15)")
        print(f"knee ratio ours(2 pods)/resperf: {m('ours, 2 pods, knee (loss only)') / m('resperf max throughput'):.2f}")
        print(f"one-pod max ratio load/dnsperf, sent: {m('load 1 pod sent/s') / m('dnsperf 1 pod sent/s'):.2f}; answered: "
              f"{m('load 1 pod answered/s') / m('dnsperf 1 pod answered/s'):.2f} (target >= 0.5)")
    if "replicas" in parts:
        two_r = m(f"ours, 2 replica(s) at {args.replica_cpu_m}m, knee")
        one_r = m(f"ours, 1 replica(s) at {args.replica_cpu_m}m, knee")
        print(f"one replica / two replicas knee: {one_r / two_r:.2f} (expected about 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
