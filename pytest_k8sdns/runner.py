"""The in-cluster runner (fixtures/runner.yaml): run the suite in a Job's pod and keep its files in a
ConfigMap of the pod's own namespace, and fetch them from there after the Job ends.

    python -m pytest_k8sdns.runner run --dir=/results --configmap=k8sdns-results -- PYTEST_ARGS...
    python -m pytest_k8sdns.runner fetch --job=k8sdns-runner --out=DIR [--context=CTX] [--wait=900]
    python -m pytest_k8sdns.runner sonobuoy -- PYTEST_ARGS...   (fixtures/sonobuoy-plugin.yaml)

`run` exits with pytest's exit status (the Job's verdict) after it has stored every file of --dir,
gzipped, in the ConfigMap (with the exit status and the Job's uid); `fetch` writes them back to
--out and exits with the stored status. A ConfigMap holds at most 1 MiB. `sonobuoy` runs pytest as
a Sonobuoy plugin: its files go to $SONOBUOY_RESULTS_DIR, packed in one tarball that the `done`
file names, and it exits 0 once they are handed over (the verdict is the JUnit XML in them).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import gzip
import os
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from kubernetes import client

from pytest_k8sdns.errors import K8sDnsError, NotFound
from pytest_k8sdns.kube.client import SERVICE_ACCOUNT_DIR, Cluster, api_errors
from pytest_k8sdns.kube.wait import until

DEFAULT_CONFIGMAP = "k8sdns-results"
DEFAULT_NAMESPACE = "k8sdns"
#: The API server refuses a ConfigMap over 1 MiB; leave room for its metadata.
MAX_BYTES = 1_000_000
#: The Job's uid, which the Job's pod template passes in from its label (downward API)
JOB_UID_ENV = "K8SDNS_JOB_UID"
LABELS = {"app.kubernetes.io/name": "k8sdns-runner", "app.kubernetes.io/managed-by": "pytest-k8sdns"}


def own_namespace() -> str:
    """The namespace of the pod this process runs in (its ServiceAccount's)."""
    path = Path(SERVICE_ACCOUNT_DIR, "namespace")
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        raise K8sDnsError(f"no namespace file at {path}; `run` stores results only from inside a pod") from None


def results_configmap(name: str, files: dict[str, bytes], status: int, job_uid: str) -> client.V1ConfigMap:
    """The ConfigMap that carries a run's files (gzipped, as binaryData) and its exit status."""
    binary: dict[str, bytes | str] = {f"{k}.gz": base64.b64encode(gzip.compress(v, mtime=0)).decode()
                                      for k, v in sorted(files.items())}
    size = sum(len(v) for v in binary.values())
    if size > MAX_BYTES:
        raise K8sDnsError(f"the run's files are {size} bytes gzipped, over a ConfigMap's 1 MiB; drop "
                          f"--self-contained-html or the largest file from --dir")
    data = {"exit-status": str(status), "job-uid": job_uid, "files": " ".join(sorted(files)),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=LABELS), data=data, binary_data=binary)


def store(cluster: Cluster, namespace: str, name: str, body: client.V1ConfigMap) -> None:
    """Create the ConfigMap, or replace the one an earlier run left."""
    core = cluster.core
    with api_errors("create", "configmaps", namespace, cluster.server, name):
        try:
            core.create_namespaced_config_map(namespace, body, _request_timeout=30)
            return
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    with api_errors("update", "configmaps", namespace, cluster.server, name):
        core.replace_namespaced_config_map(name, namespace, body, _request_timeout=30)


def _pytest(directory: Path, pytest_args: Sequence[str]) -> int:
    """pytest's exit status, run in `directory` (made if missing): relative output paths, and the
    files the certification profile writes when no --html / --k8sdns-results is given, land there."""
    directory.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], check=False, cwd=directory).returncode


def run(directory: Path, configmap: str, pytest_args: Sequence[str]) -> int:
    """Run pytest, then store every file it left in `directory`; pytest's exit status, else 1 when
    the files could not be stored (so a lost verdict never looks like a pass). pytest runs in
    `directory` (see _pytest), so what it writes there is stored."""
    status = _pytest(directory, pytest_args)
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
    try:
        namespace = own_namespace()
        cluster = Cluster.in_cluster()
        try:
            store(cluster, namespace, configmap,
                  results_configmap(configmap, files, status, os.environ.get(JOB_UID_ENV, "")))
        finally:
            cluster.close()
    except K8sDnsError as exc:
        print(f"ERROR: results not stored: {exc}", file=sys.stderr)
        return status or 1
    print(f"k8sdns runner: pytest exited {status}; stored {', '.join(files) or 'no files'} in configmap "
          f"{namespace}/{configmap}", file=sys.stderr)
    return status


def _job_uid(cluster: Cluster, namespace: str, job: str, wait_s: float) -> str:
    """Wait until the Job has finished (Complete or Failed); its uid."""
    batch = client.BatchV1Api(cluster.api_client)

    def look() -> client.V1Job:
        with api_errors("get", "jobs", namespace, cluster.server, job):
            return batch.read_namespaced_job(job, namespace, _request_timeout=30)

    def finished(obj: client.V1Job) -> bool:
        return any(c.type in ("Complete", "Failed") and c.status == "True"
                   for c in (obj.status.conditions if obj.status else None) or [])

    def late(obj: client.V1Job) -> str:
        active = (obj.status.active if obj.status else None) or 0
        return (f"job {namespace}/{job} has not finished after {wait_s:.0f} s (active {active}); wait longer "
                f"(--wait) or see kubectl logs -n {namespace} job/{job}")

    obj = until(f"job {namespace}/{job} finished", look, finished, timeout_s=wait_s, every_s=2, message=late)
    return str(obj.metadata.uid if obj.metadata else "")


