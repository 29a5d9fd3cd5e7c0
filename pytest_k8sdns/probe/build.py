"""Package the probe payload and the host's dnspython into one zipapp, and the argv to run it.

In the zipapp the payload package and protocol.py sit under ZIP_PACKAGE beside `dns/`, and a
short `__main__.py` runs the payload's dispatch. The zipapp is STORED (uncompressed): a static
musl CPython may have no zlib, and zipimport reads stored members without it. It is built
deterministically, so its digest identifies the payload.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_k8sdns.errors import ConfigError
from pytest_k8sdns.probe.protocol import COMMANDS

PAYLOAD_DIR = "/k8sdns"
PAYLOAD_PATH = f"{PAYLOAD_DIR}/probe.pyz"
# -I: ignore PYTHON* variables and user site; -S: no site-packages. The probe then imports only
# the stdlib and what its zipapp carries, whatever else the image has installed.
PYTHON_ARGV = ("python3", "-I", "-S")

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_HERE = Path(__file__).parent
# A name of its own in the pod: the zipapp holds no pytest_k8sdns, only the probe.
ZIP_PACKAGE = "k8sdns_probe"
_ZIP_MAIN = f"import sys\nfrom {ZIP_PACKAGE}.payload.__main__ import main\nsys.exit(main())\n".encode()
_ZIP_INIT = b'"""The pytest-k8sdns probe: protocol.py and the payload package (see __main__.py)."""\n'


def payload_sources() -> dict[str, Path]:
    """Zipapp member name -> the source file it is a copy of: protocol.py and payload/*.py."""
    sources = {f"{ZIP_PACKAGE}/protocol.py": _HERE / "protocol.py"}
    for path in sorted((_HERE / "payload").glob("*.py")):
        sources[f"{ZIP_PACKAGE}/payload/{path.name}"] = path
    return sources


def _dns_package_dir() -> Path:
    try:
        import dns
    except ImportError as exc:
        raise ConfigError(
            "dnspython is not installed on the host; the probe zipapp bundles it: pip install dnspython"
        ) from exc
    return Path(dns.__file__).resolve().parent


def _members() -> list[tuple[str, bytes]]:
    members = [("__main__.py", _ZIP_MAIN), (f"{ZIP_PACKAGE}/__init__.py", _ZIP_INIT)]
    members += [(name, path.read_bytes()) for name, path in payload_sources().items()]
    root = _dns_package_dir()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        members.append(("dns/" + rel.as_posix(), path.read_bytes()))
    return sorted(members)


@functools.cache
def build_zipapp() -> bytes:
    """The probe zipapp: the payload, protocol.py and the host's `dns` package, .py files only."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in _members():
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the building host is
            zf.writestr(info, data)
    return buf.getvalue()


def payload_sha256() -> str:
    """Hex SHA-256 of build_zipapp(); install_command() prints the same digest of what it wrote."""
    return hashlib.sha256(build_zipapp()).hexdigest()


def install_input() -> bytes:
    """What to feed install_command() on stdin: the zipapp in base64."""
    return base64.b64encode(build_zipapp())


def install_command() -> list[str]:
    """argv that writes a base64 zipapp, read as ONE line from stdin (exec over a websocket cannot
    signal end-of-file), to PAYLOAD_PATH with python3 alone (no shell),
    then prints the SHA-256 of the bytes written (hashlib falls back to its built-in sha256 when
    a static build lacks _hashlib)."""
    script = (
        "import sys,os,base64,hashlib;"
        f"os.makedirs({PAYLOAD_DIR!r},exist_ok=True);"
        "d=base64.b64decode(sys.stdin.buffer.readline());"
        f"f=open({PAYLOAD_PATH!r},'wb');f.write(d);f.close();"
        "print(hashlib.sha256(d).hexdigest())"
    )
    return [PYTHON_ARGV[0], "-I", "-S", "-c", script]


def probe_command(cmd: str, args: Mapping[str, Any] | None = None, *, path: str = PAYLOAD_PATH) -> list[str]:
    """argv that runs one probe command with its JSON arguments."""
    if cmd not in COMMANDS:
        raise ConfigError(f"unknown probe command {cmd!r}; valid commands: {', '.join(COMMANDS)}")
    return [*PYTHON_ARGV, path, cmd, json.dumps(dict(args or {}), separators=(",", ":"), sort_keys=True)]
