"""The payload in the locally built probe images: musl's (and glibc's) own resolver, for real.

Each container runs with --network none (loopback only), as nobody with the pod's sysctl
net.ipv4.ip_unprivileged_port_start=0, the zipapp mounted read-only at /k8sdns/probe.pyz. For
`capture`, unbound runs on the host's filesystem inside the container's network namespace
(nsenter -n), so the image needs nothing but its Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from probe_netns_support import (
    API_A,
    API_AAAA,
    DNS_IP,
    IMAGES,
    KUBERNETES_IP,
    MUSL_NEW_VERSION,
    POD_SECURITY,
    Container,
    Unbound,
    answered,
    expected_qnames,
    forwarder_resolv_conf,
    need_image,
    need_unbound,
    pod_resolv_conf,
    probe_container,
    run,
    start_unbound,
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

LIBC_FILE = "/etc/k8sdns-libc"


def host_musl_version() -> str | None:
    """The upstream version of the host's musl-dev, which the plain musl image is built with."""
    proc = run(["dpkg-query", "-W", "-f", "${Version}", "musl-dev"])
    if proc.returncode != 0 or not proc.stdout:
        return None
    return proc.stdout.split(":")[-1].rsplit("-", 1)[0]


def image_label(image: str, label: str) -> str:
    return run(["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{label}"}}}}', image]).stdout.strip()


def test_the_baked_libc_file_is_read(tmp_path: Path) -> None:
    """info's reading of /etc/k8sdns-libc (no image needed): the first line, musl only."""
    from pytest_k8sdns.probe.payload.info import LIBC_FILE as PAYLOAD_LIBC_FILE
    from pytest_k8sdns.probe.payload.info import _baked_libc

    assert PAYLOAD_LIBC_FILE == LIBC_FILE
    path = tmp_path / "k8sdns-libc"
    assert _baked_libc(str(path)) is None
    path.write_text("musl 1.2.5\nDebian musl-dev 1.2.5-3.1~deb13u1 (trixie), linked statically\n")
    assert _baked_libc(str(path)) == ("musl", "1.2.5")
    path.write_text("musl\n")
    assert _baked_libc(str(path)) == ("musl", None)
    for other in ("glibc 2.36\n", "", "\n"):
        path.write_text(other)
        assert _baked_libc(str(path)) is None, other


@pytest.mark.parametrize("flavour", list(IMAGES))
def test_info_in_the_probe_image(flavour: str, probe_zipapp: Path) -> None:
    """Each image's `info` names its libc and version: glibc by confstr, a static musl image by the
    /etc/k8sdns-libc its build wrote (it has no dynamic loader to ask)."""
    image = need_image(flavour)
    argv = [
        "docker", "run", "--rm", "--network", "none", *POD_SECURITY,
        "-v", f"{probe_zipapp}:{PAYLOAD_PATH}:ro", image, *probe_command("info"),
    ]  # fmt: skip
    proc = run(argv, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stdout}{proc.stderr}"
    info = parse_output("info", proc.stdout, where=f"image {image}")
    assert isinstance(info, ProbeInfo)
    libc = "glibc" if flavour == "glibc" else "musl"
    assert info.libc == libc, info
    assert info.python.startswith("3.11") and info.dnspython
    assert info.resolv_conf is not None
    if libc == "glibc":
        assert info.libc_evidence == "confstr" and info.libc_version and info.libc_version[0].isdigit(), info
    else:
        want = MUSL_NEW_VERSION if flavour != "musl" else (host_musl_version() or info.libc_version)
        assert (info.libc_version, info.libc_evidence) == (want, LIBC_FILE), info
        assert image_label(image, "org.k8sdns.libc") == f"musl {want}"
    print(f"{image}: {info.libc} {info.libc_version} ({info.libc_evidence})")


@pytest.fixture(params=["musl", "glibc"])
def container(request: pytest.FixtureRequest, probe_zipapp: Path, tmp_path: Path) -> Iterator[Container]:
    """A long-lived probe container, with unbound on DNS_IP:53 inside its network namespace."""
    need_image(request.param)
    need_unbound()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(forwarder_resolv_conf())
    with probe_container(request.param, probe_zipapp, resolv) as box:
        server: Unbound | None = None
        try:
            server = start_unbound(
                box.in_netns,
                tmp_path,
                lambda: answered(box.probe("query", {"server": DNS_IP, "name": "api.example.test", "timeout": 0.5})),
            )
            yield box
        finally:
            if server is not None:
                server.stop()


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