def fetch(cluster: Cluster, namespace: str, configmap: str, out: Path, job: str | None, wait_s: float) -> int:
    """Write the stored files to `out`; the run's exit status. With `job`, wait for that Job to
    finish first and refuse files that another Job stored."""
    uid = _job_uid(cluster, namespace, job, wait_s) if job else None

    def look() -> client.V1ConfigMap | None:
        try:
            with api_errors("get", "configmaps", namespace, cluster.server, configmap):
                return cluster.core.read_namespaced_config_map(configmap, namespace, _request_timeout=30)
        except NotFound:
            return None

    def stored(cm: client.V1ConfigMap | None) -> bool:
        return cm is not None and (uid is None or (cm.data or {}).get("job-uid") == uid)

    def missing(cm: client.V1ConfigMap | None) -> str:
        if cm is None:
            return (f"configmap {namespace}/{configmap} not found: the runner stored no results (see "
                    f"kubectl logs -n {namespace} job/{job or 'k8sdns-runner'})")
        return (f"configmap {namespace}/{configmap} holds the results of another Job (uid "
                f"{(cm.data or {}).get('job-uid') or 'none'}, not {uid}); the runner of job {job} stored none")

    # the runner stores its files as its pod ends: give it a moment after the Job finished
    cm = until(f"configmap {namespace}/{configmap}", look, stored, timeout_s=30 if job else 0, every_s=2,
               message=missing)
    assert cm is not None
    data = cm.data or {}
    out.mkdir(parents=True, exist_ok=True)
    for key, value in sorted((cm.binary_data or {}).items()):
        path = out / key.removesuffix(".gz")
        path.write_bytes(gzip.decompress(base64.b64decode(value)))
        print(path)
    return int(data.get("exit-status", "1"))


#: Where Sonobuoy's worker waits for a plugin's files and its done file, unless the pod's env says.
SONOBUOY_RESULTS_DIR = "/tmp/sonobuoy/results"
#: The files a run writes, in the Sonobuoy results directory (the plugin's result-format is junit).
SONOBUOY_OUTPUTS = ("junit.xml", "results.json", "report.html")


def sonobuoy_args(directory: Path, pytest_args: Sequence[str]) -> list[str]:
    """pytest's arguments in a Sonobuoy plugin: in-cluster, the three files in `directory`, then
    the plugin's own arguments (which may override any of these)."""
    junit, results, html = (str(directory / name) for name in SONOBUOY_OUTPUTS)
    return ["-p", "no:cacheprovider", "-rs", "--k8sdns-context=in-cluster", f"--junitxml={junit}",
            f"--k8sdns-results={results}", f"--html={html}", "--self-contained-html", *pytest_args]


def sonobuoy(directory: Path, pytest_args: Sequence[str]) -> int:
    """Run pytest, pack what it wrote in `directory` into one tarball, and name that in the done
    file, as Sonobuoy's worker expects; 0 once the files are handed over, whatever the verdict."""
    status = _pytest(directory, sonobuoy_args(directory, pytest_args))
    tarball = directory / "k8sdns.tar.gz"
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name not in (tarball.name, "done"))
    with tarfile.open(tarball, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=path.name)
    (directory / "done").write_text(str(tarball))
    print(f"k8sdns runner: pytest exited {status}; handed {', '.join(p.name for p in files) or 'no files'} "
          f"to Sonobuoy in {tarball}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    own, pytest_args = (args[:args.index("--")], args[args.index("--") + 1:]) if "--" in args else (args, [])
    parser = argparse.ArgumentParser(prog="python -m pytest_k8sdns.runner", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run pytest (the arguments after --) and store its files in a ConfigMap")
    r.add_argument("--dir", default="/results", help="the directory pytest writes its files to (default /results)")
    r.add_argument("--configmap", default=DEFAULT_CONFIGMAP, help=f"ConfigMap of the pod's namespace (default {DEFAULT_CONFIGMAP})")
    sub.add_parser("sonobuoy", help="run pytest (the arguments after --) as a Sonobuoy plugin: files to "
                   "$SONOBUOY_RESULTS_DIR, then the done file")
    f = sub.add_parser("fetch", help="write the files a runner stored to --out; exit with the run's status")
    f.add_argument("--out", default=".", help="directory to write the files to (default .)")
    f.add_argument("--job", help="wait for this Job to finish, and take only its files")
    f.add_argument("--wait", type=float, default=900, help="seconds to wait for the Job (default 900)")
    f.add_argument("--namespace", default=DEFAULT_NAMESPACE, help=f"the runner's namespace (default {DEFAULT_NAMESPACE})")
    f.add_argument("--configmap", default=DEFAULT_CONFIGMAP, help=f"(default {DEFAULT_CONFIGMAP})")
    f.add_argument("--context", help="kubeconfig context (default the current one)")
    f.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
    ns = parser.parse_args(own)
    try:
        if ns.cmd == "run":
            return run(Path(ns.dir), ns.configmap, pytest_args)
        if ns.cmd == "sonobuoy":
            return sonobuoy(Path(os.environ.get("SONOBUOY_RESULTS_DIR") or SONOBUOY_RESULTS_DIR), pytest_args)
        if pytest_args:
            parser.error("fetch takes no arguments after --")
        cluster = Cluster.from_kubeconfig(ns.kubeconfig, ns.context)
        try:
            return fetch(cluster, ns.namespace, ns.configmap, Path(ns.out), ns.job, ns.wait)
        finally:
            cluster.close()
    except K8sDnsError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
