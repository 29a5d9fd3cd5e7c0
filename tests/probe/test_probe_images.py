"""The payload in the locally built probe images: musl's (and glibc's) own resolver, for real.

Each container runs with --network none (loopback only), as nobody with the pod's sysctl
net.ipv4.ip_unprivileged_port_start=0, the zipapp mounted read-only at /k8sdns/probe.pyz. For
`capture`, unbound runs on the host's filesystem inside the container's network namespace
(nsenter -n), so the image needs nothing but its Python.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from probe_netns_support import (
    API_A,
    API_AAAA,
    DNS_IP,
    KUBERNETES_IP,
    Unbound,
    answered,
    expected_qnames,
    forwarder_resolv_conf,
    need_root_and_ip,
    need_unbound,
    pod_resolv_conf,
    run,
    start_unbound,
    unique_name,
)

from pytest_k8sdns.probe import (
    PAYLOAD_PATH,
    CaptureResult,
    LookupResult,
    ProbeInfo,
    QueryResult,
    parse_output,
    probe_command,
)
from pytest_k8sdns.probe.results import ProbeResult

SUBSTRATE = Path(__file__).resolve().parents[2] / "substrate"


def _debian_suite() -> str:
    try:
        for line in (SUBSTRATE / "versions.env").read_text().splitlines():
            if line.startswith("DEBIAN_SUITE="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "bookworm"


IMAGES = {
    "musl": "k8sdns/probe-musl:py3.11-musl",
    "glibc": f"k8sdns/probe-glibc:py3.11-{_debian_suite()}",
}
POD_SECURITY = ["--user", "65534:65534", "--sysctl", "net.ipv4.ip_unprivileged_port_start=0", "--cap-drop", "ALL"]


def need_image(libc: str) -> str:
    image = IMAGES[libc]
    if shutil.which("docker") is None:
        pytest.skip(f"docker not installed; probe image {image} cannot run")
    if run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=30).returncode != 0:
        pytest.skip(f"docker daemon not running; probe image {image} cannot run")
    if run(["docker", "image", "inspect", image], timeout=30).returncode != 0:
        pytest.skip(f"probe image {image} not built; run substrate/build-probes.sh")
    return image


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_info_in_the_probe_image(libc: str, probe_zipapp: Path) -> None:
    image = need_image(libc)
    argv = [
        "docker", "run", "--rm", "--network", "none", *POD_SECURITY,
        "-v", f"{probe_zipapp}:{PAYLOAD_PATH}:ro", image, *probe_command("info"),
    ]  # fmt: skip
    proc = run(argv, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stdout}{proc.stderr}"
    info = parse_output("info", proc.stdout, where=f"image {image}")
    assert isinstance(info, ProbeInfo)
    assert info.libc == libc, info
    assert info.python.startswith("3.11") and info.dnspython
    assert info.resolv_conf is not None


@dataclass
class Container:
    name: str
    image: str
    resolv_conf: Path

    def probe(self, command: str, args: dict[str, object], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(["docker", "exec", self.name, *probe_command(command, args)], timeout=timeout)

    def run(self, command: str, args: dict[str, object]) -> ProbeResult:
        __tracebackhide__ = True
        proc = self.probe(command, args)
        if proc.returncode != 0:
            pytest.fail(f"probe {command} in {self.image} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return parse_output(command, proc.stdout, where=f"container {self.name} ({self.image})")


@pytest.fixture(params=["musl", "glibc"])
def container(request: pytest.FixtureRequest, probe_zipapp: Path, tmp_path: Path) -> Iterator[Container]:
    """A long-lived probe container, with unbound on DNS_IP:53 inside its network namespace."""
    libc = request.param
    image = need_image(libc)
    need_root_and_ip()
    need_unbound()
    if shutil.which("nsenter") is None:
        pytest.skip("nsenter (util-linux) not found; it runs unbound in the container's network namespace")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(forwarder_resolv_conf())
    resolv.chmod(0o644)
    name = unique_name(f"k8sdns-probe-{libc}")
    argv = [
        "docker", "run", "-d", "--rm", "--name", name, "--network", "none", *POD_SECURITY,
        "-v", f"{probe_zipapp}:{PAYLOAD_PATH}:ro", "-v", f"{resolv}:/etc/resolv.conf:ro",
        image, "python3", "-c", "import time; time.sleep(900)",
    ]  # fmt: skip
    started = run(argv, timeout=120)
    assert started.returncode == 0, f"{' '.join(argv)}: {started.stderr}"
    server: Unbound | None = None
    try:
        pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip()
        assert pid.isdigit() and pid != "0", f"container {name} is not running: {pid!r}"
        box = Container(name, image, resolv)
        server = start_unbound(
            lambda cmd: ["nsenter", "-t", pid, "-n", *cmd],
            tmp_path,
            lambda: answered(box.probe("query", {"server": DNS_IP, "name": "api.example.test", "timeout": 0.5})),
        )
        yield box
    finally:
        if server is not None:
            server.stop()
        run(["docker", "rm", "-f", name], timeout=60)


def test_capture_through_the_image_libc(container: Container) -> None:
    libc = "musl" if "musl" in container.image else "glibc"
    names = ["api.example.test", "kubernetes.default", "api.example.test."]
    explicit = {
        "api.example.test": [
            "api.example.test.default.svc.cluster.local.",
            "api.example.test.svc.cluster.local.",
            "api.example.test.cluster.local.",
            "api.example.test.",
        ],
        "kubernetes.default": [
            "kubernetes.default.default.svc.cluster.local.",
            "kubernetes.default.svc.cluster.local.",
        ],
        "api.example.test.": ["api.example.test."],
    }
    for ndots in (5, 2):
        conf = forwarder_resolv_conf(ndots=ndots)
        container.resolv_conf.write_text(conf)  # same inode: the bind mount sees it
        result = container.run("capture", {"upstream": [DNS_IP], "names": names, "quiet_s": 0.05})
        assert isinstance(result, CaptureResult)
        assert result.resolv_conf == conf and result.warnings == () and result.parser == "dnspython"
        by_name = {lookup.name: lookup for lookup in result.lookups}
        assert by_name["api.example.test"].addresses == tuple(sorted([API_A, API_AAAA]))
        assert by_name["kubernetes.default"].addresses == (KUBERNETES_IP,)
        for lookup in result.lookups:
            want = explicit[lookup.name]
            if ndots == 2 and lookup.name == "api.example.test":
                want = ["api.example.test."]
            qnames = expected_qnames(libc, conf, lookup.name, want)
            assert lookup.qnames == tuple(qnames), (libc, ndots, lookup)
            pairs = [(q.qname, q.qtype, q.proto) for q in lookup.queries]
            # both libcs ask A and AAAA for every candidate, over UDP, nothing else
            assert sorted(pairs) == sorted((n, t, "udp") for n in qnames for t in ("A", "AAAA")), pairs
        print(f"{libc} ndots:{ndots}: " + json.dumps({lk.name: len(lk.queries) for lk in result.lookups}))


def test_lookup_burst_and_query_through_the_image_libc(container: Container) -> None:
    container.resolv_conf.write_text(pod_resolv_conf())
    lookup = container.run(
        "lookup", {"names": ["kubernetes.default", "api.example.test"], "count": 40, "concurrency": 2}
    )
    assert isinstance(lookup, LookupResult)
    assert lookup.totals.ok == 40
    assert lookup.addresses == ((KUBERNETES_IP,), tuple(sorted([API_A, API_AAAA])))
    burst = container.run("burst", {"names": ["kubernetes.default"], "bursts": 2, "parallel": 4, "interval_s": 0.05})
    assert isinstance(burst, LookupResult) and burst.totals.ok == 8
    for tcp in (False, True):
        query = container.run("query", {"server": DNS_IP, "name": "kubernetes.default.svc.cluster.local", "tcp": tcp})
        assert isinstance(query, QueryResult) and query.replies[0].addresses() == (KUBERNETES_IP,)
