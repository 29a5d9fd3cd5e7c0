"""Fan-out cost on a simulated large cluster: kwok gives a one-node kind cluster --nodes fake nodes,
and the plugin's own placement and probe-pod start-up are timed against them, with their API requests.

    bash substrate/build-kwok.sh && python benchmarks/fanout_kwok.py [--nodes 500] [--sizes 100,250,500]

kwok (the binary substrate/build-kwok.sh builds, run on the host against the cluster's kubeconfig)
keeps the fake nodes Ready and makes pods on them Running and Ready; no container runs there, so
probes cannot. For each size the plugin chooses the nodes (placement.choose over cluster.nodes(),
--k8sdns-nodes=SIZE), starts a glibc and a musl probe pod on each (probe.pods.start with
install=False: pod creation, nodeName binding and the Ready wait), then stops them (probe.pods.stop)
and the benchmark waits until they are gone. API requests are the plugin handle's own
(Cluster.requests); its watches, which that counter does not see, are counted beside them.

The measurement time is not measured here: it is computed from the plugin's fan-out model
(probe/fleet.py waves() and paced_qps(), the defaults of config.Settings), with the cost of one exec
timed on the cluster's one real node (its control plane), where a probe pod can run. Prints figures;
asserts nothing. The kind cluster (k8sdns-kwok-<id>) and kwok are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import GLIBC_IMAGE, MUSL_IMAGE, NODE_IMAGE, kind_config

from pytest_k8sdns.config import Settings
from pytest_k8sdns.errors import K8sDnsError
from pytest_k8sdns.kube import placement, pods, wait
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.kube.kind import KindCluster
from pytest_k8sdns.kube.rollout import wait_nodes_ready, wait_pods_gone
from pytest_k8sdns.kube.wait import until
from pytest_k8sdns.probe import pods as probes
from pytest_k8sdns.probe.fleet import QUERIES_PER_LOOKUP, paced_qps, waves
from pytest_k8sdns.probe.pods import LIBCS, ProbeSpec
from pytest_k8sdns.session import new_run_id

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("K8SDNS_CACHE", "/var/cache/pytest-k8sdns"))
#: The stages kwokctl gives a kind cluster (pkg/kwokctl/runtime/cluster.go): nodes initialised and
#: kept alive by a lease, pods made Ready, completed and finalised on delete.
STAGES = ("node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
          "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml")
FAKE = "kwok.x-k8s.io/node"
ZONES = ("zone-a", "zone-b", "zone-c")
POOLS = ("pool-small", "pool-large")
#: The retry check's burst interval (conformance/test_latency.py) and its per-run tail as modelled.
BURST_INTERVAL_S = 0.05
BURST_TAIL_S = 0.2
#: Queries of one external lookup at ndots:5 (conformance/test_latency.py EXTERNAL_QUERIES).
EXTERNAL_QUERIES = 8


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kwok_version() -> str:
    for line in (REPO / "substrate" / "versions.env").read_text().splitlines():
        if line.startswith("KWOK_VERSION="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("substrate/versions.env has no KWOK_VERSION line")


def kwok_files() -> tuple[Path, Path]:
    """The kwok binary and its module source (for the stage manifests), as build-kwok.sh leaves them."""
    version = kwok_version()
    binary = CACHE / "bin" / f"kwok-{version}" / "kwok"
    stages = CACHE / "go" / "mod" / f"sigs.k8s.io/kwok@{version}" / "kustomize" / "stage"
    if not binary.exists() or not stages.is_dir():
        raise SystemExit(f"no kwok {version} at {binary}; build it with `bash substrate/build-kwok.sh`")
    return binary, stages


class Watches:
    """Counts the watch requests of the plugin's waits (kube.wait.Watched.next_change opens one each),
    which Cluster.requests does not see: they go through kubernetes.watch, not Cluster.call."""

    def __init__(self) -> None:
        self.count: collections.Counter[int] = collections.Counter()
        original = wait.Watched.next_change

        def counted(watched: wait.Watched, version: str | None, timeout_s: float) -> str | None:
            self.count[id(watched.cluster)] += 1
            return original(watched, version, timeout_s)

        wait.Watched.next_change = counted  # type: ignore[method-assign]

    def of(self, cluster: Cluster) -> int:
        return self.count[id(cluster)]


class Marks:
    """When probe.pods.start stops creating and starts waiting: the time kube.pods.wait_ready is entered."""

    def __init__(self) -> None:
        self.wait_began = 0.0
        original = pods.wait_ready

        def marked(*args: Any, **kwargs: Any) -> None:
            self.wait_began = time.monotonic()
            original(*args, **kwargs)

        pods.wait_ready = marked  # type: ignore[assignment]


def fake_node(i: int) -> dict[str, Any]:
    name = f"kwok-node-{i:04d}"
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            # no kubernetes.io/os label: the kind cluster's kube-proxy DaemonSet selects on it
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/role": "agent",
                       placement.ZONE_LABEL: ZONES[i % len(ZONES)],
                       placement.POOL_LABELS[0]: POOLS[(i // len(ZONES)) % len(POOLS)]},
        },
        "spec": {},  # no taint: the probe pods bind by nodeName and tolerate everything anyway
    }


def start_kwok(binary: Path, stages: Path, kubeconfig: Path, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "kwok.yaml"
    config.write_text("\n---\n".join((stages / s).read_text() for s in STAGES))
    logfile = open(workdir / "kwok.log", "wb")  # noqa: SIM115 (kept open for kwok's lifetime)
    argv = [str(binary), f"--kubeconfig={kubeconfig}", f"--config={config}", "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE}=fake", "--manage-nodes-with-label-selector=",
            "--node-lease-duration-seconds=40", "--cidr=10.200.0.0/16", "--node-ip=10.199.0.1"]
    return subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)


def keep_daemonsets_off(admin: Cluster) -> None:
    """Keep every kube-system DaemonSet off the fake nodes (kwok's advice): their pods would only load
    this 2-core machine, and a real cluster's node agents are not the plugin's cost."""
    patch = {"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["kwok"]}]}]}}}}}}}
    for ds in admin.call("list", "daemonsets", "kube-system", admin.apps.list_namespaced_daemon_set, "kube-system").items:
        admin.call("patch", "daemonsets", "kube-system", admin.apps.patch_namespaced_daemon_set,
                   ds.metadata.name, "kube-system", patch)


def taint_control_plane(admin: Cluster, node: str) -> None:
    """Give the control plane back the taint kind removes from a cluster without workers, so the
    placement leaves it out as on any multi-node cluster: only fake nodes are probed."""
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    admin.call("patch", "nodes", None, admin.core.patch_node, node, {"spec": {"taints": [taint]}})


def create_fake_nodes(admin: Cluster, count: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: admin.call("create", "nodes", None, admin.core.create_node, fake_node(i)), range(count)))

    def look() -> list[str]:
        return [f"{n.name} ({placement.schedulable(n)})" for n in admin.nodes()
                if n.labels.get("type") == "kwok" and placement.schedulable(n)]

    until(f"{count} kwok nodes schedulable", look, lambda left: not left, timeout_s=timeout_s, every_s=2,
          seen=lambda left: f"{len(left)} not yet: {', '.join(left[:5])}")
    return time.monotonic() - t0


def since(before: collections.Counter[str], after: collections.Counter[str]) -> collections.Counter[str]:
    return collections.Counter({k: after[k] - before[k] for k in after if after[k] - before[k]})


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.monotonic()
    value = fn()
    return time.monotonic() - t0, value


def one_size(cluster: Cluster, admin: Cluster, namespace: str, run_id: str, size: int, total: int,
             timeout_s: float, watches: Watches, marks: Marks) -> dict[str, Any]:
    """Choose `size` nodes as --k8sdns-nodes=SIZE does, start and stop the probe fleet on them."""
    before, watched = collections.Counter(cluster.requests), watches.of(cluster)
    spec = "all" if size >= total else str(size)
    choose_s, chosen = timed(lambda: placement.choose(cluster.nodes(), spec, seed=0))
    chosen = chosen.chosen
    specs = [ProbeSpec(key=f"{libc}-n{i}", libc=libc, image=GLIBC_IMAGE if libc == "glibc" else MUSL_IMAGE, node=node)
             for i, node in enumerate(chosen) for libc in LIBCS]
    placed = collections.Counter(cluster.requests)
    t0 = time.monotonic()
    started = probes.start(cluster, namespace, run_id, specs, timeout_s=timeout_s, image_options={}, install=False)
    start_s = time.monotonic() - t0
    create_s = marks.wait_began - t0
    up, up_watches = collections.Counter(cluster.requests), watches.of(cluster)
    stop_s, _ = timed(lambda: probes.stop(cluster, namespace, started))
    down = collections.Counter(cluster.requests)
    gone_s, _ = timed(lambda: wait_pods_gone(admin, namespace, f"k8sdns.io/run={run_id}", timeout_s))
    start_req = since(placed, up)
    return {
        "size": size, "nodes": len(chosen), "pods": len(specs), "choose_s": choose_s, "start_s": start_s,
        "create_s": create_s, "ready_s": start_s - create_s, "stop_s": stop_s, "gone_s": gone_s,
        "choose_req": sum(since(before, placed).values()), "start_req": sum(start_req.values()),
        "ready_lists": start_req["list pods"], "watches": up_watches - watched,
        "stop_req": sum(since(up, down).values()), "by_kind": since(before, down),
    }


def exec_cost(kind: KindCluster, cluster: Cluster, namespace: str, run_id: str, execs: int) -> dict[str, float]:
    """On the one real node: a probe pod of each libc, the payload install, and `info` execs, timed."""
    loaded_s, _ = timed(lambda: kind.load_images([GLIBC_IMAGE, MUSL_IMAGE]))
    wait_nodes_ready(cluster, 1, 300)
    node = f"{kind.name}-control-plane"
    specs = [ProbeSpec(key=f"{libc}-real", libc=libc, image=GLIBC_IMAGE if libc == "glibc" else MUSL_IMAGE, node=node)
             for libc in LIBCS]
    start_s, started = timed(lambda: probes.start(cluster, namespace, run_id, specs, timeout_s=300, image_options={},
                                                  install=False))
    installs = [timed(pod.install)[0] for pod in started.values()]
    runs = [timed(pod.info)[0] for _ in range(execs) for pod in started.values()]
    probes.stop(cluster, namespace, started)
    return {"load_s": loaded_s, "start_s": start_s, "install_s": statistics.median(installs),
            "exec_s": statistics.median(runs), "execs": len(runs)}


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line; one point gives a line through the origin."""
    if len(set(xs)) < 2:
        return (ys[0] / xs[0] if xs and xs[0] else 0.0), 0.0
    return statistics.linear_regression(xs, ys)


def measurement(nodes: int, s: Settings, exec_s: float) -> dict[str, float]:
    """Seconds of the per-node checks under --k8sdns-max-qps, both libcs together, from the fan-out
    model: a check runs waves() probes at once, each wave as long as one probe's run plus one exec."""
    lat_qps = paced_qps(s.qps, QUERIES_PER_LOOKUP, s.max_qps)
    latency = math.ceil(nodes / waves(nodes, lat_qps * QUERIES_PER_LOOKUP, s.max_qps)) * (s.samples / lat_qps + exec_s)
    retry_qps = s.burst_size * QUERIES_PER_LOOKUP / BURST_INTERVAL_S
    retry = math.ceil(nodes / waves(nodes, retry_qps, s.max_qps)) * (s.bursts * BURST_INTERVAL_S + BURST_TAIL_S + exec_s)
    ext_qps = paced_qps(s.qps, EXTERNAL_QUERIES, s.max_qps)
    # at the pods' ndots and at ndots:2 (a second fleet), when the external-latency check runs
    external = 2 * math.ceil(nodes / waves(nodes, ext_qps * EXTERNAL_QUERIES, s.max_qps)) * (
        s.external_samples / ext_qps + exec_s)
    return {"latency": len(LIBCS) * latency, "retry": len(LIBCS) * retry, "external": len(LIBCS) * external}


def top_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Seconds per node between the two largest sizes: the growth where a larger cluster goes on."""
    return (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if len(xs) > 1 and xs[-1] != xs[-2] else fit(xs, ys)[0]


def report(rows: list[dict[str, Any]], real: dict[str, float] | None, total: int, setup: dict[str, float],
           project: Sequence[int]) -> None:
    s = Settings()
    print(f"kwok fan-out on {os.cpu_count()} cores: {total} fake nodes (kwok {kwok_version()}) beside a 1-node kind "
          f"cluster (control plane tainted, so never probed); kind create {setup.get('kind_s', 0):.1f} s, "
          f"fake nodes created and Ready {setup.get('nodes_s', 0):.1f} s")
    print("per size: the plugin's placement (--k8sdns-nodes=SIZE), a glibc and a musl probe pod per chosen node "
          "(probe.pods.start, install=False), then probe.pods.stop")
    head = ("nodes", "pods", "choose s", "create s", "ms/create", "Ready wait s", "Ready lists", "watches",
            "start-up s", "stop s", "ms/delete", "API req", "req/node")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        req = r["choose_req"] + r["start_req"] + r["stop_req"]
        print(f"| {r['nodes']} | {r['pods']} | {r['choose_s']:.2f} | {r['create_s']:.1f} | "
              f"{1000 * r['create_s'] / r['pods']:.0f} | {r['ready_s']:.1f} | {r['ready_lists']} | {r['watches']} | "
              f"{r['choose_s'] + r['start_s']:.1f} | {r['stop_s']:.1f} | {1000 * r['stop_s'] / r['pods']:.0f} | "
              f"{req} | {req / r['nodes']:.2f} |")
    for r in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["by_kind"].items()))
        print(f"  {r['nodes']} nodes: {kinds}; pods gone {r['gone_s']:.1f} s after the last delete")
    xs = [r["nodes"] for r in rows]
    per_node, fixed = fit(xs, [r["choose_req"] + r["start_req"] + r["stop_req"] for r in rows])
    starts = [r["choose_s"] + r["start_s"] for r in rows]
    stops = [r["stop_s"] for r in rows]
    start_slope, start_fixed = fit(xs, starts)
    stop_slope, stop_fixed = fit(xs, stops)
    start_top, stop_top = top_slope(xs, starts), top_slope(xs, stops)
    exec_s = real["exec_s"] if real else 0.0
    print("cost model:")
    print(f"  API requests: {per_node:.2f} per node {fixed:+.0f} (least squares; watches not in it: "
          f"{', '.join(str(r['watches']) for r in rows)})")
    print(f"  start-up (placement, pods created and bound, Ready): {100 * start_slope:.1f} s per 100 nodes "
          f"{start_fixed:+.1f} s (least squares); {100 * start_top:.1f} s per 100 nodes between the two largest sizes")
    print(f"  stop (deletes): {100 * stop_slope:.1f} s per 100 nodes {stop_fixed:+.1f} s (least squares); "
          f"{100 * stop_top:.1f} s per 100 nodes between the two largest sizes")
    if real:
        print(f"  on the real node: one exec (probe `info`) {real['exec_s']:.2f} s (median of {real['execs']:.0f}), "
              f"payload install {real['install_s']:.2f} s per pod (probe.pods.start runs 8 at once), "
              f"2 pods Ready in {real['start_s']:.1f} s, images loaded in {real['load_s']:.1f} s")
    lat_w = waves(100, paced_qps(s.qps, QUERIES_PER_LOOKUP, s.max_qps) * QUERIES_PER_LOOKUP, s.max_qps)
    ret_w = waves(100, s.burst_size * QUERIES_PER_LOOKUP / BURST_INTERVAL_S, s.max_qps)
    ext_w = waves(100, paced_qps(s.qps, EXTERNAL_QUERIES, s.max_qps) * EXTERNAL_QUERIES, s.max_qps)
    print(f"  measurement under the budget ({s.max_qps:g} queries/s; {s.samples} samples at {s.qps:g}/s, "
          f"{s.bursts} bursts of {s.burst_size}, {s.external_samples} external samples); probes at once: "
          f"latency {lat_w}, retry {ret_w}, external {ext_w}; both libcs, per 100 nodes:")
    cases = [("without exec", 0.0)] + ([(f"with {exec_s:.2f} s of exec per wave", exec_s)] if real else [])
    for label, e in cases:
        m = measurement(100, s, e)
        print(f"    {label}: latency check {m['latency']:.0f} s, retry check {m['retry']:.0f} s, "
              f"external latency (at ndots 5 and 2) {m['external']:.0f} s")
    last_n, last_start, last_stop = xs[-1], starts[-1], stops[-1]
    for n in project:
        start = last_start + start_top * (n - last_n) if n > last_n else start_fixed + start_slope * n
        stop = last_stop + stop_top * (n - last_n) if n > last_n else stop_fixed + stop_slope * n
        install = math.ceil(2 * n / 8) * real["install_s"] if real else 0.0
        bare, m = measurement(n, s, 0.0), measurement(n, s, exec_s)
        print(f"projection for {n} nodes ({2 * n} probe pods): {per_node * n + fixed:.0f} API requests "
              f"+ {2 * n} execs (one per pod) in each per-node check; start-up {start:.0f} s + payload install {install:.0f} s; "
              f"stop {stop:.0f} s")
        print(f"  latency + retry checks {(bare['latency'] + bare['retry']) / 60:.1f} min without exec, "
              f"{(m['latency'] + m['retry']) / 60:.1f} min with it; the external-latency check adds "
              f"{bare['external'] / 60:.1f} / {m['external'] / 60:.1f} min and a second fleet ({start:.0f} s to start)")


@contextlib.contextmanager
def kwok_cluster(name: str, total: int, timeout_s: float,
                 setup: dict[str, float]) -> Iterator[tuple[KindCluster, Cluster, Cluster]]:
    """A 1-node kind cluster with `total` kwok nodes (its set-up times into `setup`); kwok stopped and
    the cluster deleted at the end, also on failure."""
    binary, stages = kwok_files()
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    kind = KindCluster(name, image=NODE_IMAGE, config=kind_config(0), workdir=workdir / "kind")
    kwok: subprocess.Popen[bytes] | None = None
    ok = False
    try:
        log(f"creating kind cluster {name}")
        setup["kind_s"], cluster = timed(kind.create)
        admin = Cluster.from_kubeconfig(str(kind.kubeconfig), f"kind-{name}", created=True)
        keep_daemonsets_off(admin)
        taint_control_plane(admin, f"{name}-control-plane")
        kwok = start_kwok(binary, stages, kind.kubeconfig, workdir)
        log(f"kwok running (log {workdir / 'kwok.log'}); creating {total} fake nodes")
        setup["nodes_s"] = create_fake_nodes(admin, total, timeout_s)
        log(f"{total} fake nodes Ready in {setup['nodes_s']:.1f} s")
        yield kind, cluster, admin
        ok = True
    finally:
        if kwok is not None:
            kwok.terminate()
            try:
                kwok.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kwok.kill()
        log(f"deleting kind cluster {name}")
        kind.delete()
        if ok:  # kept after a failure, for kwok.log
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=500, help="fake nodes in the cluster")
    parser.add_argument("--sizes", default="100,250,500", help="nodes probed per round, comma-separated")
    parser.add_argument("--pod-timeout", type=float, default=900, help="seconds to wait for the pods to be Ready")
    parser.add_argument("--execs", type=int, default=10, help="`info` execs per libc on the real node (0: none)")
    parser.add_argument("--project", default="1000", help="node counts to project to, comma-separated")
    args = parser.parse_args()
    sizes = sorted({min(int(x), args.nodes) for x in args.sizes.split(",") if x.strip()})
    watches, marks = Watches(), Marks()
    run_id = f"kwok-{new_run_id()}"
    namespace = f"k8sdns-{run_id}"
    rows: list[dict[str, Any]] = []
    real = None
    setup: dict[str, float] = {}
    try:
        with kwok_cluster(f"k8sdns-{run_id}", args.nodes, args.pod_timeout, setup) as (kind, cluster, admin):
            pods.create_namespace(cluster, namespace, run_id)
            try:
                for size in sizes:
                    log(f"round of {size} nodes")
                    rows.append(one_size(cluster, admin, namespace, run_id, size, args.nodes, args.pod_timeout,
                                         watches, marks))
                    r = rows[-1]
                    log(f"{size} nodes: start-up {r['choose_s'] + r['start_s']:.1f} s, stop {r['stop_s']:.1f} s, "
                        f"gone {r['gone_s']:.1f} s")
                if args.execs:
                    log("timing execs on the real node")
                    try:
                        real = exec_cost(kind, cluster, namespace, f"{run_id}-real", args.execs)
                    except K8sDnsError as exc:
                        log(f"no exec figures: {exc}")
            finally:
                pods.delete_namespace(cluster, namespace)
    finally:
        if rows:  # what was measured before a failure is still printed
            report(rows, real, args.nodes, setup, [int(x) for x in args.project.split(",") if x.strip()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
