"""Run the official Kubernetes e2e DNS tests beside this suite on one cluster, healthy and under
faults of the project's own fault library, and print both verdicts per e2e test as a markdown table.

    python scripts/e2e_parity.py --kubeconfig PATH --context CTX [--faults a,b] [--out table.md]
    python scripts/e2e_parity.py --kind [--faults a,b]     # its own kind cluster, deleted at the end

e2e.test (and the ginkgo CLI, which runs its specs in parallel) is built at the cluster's version
from the k8s.io/kubernetes module, cached under $K8SDNS_CACHE/e2e/<version>/; its probe images are
built by scripts/e2e_images.sh and preloaded into kind nodes. The map is scripts/e2e_parity_map.py,
the JUnit/results parsing and the table scripts/e2e_parity_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from e2e_parity_map import PARITY, mapped_checks  # noqa: E402
from e2e_parity_report import E2eResult, e2e_verdicts, our_verdicts, table  # noqa: E402

CACHE = Path(os.environ.get("K8SDNS_CACHE", "/var/cache/pytest-k8sdns"))
GO = os.environ.get("GO", "/usr/local/go/bin/go")
#: the local repository every registry of e2e.test's image manifest is pointed at
REPO = "k8sdns.local/e2e"
FOCUS = r"\[sig-network\] DNS"
#: Slow/Serial rewrite the CoreDNS ConfigMap (and would undo a fault); Alpha needs an off-by-default gate
DEFAULT_SKIP = r"\[Slow\]|\[Serial\]|\[Alpha\]"
DEFAULT_FAULTS = "no_reverse_zone,cluster_domain_mismatch"
KIND_SUITE_ARGS = ("--k8sdns-glibc-image=k8sdns/probe-glibc:py3.11-bookworm",
                   "--k8sdns-musl-image=k8sdns/probe-musl:py3.11-musl", "--k8sdns-external-name=api.example.test")


class ParityError(Exception):
    """A one-line failure that says what to do."""


def sh(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
       timeout: float = 3600) -> str:
    """Run a command; on failure raise ParityError with the command and its last stderr line."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        raise ParityError(f"{argv[0]} is not installed; install it or put it on PATH") from None
    except subprocess.TimeoutExpired:
        raise ParityError(f"`{shlex.join(argv)}` took more than {timeout:.0f} s") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise ParityError(f"`{shlex.join(argv)}` failed ({proc.returncode}): {said}")
    return proc.stdout


