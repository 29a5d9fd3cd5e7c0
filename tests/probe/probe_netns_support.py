"""Helpers for the probe tests: a private network namespace, unbound in it, the payload runner.

Everything stays inside a namespace the tests create (loopback only: no route leaves it), so no
query reaches the machine's own resolver or the outside.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_k8sdns.probe import PAYLOAD_PATH, parse_output, probe_command
from pytest_k8sdns.probe.results import ProbeResult

UNBOUND = "/usr/sbin/unbound"
DNS_IP = "127.0.53.1"  # the "cluster DNS" address, on the namespace's loopback
RECORDER_IP = "127.0.0.1"  # where the in-pod capturing forwarder listens
POD_SEARCH = "default.svc.cluster.local svc.cluster.local cluster.local"
KUBERNETES_IP = "10.96.0.1"  # zone data only: nothing is ever sent to it
SEARCH_ONLY_IP = "10.96.7.7"
API_A = "192.0.2.10"
API_AAAA = "2001:db8::10"
# Names that answer in the test zones; the rest of cluster.local and example.test is NXDOMAIN.
EXISTING = frozenset(
    {"kubernetes.default.svc.cluster.local.", "onlysearch.default.svc.cluster.local.", "api.example.test."}
)
EAI_NONAME = -2


def pod_resolv_conf(nameserver: str = DNS_IP, ndots: int = 5, extra_options: str = "") -> str:
    """A ClusterFirst pod's resolv.conf as kubelet writes it."""
    options = f"ndots:{ndots}" + (f" {extra_options}" if extra_options else "")
    return f"search {POD_SEARCH}\nnameserver {nameserver}\noptions {options}\n"


def forwarder_resolv_conf(ndots: int = 5, extra_options: str = "") -> str:
    """The pod's resolv.conf with its nameserver swapped for the in-pod forwarder, as the suite does."""
    return pod_resolv_conf(RECORDER_IP, ndots, extra_options)


def expected_qnames(libc: str, resolv_conf: str, name: str, explicit: list[str]) -> list[str]:
    """The names `libc` asks, up to the first that exists; checked against the resolver model
    (pytest_k8sdns.dns.resolver.search_candidates) when that module is there."""
    try:
        from pytest_k8sdns.dns.resolver import search_candidates
    except ImportError:
        return explicit
    model = []
    for qname in search_candidates(libc, resolv_conf, name):
        model.append(qname)
        if qname in EXISTING:
            break
    assert model == explicit, f"resolver model for {libc} {model} disagrees with the expected {explicit}"
    return model


UNBOUND_CONF = """\
server:
    interface: {ip}
    port: 53
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    do-daemonize: no
    chroot: ""
    username: ""
    pidfile: ""
    directory: "{dir}"
    logfile: ""
    use-syslog: no
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    module-config: "iterator"
    do-not-query-localhost: no
    # No recursion anywhere: every name outside the zones below is answered NXDOMAIN locally.
    local-zone: "." static
    local-zone: "cluster.local." static
    # the zone's SOA goes into the authority section of its NXDOMAIN answers, as CoreDNS's does
    local-data: "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"
    local-data: "kubernetes.default.svc.cluster.local. 30 IN A {kubernetes}"
    local-data: "_https._tcp.kubernetes.default.svc.cluster.local. 30 IN SRV 0 100 443 {kubernetes_fqdn}"
    local-data: "onlysearch.default.svc.cluster.local. 30 IN A {search_only}"
    local-data-ptr: "{kubernetes} kubernetes.default.svc.cluster.local."
    local-zone: "example.test." static
    local-data: "api.example.test. 300 IN A {api_a}"
    local-data: "api.example.test. 300 IN AAAA {api_aaaa}"
"""

NSSWITCH = "hosts: dns\n"  # only DNS: no /etc/hosts, no systemd-resolved, no mDNS


def need_root_and_ip() -> None:
    if os.geteuid() != 0:
        pytest.skip("probe netns tests need root to create network namespaces (run them as root)")
    if shutil.which("ip") is None:
        pytest.skip("probe netns tests need iproute2's `ip` (apt-get install iproute2)")


def need_unbound() -> None:
    if not os.access(UNBOUND, os.X_OK):
        pytest.skip(f"{UNBOUND} not found: apt-get install unbound")


def old_pythons() -> list[str]:
    """The oldest interpreter the payload must run on (Python 3.8), if this machine has one."""
    found = sorted(glob.glob("/root/.pyenv/versions/3.8*/bin/python3")) + [p for p in [shutil.which("python3.8")] if p]
    return found[:1]


