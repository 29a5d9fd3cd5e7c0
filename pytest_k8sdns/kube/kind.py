"""Throwaway kind clusters: create, wire to a test upstream DNS server, load images, delete."""

from __future__ import annotations

import contextlib
import itertools
import json
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from pytest_k8sdns.dns.corefile.edit import set_forward
from pytest_k8sdns.errors import ToolError, WaitTimeout
from pytest_k8sdns.files import fixture_path
from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.kube.patch import Target, apply, value_at
from pytest_k8sdns.kube.rollout import wait_deployment
from pytest_k8sdns.kube.wait import until

#: Label on the containers the plugin starts beside kind's nodes.
CONTAINER_LABEL = "io.k8sdns.cluster"
#: Names the test upstream DNS server answers (fixtures/upstream/example.test.db).
UPSTREAM_NAMES = {"api.example.test": "192.0.2.10", "a.b.c.d.example.test": "192.0.2.11"}
#: Every name under this zone answers with UPSTREAM_WILD_IP: a new name per lookup misses every cache.
UPSTREAM_WILD = "wild.example.test"
UPSTREAM_WILD_IP = "192.0.2.12"


def run_tool(argv: Sequence[str], *, option: str, input: str | None = None, timeout: float = 900) -> str:
    """Run kind or docker; a failure names the command, its stderr and the option to change."""
    __tracebackhide__ = True
    if shutil.which(argv[0]) is None:
        raise ToolError(f"{argv[0]} is not on PATH; install it, or use {option}")
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"`{shlex.join(argv)}` still running after {timeout:.0f} s; see {option}") from None
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:]) or "no stderr"
        raise ToolError(f"`{shlex.join(argv)}` failed (exit {proc.returncode}): {tail}; see {option}")
    return proc.stdout


