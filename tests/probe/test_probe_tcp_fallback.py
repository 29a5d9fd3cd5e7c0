"""Check 18's client half on a real DNS server, without a cluster: a name with 40 A records, whose
answer over UDP without EDNS is truncated (TC), looked up by each probe image's getaddrinfo.

The server is this machine's CoreDNS (the cluster DNS the substrate builds), serving a file zone in
the probe container's network namespace (nsenter -n), logging each query with its transport.
CoreDNS truncates as it does in a cluster: it keeps the records that fit in 512 bytes and sets TC.
glibc and musl 1.2.4+ ask again over TCP and get all 40; musl 1.2.3 keeps the UDP part.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from probe_netns_support import (
    DNS_IP,
    IMAGES,
    MUSL_NEW_VERSION,
    Container,
    answered,
    pod_resolv_conf,
    probe_container,
)

from pytest_k8sdns.dns import bigname
from pytest_k8sdns.probe import LookupResult, ProbeInfo, QueryResult

FQDN = "big.default.svc.cluster.local."
ADDRESSES = bigname.addresses()  # the 40 TEST-NET-1 addresses of check 18
CACHE = os.environ.get("K8SDNS_CACHE", "/var/cache/pytest-k8sdns")
# CoreDNS's log plugin: `... "A IN big.default.svc.cluster.local. udp 47 false 512" NOERROR ...`
LOGGED = re.compile(r'"(?P<qtype>\S+) IN (?P<qname>\S+) (?P<proto>udp|tcp) ')

ZONE = """\
$ORIGIN cluster.local.
@ 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5
@ 5 IN NS ns.dns.cluster.local.
ns.dns 5 IN A {dns_ip}
{records}
"""

COREFILE = """\
cluster.local:53 {{
    bind {dns_ip}
    file {zone}
    log
}}
"""


def coredns_binary() -> str:
    found = sorted(glob.glob(f"{CACHE}/bin/coredns-*/coredns"))
    if not found:
        pytest.skip(f"no CoreDNS binary under {CACHE}/bin/coredns-*/: run `bash substrate/build`")
    return found[-1]


@dataclass
class CoreDNS:
    proc: subprocess.Popen[bytes]
    log: Path

    def queries(self, since: int = 0) -> list[tuple[str, str, str]]:
        """(qname, qtype, proto) of each query logged after byte offset `since`."""
        text = self.log.read_bytes()[since:].decode(errors="replace")
        return [(m["qname"], m["qtype"], m["proto"]) for m in LOGGED.finditer(text)]

    def offset(self) -> int:
        return self.log.stat().st_size


@dataclass
class Box:
    container: Container
    server: CoreDNS


@pytest.fixture(params=list(IMAGES))
def box(request: pytest.FixtureRequest, probe_zipapp: Path, tmp_path: Path) -> Iterator[Box]:
    """A probe container of each image, CoreDNS on DNS_IP:53 in its network namespace serving the
    40-address name; the pod's resolv.conf points at it."""
    binary = coredns_binary()
    records = "\n".join(f"big.default.svc 5 IN A {ip}" for ip in ADDRESSES)
    zone = tmp_path / "db.cluster.local"
    zone.write_text(ZONE.format(dns_ip=DNS_IP, records=records))
    corefile = tmp_path / "Corefile"
    corefile.write_text(COREFILE.format(dns_ip=DNS_IP, zone=zone))
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(pod_resolv_conf())
    with probe_container(request.param, probe_zipapp, resolv) as container:
        log = tmp_path / "coredns.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(container.in_netns([binary, "-conf", str(corefile)]), stdout=fh,
                                    stderr=subprocess.STDOUT, cwd=tmp_path)
        server = CoreDNS(proc, log)
        try:
            deadline = time.monotonic() + 20
            while (last := answered(container.probe("query", {"server": DNS_IP, "name": FQDN, "tcp": True,
                                                              "timeout": 0.5}))) is not None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"CoreDNS on {DNS_IP}:53 did not answer {FQDN} (exit {proc.poll()}): {last}\n"
                                f"{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
            yield Box(container, server)
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def a_records(reply_of: QueryResult) -> set[str]:
    return {r.rdata for r in reply_of.replies[0].answer if r.rdtype == "A"}


def test_getaddrinfo_of_a_truncated_answer(box: Box) -> None:
    """The server's part first (TC over UDP with what fits, all 40 over TCP), then getaddrinfo:
    all 40 (and a TCP query) where the libc falls back to TCP, else only the UDP part and no TCP."""
    c = box.container
    udp = c.run("query", {"server": DNS_IP, "name": FQDN, "rdtype": "A", "tcp": False})
    tcp = c.run("query", {"server": DNS_IP, "name": FQDN, "rdtype": "A", "tcp": True})
    assert isinstance(udp, QueryResult) and isinstance(tcp, QueryResult)
    assert "TC" in udp.replies[0].flags and 0 < len(a_records(udp)) < len(ADDRESSES), udp.replies[0]
    assert a_records(tcp) == set(ADDRESSES)

    info = c.run("info", {})
    assert isinstance(info, ProbeInfo)
    falls_back = bigname.falls_back_to_tcp(info.libc, info.libc_version)
    assert falls_back is not None, f"{c.image} does not say its musl version: {info}"
    if c.image == IMAGES[f"musl{MUSL_NEW_VERSION}"]:
        assert falls_back and info.libc_version == MUSL_NEW_VERSION

    since = box.server.offset()
    found = c.run("lookup", {"names": [FQDN], "count": 1, "family": "inet"})
    assert isinstance(found, LookupResult)
    got = set(found.addresses[0] or ())
    time.sleep(0.3)  # the log plugin writes after the reply
    asked = [(proto, qtype) for qname, qtype, proto in box.server.queries(since) if qname == FQDN]
    print(f"{c.image} ({info.libc} {info.libc_version}): getaddrinfo got {len(got)} of {len(ADDRESSES)}; "
          f"UDP answer held {len(a_records(udp))}; queries {asked}")
    assert ("udp", "A") in asked, asked
    if falls_back:
        assert got == set(ADDRESSES), f"{info.libc} {info.libc_version} got {len(got)} of {len(ADDRESSES)}"
        assert ("tcp", "A") in asked, f"{info.libc} {info.libc_version} never asked over TCP: {asked}"
    else:
        assert got == a_records(udp), f"{info.libc} {info.libc_version}: {sorted(got)}"
        assert all(proto == "udp" for proto, _ in asked), asked