def go_env() -> dict[str, str]:
    """The substrate's Go caches, so the Kubernetes packages it compiled are reused."""
    return {**os.environ, "GOMODCACHE": str(CACHE / "go" / "mod"), "GOCACHE": str(CACHE / "go" / "build"),
            "GOFLAGS": "-buildvcs=false -mod=mod", "CGO_ENABLED": "0",
            "PATH": f"{Path(GO).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def release(version: str) -> str:
    m = re.match(r"^v1\.(\d+)\.(\d+)", version)
    if not m:
        raise ParityError(f"server version {version!r} is not a Kubernetes v1.Y.Z release; e2e.test is built "
                          f"from the k8s.io/kubernetes module at that tag")
    return f"v1.{m.group(1)}.{m.group(2)}"


def build(version: str) -> tuple[Path, Path, Path, float, bool]:
    """e2e.test and ginkgo for `version`, from a wrapper module that requires k8s.io/kubernetes and
    replaces each staging module (./staging in its go.mod) by its published v0.Y.Z: (e2e.test,
    ginkgo, wrapper dir, build seconds, cached)."""
    if not Path(GO).exists():
        raise ParityError(f"no Go toolchain at {GO}; install Go or set GO=/path/to/go")
    out = CACHE / "e2e" / version
    src, e2e, ginkgo = out / "src", out / "e2e.test", out / "ginkgo"
    if e2e.exists() and ginkgo.exists() and (src / "go.mod").exists():
        return e2e, ginkgo, src, 0.0, True
    t0 = time.monotonic()
    env = go_env()
    src.mkdir(parents=True, exist_ok=True)
    info = sh([GO, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], env=env, cwd=src)
    gomod = Path(re.search(r'"GoMod":\s*"([^"]+)"', info).group(1))  # type: ignore[union-attr]
    text = gomod.read_text()
    go_line = re.search(r"^go (\S+)", text, re.M)
    staging = f"v0.{version[len('v1.'):]}"
    lines = ["module k8sdns.invalid/e2e-wrapper", f"go {go_line.group(1) if go_line else '1.24'}",
             f"require k8s.io/kubernetes {version}"]
    lines += [f"replace {m} => {m} {staging}" for m in re.findall(r"^\s*(k8s\.io/\S+) => \./staging/", text, re.M)]
    (src / "go.mod").write_text("\n".join(lines) + "\n")
    sh([GO, "get", f"k8s.io/kubernetes/test/e2e@{version}", f"k8s.io/kubernetes/test/images/agnhost@{version}",
        "github.com/onsi/ginkgo/v2/ginkgo"], env=env, cwd=src)
    sh([GO, "test", "-c", "-trimpath", "-ldflags", "-s -w", "-o", f"{e2e}.tmp", "k8s.io/kubernetes/test/e2e"],
       env=env, cwd=src, timeout=7200)
    sh([GO, "build", "-trimpath", "-ldflags", "-s -w", "-o", f"{ginkgo}.tmp", "github.com/onsi/ginkgo/v2/ginkgo"],
       env=env, cwd=src)
    os.replace(f"{e2e}.tmp", e2e)
    os.replace(f"{ginkgo}.tmp", ginkgo)
    return e2e, ginkgo, src, time.monotonic() - t0, False


def repo_list(src: Path, path: Path) -> Path:
    """KUBE_TEST_REPO_LIST: every key of manifest.go's RegistryList set to the local repository."""
    moddir = sh([GO, "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"], env=go_env(), cwd=src).strip()
    manifest = (Path(moddir) / "test/utils/image/manifest.go").read_text()
    block = re.search(r"type RegistryList struct \{(.*?)\n\}", manifest, re.S)
    keys = re.findall(r'yaml:"(\w+)"', block.group(1) if block else "")
    if not keys:
        raise ParityError(f"no RegistryList in {moddir}/test/utils/image/manifest.go; this script knows e2e.test "
                          f"of v1.2x releases")
    path.write_text("".join(f"{k}: {REPO}\n" for k in keys))
    return path


def kind_of(context: str) -> str | None:
    """The kind cluster behind a context kind-NAME, if kind lists NAME."""
    if not context.startswith("kind-") or shutil.which("kind") is None:
        return None
    name = context[len("kind-"):]
    return name if name in sh(["kind", "get", "clusters"]).split() else None


def scenario_fault(faults: Any, name: str) -> contextlib.AbstractContextManager[None]:
    """The library's fault `name`; `pods_disabled` is written here when the library has none."""
    if name == "pods_disabled" and not hasattr(faults, "pods_disabled"):
        from pytest_k8sdns.dns import corefile
        from pytest_k8sdns.faults.base import COREFILE, editing
        from pytest_k8sdns.kube.patch import edited
        return edited(faults.coredns_config, COREFILE, editing(name, faults.coredns_config, lambda t: corefile.set_option(
            t, "kubernetes", "pods", ["disabled"])), settle=faults.restart_coredns)
    return getattr(faults, name)()  # type: ignore[no-any-return]


def known_faults() -> set[str]:
    from pytest_k8sdns.faults import RUN_INPUT_FAULTS, TARGETS, Faults
    return {n for n in TARGETS if n not in RUN_INPUT_FAULTS and callable(getattr(Faults, n, None))} | {"pods_disabled"}


@contextlib.contextmanager
def child(argv: Sequence[str], log: Path, cwd: Path, env: dict[str, str] | None = None,
          grace_s: float = 300) -> Iterator[subprocess.Popen[bytes]]:
    """A process that is stopped (SIGTERM, then SIGKILL after `grace_s`) when the block is left
    before it ended."""
    with log.open("wb") as out:
        # its own session: a Ctrl-C reaches this script only, which then stops it once (a second
        # signal makes ginkgo skip its cleanup)
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                # SIGTERM to its process group, as a terminal's Ctrl-C reaches every process: ginkgo's
                # CLI does not pass it on to its spec processes. Not SIGINT: a shell's background job
                # ignores it. Ginkgo and our suite clean up their namespaces on it (ginkgo in minutes).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)  # ginkgo's spec processes too
                    proc.wait()


def run_scenario(name: str, a: argparse.Namespace, e2e: Path, ginkgo: Path, repo_yaml: Path, kc: str, ctx: str,
                 suite_args: Sequence[str], out: Path) -> tuple[dict[str, E2eResult], dict[str, str], float, float]:
    """e2e.test and our suite at once on the cluster as it is: their verdicts and wall times."""
    d = out / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    e2e_argv = [str(ginkgo), f"--procs={a.procs}", "--no-color", "--silence-skips", f"--timeout={a.e2e_timeout_min}m",
                f"--focus={FOCUS}", f"--skip={a.e2e_skip}", str(e2e), "--", f"--kubeconfig={kc}", f"--context={ctx}",
                "--provider=skeleton", f"--report-dir={d / 'e2e'}", "--disable-log-dump"]
    checks = mapped_checks()
    ours_argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", f"--k8sdns-context={ctx}",
                 f"--k8sdns-kubeconfig={kc}", f"--k8sdns-results={d / 'ours.json'}", *suite_args,
                 "-k", " or ".join(checks)]
    (d / "commands.txt").write_text(f"{shlex.join(e2e_argv)}\n{shlex.join(ours_argv)}\n")
    env = {**os.environ, "KUBE_TEST_REPO_LIST": str(repo_yaml)}
    times: dict[str, float] = {}
    t0 = time.monotonic()
    with child(e2e_argv, d / "e2e.log", d, env) as pe, child(ours_argv, d / "ours.log", d) as po:
        procs = {"e2e": pe, "ours": po}
        while len(times) < 2:
            for k, p in procs.items():
                if k not in times and p.poll() is not None:
                    times[k] = time.monotonic() - t0
            time.sleep(1)
    e2e_res = e2e_verdicts(d / "e2e", FOCUS, a.e2e_skip, d / "e2e.log")
    if not e2e_res:
        raise ParityError(f"e2e.test wrote no JUnit report for scenario {name}; read {d / 'e2e.log'}")
    return e2e_res, our_verdicts(d / "ours.json", checks), times["e2e"], times["ours"]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python scripts/e2e_parity.py", description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--context", help="kubeconfig context of the cluster under test")
    where.add_argument("--kind", action="store_true", help="create a kind cluster for the run, delete it after")
    p.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
    p.add_argument("--kind-name", default="k8sdns-e2e", help="name of the --kind cluster")
    p.add_argument("--faults", default=DEFAULT_FAULTS, help="faults to run after the healthy scenario, comma "
                   "separated, or 'none' (kind clusters only)")
    p.add_argument("--out", type=Path, help="also write the table to this file")
    p.add_argument("--work", type=Path, default=Path("e2e-parity"), help="logs, JUnit and results files")
    p.add_argument("--e2e-skip", default=DEFAULT_SKIP, help="ginkgo --skip regex")
    p.add_argument("--procs", type=int, default=12, help="parallel ginkgo processes (a failing e2e DNS test "
                   "polls 600 s, so one round of them is the scenario's floor)")
    p.add_argument("--e2e-timeout-min", type=int, default=40, help="ginkgo --timeout of one scenario, minutes")
    p.add_argument("--suite-arg", action="append", default=[], help="extra argument of our suite (repeatable)")
    a = p.parse_args(argv)
    if a.procs < 1 or a.e2e_timeout_min < 1:
        p.error("--procs and --e2e-timeout-min must be at least 1")
    return a


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM undoes the faults as Ctrl-C does


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _main(a)
    except ParityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every fault was undone and both runs were stopped", file=sys.stderr)
        return 130


