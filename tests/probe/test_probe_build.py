"""The zipapp build and the argv helpers (no root needed)."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import dns
import pytest

from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.probe import (
    PAYLOAD_PATH,
    build_zipapp,
    install_command,
    install_input,
    payload_sha256,
    probe_command,
    protocol,
)
from pytest_k8sdns.probe import build as build_module
from pytest_k8sdns.probe.payload.__main__ import HANDLERS

SOURCES = build_module.payload_sources()  # zipapp member -> source: protocol.py and payload/*.py


def test_zipapp_is_stored_sorted_and_deterministic() -> None:
    first = build_zipapp()
    build_zipapp.cache_clear()
    assert build_zipapp() == first
    assert build_zipapp() is build_zipapp()  # cached in-process
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        assert {info.compress_type for info in infos} == {zipfile.ZIP_STORED}
        assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
        # the payload package and protocol.py as they are in the source tree, under their own name
        assert {n for n in names if n.startswith("k8sdns_probe/payload/")} == {
            n for n in SOURCES if n != "k8sdns_probe/protocol.py"
        }
        assert "k8sdns_probe/payload/__main__.py" in SOURCES and "k8sdns_probe/payload/capture.py" in SOURCES
        for name, source in SOURCES.items():
            assert zf.read(name) == source.read_bytes(), name
        assert b"k8sdns_probe.payload.__main__ import main" in zf.read("__main__.py")
        dns_root = Path(dns.__file__).parent
        expected = sorted(
            "dns/" + p.relative_to(dns_root).as_posix() for p in dns_root.rglob("*.py") if "__pycache__" not in p.parts
        )
        assert [n for n in names if n.startswith("dns/")] == expected
        assert [n for n in names if not n.startswith("dns/")] == sorted(
            ["__main__.py", "k8sdns_probe/__init__.py", *SOURCES]
        )
        assert "dns/query.py" in names and "dns/message.py" in names
        assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]


def test_install_command_writes_the_payload_with_python_alone(tmp_path: Path) -> None:
    argv = install_command()
    assert argv[0] == "python3" and argv[-2] == "-c" and PAYLOAD_PATH in argv[-1]
    # The same script, pointed at a scratch directory instead of /k8sdns.
    script = argv[-1].replace("/k8sdns", str(tmp_path / "k8sdns"))
    proc = subprocess.run(
        [sys.executable, *argv[1:-1], script], input=install_input(), capture_output=True, check=True, timeout=60
    )
    written = (tmp_path / "k8sdns" / "probe.pyz").read_bytes()
    assert written == build_zipapp()
    assert proc.stdout.decode().strip() == payload_sha256() == hashlib.sha256(written).hexdigest()
    assert base64.b64decode(install_input()) == written


def test_probe_command_shape() -> None:
    argv = probe_command("lookup", {"names": ["a"], "count": 2})
    assert argv[:4] == ["python3", "-I", "-S", PAYLOAD_PATH]
    assert argv[4] == "lookup" and json.loads(argv[5]) == {"names": ["a"], "count": 2}
    assert probe_command("info")[-1] == "{}"
    with pytest.raises(ConfigError, match="unknown probe command 'dig'; valid commands: info, lookup"):
        probe_command("dig")


def test_payload_source_is_python_3_8_and_stdlib_only() -> None:
    sources = {name: path.read_text() for name, path in SOURCES.items()}
    imported: set[str] = set()
    for name, source in sources.items():
        tree = ast.parse(source, filename=name, feature_version=(3, 8))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom):  # relative: only within the zipapp's package
                assert (node.module or "").split(".")[0] in {"", "protocol", *(p.stem for p in SOURCES.values())}, name
    assert imported - {"__future__"} <= set(sys.stdlib_module_names) | {"dns"}, imported
    # It reads files through one reader: /etc/resolv.conf and the image's libc file.
    everything = "".join(sources.values())
    assert everything.count("open(") == 1 and 'RESOLV_CONF = "/etc/resolv.conf"' in everything


def test_one_handler_and_one_schema_per_protocol_command() -> None:
    from pytest_k8sdns.probe import COMMANDS, SCHEMAS

    assert COMMANDS is protocol.COMMANDS
    assert tuple(HANDLERS) == tuple(SCHEMAS) == protocol.COMMANDS
    from pytest_k8sdns.probe import MONITOR_SCHEMAS

    assert tuple(MONITOR_SCHEMAS) == protocol.MONITOR_EVENTS and MONITOR_SCHEMAS["end"] is SCHEMAS["monitor"]


def test_zipapp_runs_isolated_from_site_packages(tmp_path: Path) -> None:
    path = tmp_path / "probe.pyz"
    path.write_bytes(build_zipapp())
    argv = probe_command("info", path=str(path))
    proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=60, check=True)
    doc = json.loads(proc.stdout)
    assert doc["command"] == "info" and doc["dnspython"] == dns.version.version
    bad = subprocess.run([sys.executable, "-I", "-S", str(path), "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"].startswith("ArgError: unknown command 'nope'")
    assert "Traceback" in bad.stderr