class KindCluster:
    """A kind cluster the plugin owns: it may change anything in it, and deletes it at the end."""

    def __init__(self, name: str, *, image: str | None, config: Path | None = None, workdir: Path | None = None) -> None:
        self.name = name
        self.image = image
        self.config = config or fixture_path("kind-2node.yaml")
        self._dir = Path(workdir or tempfile.mkdtemp(prefix=f"{name}-"))
        self.kubeconfig = self._dir / "kubeconfig"
        self.upstream_container = f"{name}-upstream"
        self.upstream_ip = ""
        #: the images load_images put into the nodes (the probe images, for faults that need python3)
        self.loaded_images: list[str] = []
        #: set when a cluster of this name existed before create(): another run's, never deleted here
        self.foreign = False

    # -- lifecycle --------------------------------------------------------------------------
    def create(self, wait_s: float = 300) -> Cluster:
        """Create the cluster; on any failure or interrupt, delete what was made of it."""
        if shutil.which("docker") is None:
            raise ToolError("docker is not on PATH; install it, or use --k8sdns-context")
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              check=False, timeout=120)
        if info.returncode != 0:
            said = (info.stderr.strip().splitlines() or ["no output"])[-1]
            raise ToolError(f"no Docker engine answers (`docker info`: {said}); start one, or test an existing "
                            f"cluster with --k8sdns-context")
        if shutil.which("kind") is None:
            raise ToolError("kind is not on PATH; install it (substrate/build builds it), or test an existing "
                            "cluster with --k8sdns-context")
        taken = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, check=False, timeout=120)
        if self.name in taken.stdout.split():
            self.foreign = True
            raise ToolError(f"a kind cluster named {self.name} already exists and this run did not make it; wait "
                            f"for the run that owns it, or delete it with `kind delete cluster --name {self.name}`")
        argv = ["kind", "create", "cluster", "--name", self.name, "--config", str(self.config),
                "--kubeconfig", str(self.kubeconfig), "--wait", "0s"]
        if self.image:
            argv += ["--image", self.image]
        try:
            run_tool(argv, option="--k8sdns-kind-image", timeout=wait_s + 300)
            return Cluster.from_kubeconfig(str(self.kubeconfig), f"kind-{self.name}", created=True)
        except BaseException:
            # kind leaves a half-made cluster when it fails or is killed (Ctrl-C reaches it too)
            self.delete()
            raise

    @property
    def ip_family(self) -> str:
        """The config's networking.ipFamily: "ipv4" (kind's default), "ipv6" or "dual"."""
        try:
            doc = yaml.safe_load(Path(self.config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return "ipv4"  # kind itself reports a config it cannot read, at create
        family = (doc.get("networking") or {}).get("ipFamily") if isinstance(doc, dict) else None
        return str(family or "ipv4").lower()

    def node_containers(self) -> list[str]:
        out = run_tool(["kind", "get", "nodes", "--name", self.name], option="--k8sdns-kind")
        return [line for line in out.split() if line]

    def load_images(self, images: Sequence[str]) -> list[str]:
        """Load the images the host's Docker has into every node, in one `kind load`; return those loaded."""
        loaded = [image for image in dict.fromkeys(images)
                  if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0]
        self.loaded_images += [image for image in loaded if image not in self.loaded_images]
        if loaded:
            run_tool(["kind", "load", "docker-image", "--name", self.name, *loaded], option="--k8sdns-kind")
        return loaded

    def start_upstream(self, image: str) -> str:
        """Run the test upstream DNS server (CoreDNS serving fixtures/upstream) on kind's network."""
        zones = fixture_path("upstream")
        run_tool(["docker", "rm", "-f", self.upstream_container], option="--k8sdns-kind")
        run_tool(
            ["docker", "run", "-d", "--name", self.upstream_container, "--network", "kind",
             "--label", f"{CONTAINER_LABEL}={self.name}", "-v", f"{zones}:/etc/k8sdns-upstream:ro",
             image, "-conf", "/etc/k8sdns-upstream/Corefile"],
            option="--k8sdns-upstream-image",
        )
        out = run_tool(["docker", "inspect", self.upstream_container], option="--k8sdns-kind")
        networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
        # an IPv6-only cluster's pods (CoreDNS among them) have no IPv4 route: they reach it over IPv6
        self.upstream_ip = networks["kind"]["GlobalIPv6Address" if self.ip_family == "ipv6" else "IPAddress"]
        if not self.upstream_ip:
            raise ToolError(f"the test upstream {self.upstream_container} has no {self.ip_family} address on docker's "
                            f"kind network, which was made without IPv6; once no kind cluster uses it, `docker network "
                            f"rm kind` and kind makes it anew with an IPv6 subnet")
        # Nodes (and dnsPolicy: Default pods) resolve through the test upstream too, never
        # through the machine's own resolver. The upstream answers NXDOMAIN for the node names that
        # Docker's DNS resolved, and kubelet's and kube-proxy's kubeconfigs name the API server by
        # its node's name: every node's /etc/hosts lists every node (a kube-proxy started later
        # copies it, and reaches the API server).
        nodes = self.node_containers()
        inspected = json.loads(run_tool(["docker", "inspect", *nodes], option="--k8sdns-kind"))
        address = "GlobalIPv6Address" if self.ip_family == "ipv6" else "IPAddress"
        hosts = "".join(f"{c['NetworkSettings']['Networks']['kind'][address]}\t{c['Name'].lstrip('/')}\n"
                        for c in inspected)
        for node in nodes:
            run_tool(["docker", "exec", "-i", node, "sh", "-c", "cat > /etc/resolv.conf"],
                     input=f"nameserver {self.upstream_ip}\noptions ndots:1\n", option="--k8sdns-kind")
            run_tool(["docker", "exec", "-i", node, "sh", "-c", "cat >> /etc/hosts"], input=hosts, option="--k8sdns-kind")
        return self.upstream_ip

    def delete(self) -> None:
        """Delete the cluster, its upstream container and any node container still being made;
        safe to call twice. A cluster another run made under the same name is left alone."""
        if self.foreign:
            return
        if shutil.which("docker"):
            subprocess.run(["docker", "rm", "-f", self.upstream_container], capture_output=True, check=False)
        if shutil.which("kind"):
            subprocess.run(["kind", "delete", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig)],
                           capture_output=True, check=False, timeout=300)
        # a `docker run` that kind started before it was killed may finish after kind delete looked:
        # remove what is there until a second look, a second later, finds nothing; three looks at most
        looks = itertools.count(1)

        def sweep() -> tuple[int, list[str]]:
            left = docker_leftovers(self.name)
            if left:
                subprocess.run(["docker", "rm", "-f", "-v", *left], capture_output=True, check=False, timeout=120)
            return next(looks), left

        def swept(look: tuple[int, list[str]]) -> bool:
            return look[0] >= 3 or (look[0] > 1 and not look[1])

        with contextlib.suppress(WaitTimeout):  # best effort, as kind delete itself: the e2e tier checks
            until(f"containers of kind cluster {self.name} removed", sweep, swept, timeout_s=10, every_s=1,
                  seen=lambda look: ", ".join(look[1]))
        shutil.rmtree(self._dir, ignore_errors=True)


def point_coredns_at(cluster: Cluster, upstream_ip: str, timeout_s: float = 180) -> None:
    """Make CoreDNS forward to upstream_ip instead of the node's inherited resolv.conf, restart it.

    Only for clusters the plugin created: it writes to kube-system.
    """
    assert cluster.created, "point_coredns_at changes kube-system: only for clusters the plugin created"
    config = Target.configmap(cluster, "kube-system", "coredns")
    doc = config.read()
    text = value_at(doc, "/data/Corefile")
    # kept, not restored: the cluster is the plugin's, and the run's DNS must never leave it
    apply(config, {"/data/Corefile": set_forward(text if isinstance(text, str) else "", [upstream_ip])}, doc)
    Target.deployment(cluster, "kube-system", "coredns").restart()
    wait_deployment(cluster, "kube-system", "coredns", timeout_s)


def docker_leftovers(label_value: str | None = None) -> list[str]:
    """Names of kind node and upstream containers still present (all, or one cluster's)."""
    if shutil.which("docker") is None:
        return []
    names: list[str] = []
    for label in ("io.x-k8s.kind.cluster", CONTAINER_LABEL):
        selector = f"{label}={label_value}" if label_value else label
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label={selector}", "--format", "{{.Names}}"],
                             capture_output=True, text=True, check=False).stdout
        names += out.split()
    return names


def kind_env_ok() -> str | None:
    """None when kind and a Docker engine are usable, else the reason they are not."""
    for tool in ("kind", "docker"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine answers (`docker info` failed)"
    return None


__all__ = ["KindCluster", "point_coredns_at", "docker_leftovers", "kind_env_ok", "UPSTREAM_NAMES", "run_tool"]