def _main(a: argparse.Namespace) -> int:
    from pytest_k8sdns.errors import K8sDnsError
    faults_wanted = [] if a.faults.strip() in ("", "none") else [f.strip() for f in a.faults.split(",")]
    unknown = sorted(set(faults_wanted) - known_faults())
    if unknown:
        raise ParityError(f"unknown fault {', '.join(unknown)}; choose from {', '.join(sorted(known_faults()))}")
    a.work = a.work.resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            cluster, kind, kc, ctx = stack.enter_context(target(a))
            version = release(cluster.server_version())
            print(f"cluster {ctx}: Kubernetes {version}", flush=True)
            e2e, ginkgo, src, secs, cached = build(version)
            print(f"e2e.test {version}: {'cached' if cached else f'built in {secs:.0f} s'} ({e2e})", flush=True)
            images = sh(["bash", str(HERE / "e2e_images.sh"), version, str(src), REPO], timeout=3600).split()
            if kind is not None:
                kind.load_images(images)
                print(f"loaded {', '.join(images)} into kind cluster {kind.name}", flush=True)
            else:
                print(f"not a kind cluster: the nodes must already hold {', '.join(images)}", flush=True)
            repo_yaml = repo_list(src, a.work / "repo-list.yaml")
            faults = None
            if faults_wanted:
                if kind is None:
                    raise ParityError(f"faults need a kind cluster (context {ctx} is not kind-NAME of `kind get "
                                      f"clusters`); pass --faults none, or --kind")
                from pytest_k8sdns.faults import Faults
                faults = Faults(cluster, kind)
            suite_args = [*(KIND_SUITE_ARGS if kind is not None else ()), *a.suite_arg]
            tables = []
            for name in ["healthy", *faults_wanted]:
                with contextlib.ExitStack() as held:
                    if name != "healthy":
                        t0 = time.monotonic()
                        held.enter_context(scenario_fault(faults, name))
                        print(f"[{name}] fault applied in {time.monotonic() - t0:.0f} s", flush=True)
                    res, ours, te, to = run_scenario(name, a, e2e, ginkgo, repo_yaml, kc, ctx, suite_args, a.work)
                undone = "" if name == "healthy" else "; fault undone"
                print(f"[{name}] e2e.test {te:.0f} s, our suite {to:.0f} s (run at once){undone}", flush=True)
                tables.append(table(name, res, ours, te, to, PARITY))
        except K8sDnsError as exc:
            raise ParityError(str(exc)) from None
    text = f"e2e.test {version} ({'cached' if cached else f'built in {secs:.0f} s'}); focus `{FOCUS}`, " \
           f"skip `{a.e2e_skip}`\n\n" + "\n\n".join(tables) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