def run(argv: list[str], timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class Netns:
    """A network namespace with loopback only, and its /etc/netns/<name>/ overlay files."""

    name: str

    @property
    def etc(self) -> Path:
        return Path("/etc/netns") / self.name

    def set_resolv_conf(self, text: str) -> None:
        # `ip netns exec` bind-mounts each file of /etc/netns/<name>/ over /etc/ at every exec.
        (self.etc / "resolv.conf").write_text(text)

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


@dataclass
class Unbound:
    ip: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_unbound(
    in_netns: Callable[[list[str]], list[str]], workdir: Path, ready: Callable[[], str | None]
) -> Unbound:
    """Run unbound in the foreground on DNS_IP:53 in a namespace; wait until `ready()` returns
    None (else it returns what it saw). The caller stops it."""
    conf = workdir / "unbound.conf"
    conf.write_text(
        UNBOUND_CONF.format(
            ip=DNS_IP,
            dir=workdir,
            kubernetes_fqdn="kubernetes.default.svc.cluster.local.",
            kubernetes=KUBERNETES_IP,
            search_only=SEARCH_ONLY_IP,
            api_a=API_A,
            api_aaaa=API_AAAA,
        )
    )
    if os.access(UNBOUND + "-checkconf", os.X_OK):
        check = run([UNBOUND + "-checkconf", str(conf)])
        assert check.returncode == 0, f"unbound-checkconf {conf}: {check.stdout}{check.stderr}"
    log = workdir / "unbound.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(in_netns([UNBOUND, "-d", "-c", str(conf)]), stdout=fh, stderr=subprocess.STDOUT)
    server = Unbound(DNS_IP, proc, log)
    deadline = time.monotonic() + 15
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"unbound exited with {proc.returncode}:\n{server.log_tail()}")
            last = ready()
            if last is None:
                return server
            if time.monotonic() > deadline:
                pytest.fail(f"unbound on {DNS_IP}:53 did not answer within 15 s; last: {last}\n{server.log_tail()}")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise


def answered(proc: subprocess.CompletedProcess[str]) -> str | None:
    """None if a `query` probe run got NOERROR, else what it printed."""
    if proc.returncode == 0 and '"rcode":"NOERROR"' in proc.stdout:
        return None
    return (proc.stdout + proc.stderr).strip()[-300:]


