"""`info`: the interpreter, libc, hostname and /etc/resolv.conf of the pod the probe runs in."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from .common import read_file, read_resolv_conf


def detect_libc() -> tuple[str, str | None, str]:
    """(libc, version, evidence). glibc answers confstr; musl does not, so look for its marks."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        text = None
    if text and text.startswith("glibc"):
        return "glibc", text.split()[-1], "confstr"
    import glob
    import platform

    loaders = sorted(glob.glob("/lib/ld-musl-*.so.1"))
    if loaders:
        return "musl", _musl_version(loaders[0]), loaders[0]
    baked = _baked_libc()
    if baked is not None:
        return baked[0], baked[1], LIBC_FILE
    build = [getattr(sys.implementation, "_multiarch", "") or ""]
    try:
        import sysconfig

        for var in ("MULTIARCH", "HOST_GNU_TYPE", "CC"):
            build.append(str(sysconfig.get_config_var(var) or ""))
    except Exception:  # a stripped static build may lack its _sysconfigdata module
        pass
    marks = [part for part in build if "musl" in part]
    if marks:
        return "musl", None, "build: " + marks[0]
    try:
        name, version = platform.libc_ver()
    except Exception:
        name, version = "", ""
    if name == "glibc":
        return "glibc", version or None, "platform.libc_ver"
    if sys.platform.startswith("linux"):
        return "musl", None, "no glibc"
    return "unknown", None, "not linux"


#: written by substrate/build-probes.sh into each musl image: "musl 1.2.3" on its first line. A
#: static interpreter has no dynamic loader to ask, and musl has no call that says its version.
LIBC_FILE = "/etc/k8sdns-libc"


def _baked_libc(path: str = LIBC_FILE) -> tuple[str, str | None] | None:
    """(libc, version) from the image's libc file when it names musl; None without one."""
    text, _ = read_file(path)
    words = (text or "").split("\n", 1)[0].split()
    if not words or words[0] != "musl":
        return None
    version = words[1] if len(words) > 1 and words[1][:1].isdigit() else None
    return "musl", version


def _musl_version(loader: str) -> str | None:
    """musl's dynamic loader, run without a program, prints its version ("Version 1.2.3") and exits."""
    import re
    import subprocess

    try:
        out = subprocess.run([loader], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"^Version (\S+)", out.stdout + out.stderr, re.M)
    return found.group(1) if found else None


def _dnspython_version() -> str | None:
    # Only dns.version: it imports even where the rest of the bundled dnspython does not.
    try:
        import dns.version

        return dns.version.version
    except Exception:
        return None


def cmd_info(args: dict[str, Any]) -> dict[str, Any]:
    import platform

    libc, libc_version, evidence = detect_libc()
    text, error = read_resolv_conf()
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "machine": platform.machine(),
        "libc": libc,
        "libc_version": libc_version,
        "libc_evidence": evidence,
        "hostname": socket.gethostname(),
        "resolv_conf": text,
        "resolv_conf_error": error,
        "pid": os.getpid(),
        "dnspython": _dnspython_version(),
    }