@contextlib.contextmanager
def target(a: argparse.Namespace) -> Iterator[tuple[Any, Any, str, str]]:
    """(Cluster that faults may change, KindCluster or None, kubeconfig path, context)."""
    from pytest_k8sdns.config import Settings
    from pytest_k8sdns.kube.client import Cluster
    from pytest_k8sdns.kube.kind import KindCluster
    if a.kind:
        from pytest_k8sdns.session import Run
        glibc, musl = (s.split("=", 1)[1] for s in KIND_SUITE_ARGS[:2])
        run = Run(Settings(kind=True, keep_cluster=True, kind_image="k8sdns/kind-node:latest", glibc_image=glibc,
                           musl_image=musl), run_id="e2e-parity")
        run.kind = KindCluster(a.kind_name, image="k8sdns/kind-node:latest", workdir=a.work / "kind")
        try:
            run.start(kind=run.kind)
            yield run.cluster, run.kind, str(run.kind.kubeconfig), f"kind-{a.kind_name}"
        finally:
            run.kind.delete()
            print(f"deleted kind cluster {a.kind_name}", flush=True)
        return
    kc = os.path.expanduser(a.kubeconfig or os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    if not os.path.exists(kc):
        raise ParityError(f"no kubeconfig at {kc}; pass --kubeconfig PATH")
    name = kind_of(a.context)
    cluster = Cluster.from_kubeconfig(kc, a.context, created=name is not None)
    kind = None
    if name is not None:
        kind = KindCluster(name, image=None, workdir=Path(kc).parent)
        kind.foreign = True  # never deleted here: it is the caller's
    yield cluster, kind, kc, a.context


if __name__ == "__main__":
    raise SystemExit(main())