@dataclass
class ProbeRunner:
    """Runs the built zipapp inside the namespace with a given resolv.conf and interpreter."""

    netns: Netns
    zipapp: Path
    python: str = sys.executable
    calls: list[list[str]] = field(default_factory=list)

    def raw(
        self,
        command: str,
        args: Mapping[str, Any] | None = None,
        *,
        resolv_conf: str | None = None,
        python: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        self.netns.set_resolv_conf(resolv_conf if resolv_conf is not None else pod_resolv_conf())
        argv = probe_command(command, args, path=str(self.zipapp))
        argv[0] = python or self.python
        self.calls.append(argv)
        return run(self.netns.argv(argv), timeout=timeout)

    def popen(
        self, command: str, args: Mapping[str, Any] | None = None, *, resolv_conf: str | None = None,
        python: str | None = None,
    ) -> subprocess.Popen[str]:
        """The payload started with stdin and stdout as pipes, as a streaming exec runs `monitor`;
        the caller ends it (and must not change the resolv.conf while it runs)."""
        self.netns.set_resolv_conf(resolv_conf if resolv_conf is not None else pod_resolv_conf())
        argv = probe_command(command, args, path=str(self.zipapp))
        argv[0] = python or self.python
        self.calls.append(argv)
        return subprocess.Popen(self.netns.argv(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)

    def run(self, command: str, args: Mapping[str, Any] | None = None, **kw: Any) -> ProbeResult:
        __tracebackhide__ = True
        proc = self.raw(command, args, **kw)
        if proc.returncode != 0:
            pytest.fail(f"probe {command} exited {proc.returncode}: {proc.stdout.strip()}\n{proc.stderr.strip()}")
        return parse_output(command, proc.stdout, where=f"netns {self.netns.name}")


SILENT_IP = "127.0.53.9"  # a nameserver that reads queries and never answers (see silent_nameserver)

_SILENT_SERVER = """\
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    sock.recv(4096)
"""


@contextlib.contextmanager
def silent_nameserver(netns: Netns, ip: str = SILENT_IP) -> Iterator[str]:
    """A UDP socket on ip:53 in the namespace that swallows every query, so the libc times out
    (nothing listening would refuse at once instead). Yields ip; stops the server at the end."""
    argv = netns.argv([sys.executable, "-I", "-c", _SILENT_SERVER, ip])
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:  # closes the pipe at the end
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # "ready" once bound; empty if it died
            assert line.strip() == "ready", f"silent nameserver on {ip}:53 did not start (exit {proc.poll()})"
            yield ip
        finally:
            proc.terminate()
            proc.wait(5)


LOSSY_IP = "127.0.53.8"  # relays to DNS_IP, but drops the first copy of every query (lossy_nameserver)

_LOSSY_RELAY = """\
import select, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
seen = set()
upstreams = {}
print("ready", flush=True)
while True:
    ready, _, _ = select.select([sock, *upstreams], [], [])
    for s in ready:
        if s is sock:
            wire, client = sock.recvfrom(65535)
            if wire not in seen:  # the first copy (same ID, same question) is lost on the way
                seen.add(wire)
                continue
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.connect((sys.argv[2], 53))
            up.send(wire)
            upstreams[up] = client
        else:
            sock.sendto(s.recv(65535), upstreams.pop(s))
            s.close()
"""


@contextlib.contextmanager
def lossy_nameserver(netns: Netns, ip: str = LOSSY_IP, upstream: str = DNS_IP) -> Iterator[str]:
    """A relay on ip:53 to `upstream` that drops the first copy of each query (the same bytes: ID
    and question) and relays the later ones: every query is lost once. Yields ip."""
    argv = netns.argv([sys.executable, "-I", "-c", _LOSSY_RELAY, ip, upstream])
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", f"lossy relay on {ip}:53 did not start (exit {proc.poll()})"
            yield ip
        finally:
            proc.terminate()
            proc.wait(5)


ANSWERING_IP = "127.0.53.2"  # a nameserver that answers every query with one A record (answering_nameserver)
ANSWER_A = "192.0.2.53"

_ANSWERING_SERVER = """\
import socket, sys, threading, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
delay = float(sys.argv[2])
answer = bytes(int(part) for part in sys.argv[3].split("."))
missing = set(filter(None, sys.argv[4].split(",")))  # NXDOMAIN until a line on stdin names them
lock = threading.Lock()

def qname(data):
    labels, end = [], 12
    while data[end]:
        labels.append(data[end + 1 : end + 1 + data[end]].decode("ascii", "replace").lower())
        end += data[end] + 1
    return ".".join(labels) or ".", end + 5  # the root label, qtype, qclass

def reply(data, source, name, end):
    if delay:
        time.sleep(delay)
    if name in missing:
        header = data[:2] + b"\\x81\\x83" + b"\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00"  # NXDOMAIN, no answer
        sock.sendto(header + data[12:end], source)
        return
    header = data[:2] + b"\\x81\\x80" + b"\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x00"  # QR RD RA, NOERROR, 1 answer
    record = b"\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x05\\x00\\x04" + answer  # the qname, A IN, TTL 5
    sock.sendto(header + data[12:end] + record, source)

def create():
    for line in sys.stdin:
        with lock:
            missing.discard(line.strip())
            print("created", line.strip(), flush=True)

print("ready", flush=True)
threading.Thread(target=create, daemon=True).start()
while True:
    data, source = sock.recvfrom(4096)
    name, end = qname(data)
    with lock:
        print(source[1], name, flush=True)
    threading.Thread(target=reply, args=(data, source, name, end), daemon=True).start()
"""


@dataclass
class AnsweringNameserver:
    ip: str
    ports: list[int]  # the source port of each query received, in order
    qnames: list[str] = field(default_factory=list)  # the name of each, lower case without the trailing dot
    proc: subprocess.Popen[str] | None = None
    created: queue.Queue[str] = field(default_factory=queue.Queue)

    def create(self, name: str, timeout: float = 5) -> None:
        """Answer `name` (one of those it started missing) from now on; returns once the server has
        switched."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        assert self.created.get(timeout=timeout) == name, f"the nameserver did not create {name}"


@contextlib.contextmanager
def answering_nameserver(
    netns: Netns, ip: str = ANSWERING_IP, delay_s: float = 0.0, missing: Iterable[str] = ()
) -> Iterator[AnsweringNameserver]:
    """A UDP nameserver on ip:53 in the namespace that answers every query NOERROR with one A record
    (ANSWER_A) after delay_s, and records the source port and name of each query. The `missing`
    names (lower case, no trailing dot) answer NXDOMAIN until create() names them."""
    argv = netns.argv([sys.executable, "-I", "-c", _ANSWERING_SERVER, ip, str(delay_s), ANSWER_A, ",".join(missing)])
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", f"answering nameserver on {ip}:53 did not start (exit {proc.poll()})"
            server = AnsweringNameserver(ip, [], proc=proc)
            out = proc.stdout

            def record() -> None:
                for line in out:
                    first, name = line.split()
                    if first == "created":
                        server.created.put(name)
                    else:
                        server.qnames.append(name)
                        server.ports.append(int(first))

            reader = threading.Thread(target=record, daemon=True)
            reader.start()
            yield server
        finally:
            proc.terminate()
            proc.wait(5)


# ---- the locally built probe images ---------------------------------------------------------------

SUBSTRATE = Path(__file__).resolve().parents[2] / "substrate"


def substrate_version(name: str, default: str) -> str:
    """A NAME=value of substrate/versions.env (the suite and the second musl's version)."""
    try:
        for line in (SUBSTRATE / "versions.env").read_text().splitlines():
            if line.startswith(name + "="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return default


MUSL_NEW_VERSION = substrate_version("MUSL_NEW_VERSION", "1.2.5")
#: flavour -> image, as substrate/build-probes.sh tags them; "musl" is the host's musl-dev (1.2.3)
IMAGES = {
    "musl": "k8sdns/probe-musl:py3.11-musl",
    f"musl{MUSL_NEW_VERSION}": f"k8sdns/probe-musl:py3.11-musl{MUSL_NEW_VERSION}",
    "glibc": f"k8sdns/probe-glibc:py3.11-{substrate_version('DEBIAN_SUITE', 'bookworm')}",
}
POD_SECURITY = ["--user", "65534:65534", "--sysctl", "net.ipv4.ip_unprivileged_port_start=0", "--cap-drop", "ALL"]


def need_image(flavour: str) -> str:
    image = IMAGES[flavour]
    if shutil.which("docker") is None:
        pytest.skip(f"docker not installed; probe image {image} cannot run")
    if run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=30).returncode != 0:
        pytest.skip(f"docker daemon not running; probe image {image} cannot run")
    if run(["docker", "image", "inspect", image], timeout=30).returncode != 0:
        pytest.skip(f"probe image {image} not built; run substrate/build-probes.sh")
    return image


@dataclass
class Container:
    name: str
    image: str
    resolv_conf: Path
    pid: str = ""

    def probe(self, command: str, args: dict[str, object], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(["docker", "exec", self.name, *probe_command(command, args)], timeout=timeout)

    def run(self, command: str, args: dict[str, object]) -> ProbeResult:
        __tracebackhide__ = True
        proc = self.probe(command, args)
        if proc.returncode != 0:
            pytest.fail(f"probe {command} in {self.image} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return parse_output(command, proc.stdout, where=f"container {self.name} ({self.image})")

    def in_netns(self, argv: list[str]) -> list[str]:
        """argv run on the host's filesystem inside the container's network namespace."""
        return ["nsenter", "-t", self.pid, "-n", *argv]


@contextlib.contextmanager
def probe_container(flavour: str, zipapp: Path, resolv_conf: Path) -> Iterator[Container]:
    """A long-lived probe container of that image, loopback only, as nobody, with the zipapp and
    resolv_conf mounted read-only; removed at the end."""
    image = need_image(flavour)
    need_root_and_ip()
    if shutil.which("nsenter") is None:
        pytest.skip("nsenter (util-linux) not found; it runs the DNS server in the container's network namespace")
    resolv_conf.chmod(0o644)
    name = unique_name(f"k8sdns-probe-{flavour}".replace(".", "-"))
    argv = [
        "docker", "run", "-d", "--rm", "--name", name, "--network", "none", *POD_SECURITY,
        "-v", f"{zipapp}:{PAYLOAD_PATH}:ro", "-v", f"{resolv_conf}:/etc/resolv.conf:ro",
        image, "python3", "-c", "import time; time.sleep(900)",
    ]  # fmt: skip
    started = run(argv, timeout=120)
    assert started.returncode == 0, f"{' '.join(argv)}: {started.stderr}"
    try:
        pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip()
        assert pid.isdigit() and pid != "0", f"container {name} is not running: {pid!r}"
        yield Container(name, image, resolv_conf, pid)
    finally:
        run(["docker", "rm", "-f", name], timeout=60)
