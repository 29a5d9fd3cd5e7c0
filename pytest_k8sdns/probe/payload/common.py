"""What every probe command shares: argument checking, the one file it reads, dnspython, the clock,
and the writing of its JSON lines."""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from collections.abc import Collection, Mapping
from typing import Any, cast

from ..protocol import MAX_NAMES

RESOLV_CONF = "/etc/resolv.conf"

mono = time.monotonic_ns


class ArgError(Exception):
    """Bad or missing arguments: the message says which one and what is allowed."""


class ProbeFailure(Exception):
    """The probe could not do its work (port in use, dnspython unusable): a one-line reason."""


def arg(
    args: dict[str, Any],
    key: str,
    kind: type,
    default: Any = None,
    required: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    choices: Collection[str] | None = None,
) -> Any:
    """One argument, checked: kind is int, float, bool, str or list (of str)."""
    if key not in args or args[key] is None:
        if required:
            raise ArgError(f"missing argument {key!r}")
        return default
    value: Any = args[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ArgError(f"argument {key!r} must be {kind.__name__}, got {value!r}")
    value = cast(Any, value)  # checked above; isinstance against a variable type narrows to object
    if kind is list:
        if not value or not all(isinstance(v, str) and v for v in value):
            raise ArgError(f"argument {key!r} must be a non-empty list of non-empty strings")
        if len(value) > MAX_NAMES:
            raise ArgError(f"argument {key!r} has {len(value)} entries; at most {MAX_NAMES}")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ArgError(f"argument {key!r}={value!r} is outside [{lo}, {hi}]")
    if choices is not None and value not in choices:
        raise ArgError("argument {!r}={!r}; valid: {}".format(key, value, ", ".join(sorted(choices))))
    return value


def ip_arg(args: dict[str, Any], key: str, default: str | None = None, required: bool = False) -> Any:
    value = arg(args, key, str, default, required)
    if value is not None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ArgError(f"argument {key!r}={value!r} is not an IP address") from None
    return value


def emit(doc: dict[str, Any]) -> None:
    """Write one JSON document as one line and flush it: the host may be reading as it comes."""
    sys.stdout.write(json.dumps(doc, separators=(",", ":"), allow_nan=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


def key_of(table: Mapping[str, int], value: int) -> str:
    """The protocol name of a socket constant (FAMILIES, SOCKTYPES)."""
    for key, val in table.items():
        if val == value:
            return key
    return str(value)


def read_file(path: str) -> tuple[str | None, str | None]:
    """(text, error) of a small file: the probe reads only /etc/resolv.conf and the image's libc
    file (info), both through here."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace"), None
    except OSError as exc:
        return None, f"{path}: {exc.strerror or exc}"


def read_resolv_conf() -> tuple[str | None, str | None]:
    """(text, error): the pod's resolver configuration."""
    return read_file(RESOLV_CONF)


def dnspython() -> Any:
    """The bundled `dns` package with the modules the probe uses, or ProbeFailure naming why not
    (a dnspython newer than the pod's interpreter fails at import with a SyntaxError or TypeError)."""
    try:
        import dns.exception
        import dns.flags
        import dns.message
        import dns.query
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        import dns.reversename
    except (ImportError, SyntaxError, TypeError, AttributeError) as exc:
        raise ProbeFailure(
            f"the dnspython bundled in the probe does not import on Python {sys.version.split()[0]} "
            f"({type(exc).__name__}: {exc}); "
            "use a probe image with a newer Python"
        ) from exc
    return dns
