"""Run the suite 10 times with random interruptions and count what the plugin left behind.

    python benchmarks/interrupt_leftovers.py [--runs 10] [--seed N]

Each run draws one way to go wrong: Ctrl-C (SIGINT to the process group, as a terminal sends it)
while `--k8sdns-kind` creates its cluster or while the suite runs on it, Ctrl-C during a run on an
existing cluster, probe pods whose image has no python3 (the probes fail), checks that fail, and
an image that cannot be pulled. Runs on an existing cluster use one kind cluster this script makes
first. Afterwards it counts the namespaces and pods labelled app.kubernetes.io/managed-by=
pytest-k8sdns, the kind clusters the runs announced, and their containers; prints the count, and
exits 1 unless it is 0.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_k8sdns.config import Settings
from pytest_k8sdns.kube.client import MANAGED_BY
from pytest_k8sdns.kube.kind import docker_leftovers
from pytest_k8sdns.plugin import _suite_dir
from pytest_k8sdns.session import Run

NODE_IMAGE = os.environ.get("K8SDNS_NODE_IMAGE", "k8sdns/kind-node:latest")
GLIBC_IMAGE = os.environ.get("K8SDNS_GLIBC_IMAGE", "k8sdns/probe-glibc:py3.11-bookworm")
MUSL_IMAGE = os.environ.get("K8SDNS_MUSL_IMAGE", "k8sdns/probe-musl:py3.11-musl")
FAST = ["--k8sdns-samples=60", "--k8sdns-bursts=4", "--k8sdns-burst-size=4", "--k8sdns-pod-timeout=60"]
SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
ANNOUNCED = re.compile(r"k8sdns: creating kind cluster (\S+)")

#: name -> (uses --k8sdns-kind, seconds after start to send SIGINT as (low, high), or None)
SCENARIOS: dict[str, tuple[bool, tuple[float, float] | None]] = {
    "sigint-kind-create": (True, (3, 30)),
    "sigint-kind-suite": (True, (35, 65)),
    "sigint-existing": (False, (4, 35)),
    "probe-fails": (False, None),
    "checks-fail": (False, None),
    "unpullable-image": (False, None),
}


def pytest_argv(scenario: str, shared: Run, tmp: Path, broken_image: str) -> list[str]:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "-W", "ignore::pytest.PytestDeprecationWarning", *FAST,
            f"--k8sdns-glibc-image={GLIBC_IMAGE}", f"--k8sdns-musl-image={MUSL_IMAGE}",
            f"--k8sdns-results={tmp / 'results.json'}"]
    if SCENARIOS[scenario][0]:
        argv += ["--k8sdns-kind", f"--k8sdns-kind-image={NODE_IMAGE}"]
    else:
        assert shared.kind is not None
        argv += [f"--k8sdns-context=kind-{shared.kind.name}", f"--k8sdns-kubeconfig={shared.kind.kubeconfig}",
                 "--k8sdns-external-name=api.example.test"]
    if scenario == "probe-fails":
        argv.append(f"--k8sdns-glibc-image={broken_image}")  # runs, but has no python3
    elif scenario == "checks-fail":
        argv += ["--k8sdns-p50-ms=0.001", "--k8sdns-p99-ms=0.001"]
    elif scenario == "unpullable-image":
        argv += ["-x", "--k8sdns-musl-image=k8sdns/no-such-image:0"]  # the nodes' DNS answers NXDOMAIN
    return argv + [str(_suite_dir())]


def one_run(i: int, scenario: str, shared: Run, rng: random.Random, broken_image: str) -> set[str]:
    """Run pytest once as the scenario says; return the kind clusters it announced."""
    window = SCENARIOS[scenario][1]
    delay = rng.uniform(*window) if window else None
    with tempfile.TemporaryDirectory(prefix="k8sdns-leftovers-") as tmp:
        out = Path(tmp) / "output.txt"
        began = time.monotonic()
        with open(out, "w") as f:
            proc = subprocess.Popen(pytest_argv(scenario, shared, Path(tmp), broken_image), stdout=f,
                                    stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True)
            sent = None
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGINT)
                sent = time.monotonic() - began
                proc.wait(timeout=900)
        text = out.read_text(errors="replace")
    elapsed = time.monotonic() - began
    tail = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
    how = f"SIGINT at {sent:.1f} s" if sent is not None else "ran to the end"
    print(f"run {i + 1}: {scenario:<19} {how:<18} exit {proc.returncode} after {elapsed:5.1f} s | {tail[:110]}",
          flush=True)
    return set(ANNOUNCED.findall(text))


def count_leftovers(shared: Run, announced: set[str]) -> dict[str, list[str]]:
    core = shared.cluster.core
    deadline = time.monotonic() + 120  # namespaces being deleted (Terminating) may take a while
    while True:
        namespaces = [n.metadata.name for n in core.list_namespace(label_selector=SELECTOR).items
                      if n.metadata.name != shared.namespace]
        pods = [f"{p.metadata.namespace}/{p.metadata.name}"
                for p in core.list_pod_for_all_namespaces(label_selector=SELECTOR).items
                if p.metadata.namespace != shared.namespace]
        if not (namespaces or pods) or time.monotonic() > deadline:
            break
        time.sleep(3)
    clusters = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, check=False).stdout.split()
    return {
        "namespaces": namespaces,
        "pods": pods,
        "kind clusters": sorted(announced & set(clusters)),
        "containers": sorted(c for name in announced for c in docker_leftovers(name)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 16)
    rng = random.Random(seed)
    # every way to go wrong at least once, the rest drawn at random
    plan = list(SCENARIOS)[: args.runs] + [rng.choice(list(SCENARIOS)) for _ in range(args.runs - len(SCENARIOS))]
    rng.shuffle(plan)
    # the --k8sdns-kind runs first, so that this machine never runs two of this script's clusters at once
    plan.sort(key=lambda name: not SCENARIOS[name][0])
    print(f"seed {seed}; plan: {', '.join(plan)}", flush=True)
    shared = Run(Settings(kind=True, keep_cluster=False, kind_image=NODE_IMAGE, glibc_image=GLIBC_IMAGE,
                          musl_image=MUSL_IMAGE), run_id="leftovers")
    announced: set[str] = set()
    broken_image = ""
    try:
        for i, scenario in enumerate(plan):
            if not SCENARIOS[scenario][0] and shared.kind is None:
                shared.start()  # the existing cluster of the remaining runs
                coredns = shared.cluster.apps.read_namespaced_deployment("coredns", "kube-system")
                broken_image = coredns.spec.template.spec.containers[0].image  # on every node; no python3 in it
            announced |= one_run(i, scenario, shared, rng, broken_image)
        if shared.kind is None:
            shared.start()
        left = count_leftovers(shared, announced)
    finally:
        shared.stop()
    total = sum(len(v) for v in left.values())
    for what, names in left.items():
        print(f"left behind: {len(names)} {what}" + (f": {', '.join(names)}" if names else ""))
    print(f"leftovers after {args.runs} interrupted runs: {total}")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
