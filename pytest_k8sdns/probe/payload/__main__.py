"""Dispatch `<command> ['<json args>']` to its module; print exactly one JSON document.

`monitor` and `serve` stream: their earlier lines come first, and the document printed here is
their last line (event "end"). On failure the document is {"command", "probe_version", "error"}
and the exit code 2, with the traceback on stderr. The probe reads no file but /etc/resolv.conf,
and sends DNS traffic only to the servers named in its arguments (monitor's socket client: by
default the first nameserver there) and through the libc's own resolver.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import TYPE_CHECKING, Any

from ..protocol import PROBE_VERSION
from .capture import cmd_capture
from .common import ArgError, emit
from .http import cmd_http
from .info import cmd_info
from .load import cmd_load
from .lookup import cmd_burst, cmd_lookup
from .monitor import cmd_monitor
from .query import cmd_query
from .serve import cmd_serve

if TYPE_CHECKING:  # an alias only for annotations: subscripted builtins are not evaluated on Python 3.8 then
    from collections.abc import Callable

    Command = Callable[[dict[str, Any]], dict[str, Any]]

# One handler per protocol.COMMANDS entry, in its order (tests/probe checks it).
HANDLERS: dict[str, Command] = {
    "info": cmd_info,
    "lookup": cmd_lookup,
    "burst": cmd_burst,
    "query": cmd_query,
    "capture": cmd_capture,
    "http": cmd_http,
    "monitor": cmd_monitor,
    "serve": cmd_serve,
    "load": cmd_load,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    try:
        if command not in HANDLERS:
            raise ArgError("unknown command {!r}; valid: {}".format(command, ", ".join(sorted(HANDLERS))))
        if len(argv) > 2:
            raise ArgError(f"expected <command> ['<json args>'], got {len(argv)} arguments")
        try:
            args = json.loads(argv[1]) if len(argv) == 2 else {}
        except ValueError as exc:
            raise ArgError(f"arguments are not JSON: {exc}") from None
        if not isinstance(args, dict):
            raise ArgError("arguments must be a JSON object")
        doc: dict[str, Any] = {"command": command, "probe_version": PROBE_VERSION}
        doc.update(HANDLERS[command](args))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        emit({"command": command, "probe_version": PROBE_VERSION, "error": f"{type(exc).__name__}: {exc}"})
        return 2
    emit(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
