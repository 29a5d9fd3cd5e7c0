"""Probe capacity: libc lookups per second one probe pod sustains on a cached name, and the probe's
overhead per lookup against a C getaddrinfo loop in the same pod.

    python benchmarks/probe_capacity.py [--rounds 5] [--count 2000]

On a kind cluster made the way --k8sdns-kind makes it, it starts a glibc and a musl probe pod,
compiles benchmarks/gai_loop.c on this machine (gcc for glibc, dynamically linked: the host and the
glibc probe image are both bookworm; musl-gcc -static for musl) and copies each binary into its
pod through exec stdin, as the payload is installed. Each round runs the C loop and the probe's
`lookup` (qps 0, one thread) back to back on the same name; both time their own loop, so exec and
interpreter start-up are left out. The overhead is the difference of the two per-lookup times in
the same round; the figures are medians over the rounds. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import GLIBC_IMAGE, HERE, MUSL_IMAGE, median, warm_cluster

from pytest_k8sdns.kube import pods
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.build import PYTHON_ARGV
from pytest_k8sdns.probe.pods import ProbeSpec

NAME = "kubernetes.default.svc.cluster.local."  # absolute: no search list, one cached answer per family
COMPILERS = {"glibc": ["gcc", "-O2"], "musl": ["musl-gcc", "-O2", "-static"]}
INSTALL = ("import sys,os,base64;d=base64.b64decode(sys.stdin.buffer.readline());"
           "f=open('/tmp/gai','wb');f.write(d);f.close();os.chmod('/tmp/gai',0o755);print(len(d))")


def compile_loops(out: Path) -> dict[str, bytes]:
    binaries = {}
    for libc, compiler in COMPILERS.items():
        if shutil.which(compiler[0]) is None:
            raise SystemExit(f"{compiler[0]} is not on PATH (substrate/install-host.sh installs it)")
        target = out / f"gai-{libc}"
        subprocess.run([*compiler, "-o", str(target), str(HERE / "gai_loop.c")], check=True)
        binaries[libc] = target.read_bytes()
    return binaries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binaries = compile_loops(Path(tmp))
    with warm_cluster("bench-cap") as run:
        specs = [ProbeSpec(key=libc, libc=libc, image=GLIBC_IMAGE if libc == "glibc" else MUSL_IMAGE)
                 for libc in ("glibc", "musl")]
        started = probes.start(run.cluster, run.namespace, run.run_id, specs, timeout_s=180, image_options={})
        for libc, pod in started.items():
            copied = pods.exec_in_pod(run.cluster, run.namespace, pod.name, [*PYTHON_ARGV, "-c", INSTALL],
                                      stdin=base64.b64encode(binaries[libc]).decode() + "\n")
            assert copied.stdout.strip() == str(len(binaries[libc])), copied
        print(f"{args.count} lookups of {NAME} (A+AAAA, cached) per loop, {args.rounds} rounds, one thread")
        print(f"{'libc':6} {'probe/s':>9} {'C/s':>9} {'probe us':>9} {'C us':>8} {'overhead us':>12} {'ratio':>6}"
              f" {'probe 4 threads/s':>18}")
        for libc, pod in started.items():
            probe_us, c_us, overhead, ratio, rates, c_rates, threaded = [], [], [], [], [], [], []
            for i in range(args.rounds):
                # alternate which loop goes first, so neither always meets a colder or warmer cache
                if i % 2:
                    p = pod.lookup([NAME], count=args.count, qps=0).totals
                res = pods.exec_in_pod(run.cluster, run.namespace, pod.name, ["/tmp/gai", NAME, str(args.count)])
                c = json.loads(res.stdout)
                if not i % 2:
                    p = pod.lookup([NAME], count=args.count, qps=0).totals
                t = pod.lookup([NAME], count=args.count, qps=0, concurrency=4).totals
                assert c["failed"] == 0 and p.failed == 0 and t.failed == 0, (c, p, t)
                c_per = c["elapsed_ns"] / c["lookups"] / 1e3
                p_per = p.elapsed_ns / p.lookups / 1e3
                probe_us.append(p_per)
                c_us.append(c_per)
                overhead.append(p_per - c_per)
                ratio.append(p_per / c_per)
                rates.append(p.rate_per_s)
                c_rates.append(1e6 / c_per)
                threaded.append(t.rate_per_s)
            print(f"{libc:6} {median(rates):9.0f} {median(c_rates):9.0f} {median(probe_us):9.1f} {median(c_us):8.1f} "
                  f"{median(overhead):12.1f} {median(ratio):6.3f} {median(threaded):18.0f}", flush=True)
            print(f"{'':6} overhead per round, us: {' '.join(f'{o:.0f}' for o in overhead)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
