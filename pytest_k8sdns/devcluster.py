"""`python -m pytest_k8sdns.devcluster up|down`: the kind cluster `pytest --k8sdns-kind` makes, kept
for development (same node image, test upstream, CoreDNS forward and probe images)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_k8sdns.config import Settings
from pytest_k8sdns.errors import K8sDnsError
from pytest_k8sdns.kube.kind import KindCluster
from pytest_k8sdns.session import Run


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pytest_k8sdns.devcluster up|down`: the cluster `pytest --k8sdns-kind` makes, kept for
    development (same node image, test upstream, CoreDNS forward and probe images)."""
    parser = argparse.ArgumentParser(prog="python -m pytest_k8sdns.devcluster")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--name", default="k8sdns-dev")
    parser.add_argument("--image", default="k8sdns/kind-node:latest", help="kind node image")
    parser.add_argument("--glibc-image", default="k8sdns/probe-glibc:py3.11-bookworm")
    parser.add_argument("--musl-image", default="k8sdns/probe-musl:py3.11-musl")
    parser.add_argument("--nodelocal", action="store_true", help="also deploy NodeLocal DNSCache (fixtures/nodelocaldns.yaml)")
    args = parser.parse_args(argv)
    workdir = Path.home() / ".cache" / "pytest-k8sdns" / args.name
    if args.action == "down":
        KindCluster(args.name, image=None, workdir=workdir).delete()
        print(f"deleted kind cluster {args.name}")
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(kind=True, keep_cluster=True, kind_image=args.image,
                        glibc_image=args.glibc_image, musl_image=args.musl_image, kind_nodelocal=args.nodelocal)
    run = Run(settings, run_id="dev")
    run.kind = KindCluster(args.name, image=args.image, workdir=workdir)
    try:
        run.start(kind=run.kind)
    except K8sDnsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        run.kind.delete()
        return 1
    kc = run.kind.kubeconfig
    print(f"kind cluster {args.name} is up ({run.server_version}, {len(run.nodes)} nodes, upstream DNS "
          f"{run.kind.upstream_ip}).\nRun the suite on it:\n  pytest --k8sdns-context=kind-{args.name} "
          f"--k8sdns-kubeconfig={kc} --k8sdns-glibc-image={args.glibc_image} --k8sdns-musl-image={args.musl_image} "
          f"--k8sdns-external-name=api.example.test\nDelete it: python -m pytest_k8sdns.devcluster down --name {args.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
