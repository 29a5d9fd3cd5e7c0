"""The JSON Schema of each probe command's output document, built from protocol.py.

Lookup and monitor rows are left as plain arrays here: schema.py checks them with a loop, because
there can be hundreds of thousands and jsonschema would take seconds per run. `monitor` prints
several lines; SCHEMAS holds its last (event "end"), MONITOR_SCHEMAS each kind by its event.
"""

from __future__ import annotations

from typing import Any

from pytest_k8sdns.probe.protocol import (
    BURST_COLUMNS,
    CAPTURE_COLUMNS,
    CLIENTS,
    FAMILIES,
    LIBCS,
    LOAD_BUCKETS_NS,
    LOAD_QTYPES,
    LOAD_STOPS,
    LOOKUP_COLUMNS,
    MAX_DURATION_S,
    MAX_MONITOR_QPS,
    MAX_NAMES,
    MAX_STOP_RULES,
    MONITOR_COLUMNS,
    MONITOR_STOPS,
    PARSERS,
    PROBE_VERSION,
    PROTOS,
    RDATA_FIELDS,
    RECORD_KEYS,
    SECTIONS,
    SERVE_OUTCOMES,
    SERVE_STOPS,
    SOCKTYPES,
    STOP_REASONS,
)

_INT = {"type": "integer"}
_NONNEG = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_NULL_STR = {"type": ["string", "null"]}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_NAMES = {"type": "array", "items": _STR, "minItems": 1}
# error_code (as text: JSON keys are strings) -> the first message seen with it
_ERRORS = {"type": "object", "additionalProperties": _STR, "propertyNames": {"pattern": "^-?[0-9]+$"}}
# Why a libc run ended, and which of its stop_rules argument (by index) tripped: one exactly when
# it ended on "verdict".
_STOP = {
    "stopped": {"enum": list(STOP_REASONS)},
    "stop_rule": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_STOP_RULES - 1},
}
_STOP_RULE_IFF_VERDICT = {
    "if": {"properties": {"stopped": {"const": "verdict"}}},
    "then": {"properties": {"stop_rule": {"type": "integer"}}},
    "else": {"properties": {"stop_rule": {"type": "null"}}},
}


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(key for key in properties if key not in optional),
    }


def _line(properties: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_object(properties)}


def _doc(command: str, properties: dict[str, Any]) -> dict[str, Any]:
    return _line({"command": {"const": command}, "probe_version": {"const": PROBE_VERSION}, **properties})


_LIBC_RUN = {
    "names": _NAMES,
    "family": {"enum": list(FAMILIES)},
    "socktype": {"enum": list(SOCKTYPES)},
    "lookups": {"type": "array"},  # integer rows, checked by schema.py (see module docstring)
    "in_flight": {"type": "array"},  # lookups still running when a stop rule ended the run, likewise
    "addresses": {"type": "array", "items": {"anyOf": [{"type": "null"}, _STRS]}},
    "errors": _ERRORS,
    "totals": _object(
        {
            "lookups": _NONNEG,
            "ok": _NONNEG,
            "failed": _NONNEG,
            "elapsed_ns": _NONNEG,
            "rate_per_s": {"type": "number", "minimum": 0},
        }
    ),
}

# The rdata fields that are numbers or lists of character strings; the rest are names.
_FIELD_SCHEMAS = {
    **dict.fromkeys(("serial", "refresh", "retry", "expire", "minimum", "priority", "weight", "preference"),
                    _NONNEG),
    "port": {"type": "integer", "minimum": 0, "maximum": 65535},
    "strings": _STRS,
}

# A record of a reply section; the types of RDATA_FIELDS carry exactly their fields.
_RECORD = {
    **_object({**dict.fromkeys(RECORD_KEYS, _STR), "ttl": _NONNEG, "fields": {"type": "object"}}, optional=("fields",)),
    "allOf": [
        {
            "if": {"properties": {"type": {"const": rdtype}}},
            "then": {
                "required": ["fields"],
                "properties": {
                    "fields": {
                        **_object({key: _FIELD_SCHEMAS.get(key, _STR) for key in keys}),
                        "additionalProperties": False,
                    }
                },
            },
        }
        for rdtype, keys in RDATA_FIELDS.items()
    ],
}

_REPLY = _object(
    {
        "latency_ns": _NONNEG,
        "rcode": _NULL_STR,
        "error": _NULL_STR,
        "flags": _STRS,
        **{section: {"type": "array", "items": _RECORD} for section in SECTIONS},
    }
)

_RECORDED_QUERY = {
    "type": "array",
    "prefixItems": [_STR, _STR, {"enum": list(PROTOS)}],
    "minItems": len(CAPTURE_COLUMNS),
    "maxItems": len(CAPTURE_COLUMNS),
}

_RECORDED_LOOKUP = _object(
    {
        "name": _STR,
        "ok": {"type": "boolean"},
        "error_code": _INT,
        "error": _NULL_STR,
        "addresses": _STRS,
        "latency_ns": _NONNEG,
        "queries": {"type": "array", "items": _RECORDED_QUERY},
        "rcodes": {"type": "array", "items": _NULL_STR},
        "late_queries": _NONNEG,
    }
)

_QPS = {"type": "number", "minimum": 0, "maximum": MAX_MONITOR_QPS}

_MONITOR_START = _doc(
    "monitor",
    {
        "event": {"const": "start"},
        "t0_unix_ns": _NONNEG,
        "columns": {"const": list(MONITOR_COLUMNS)},
        "clients": {"const": list(CLIENTS)},
        "names": _STRS,  # the open loop's; none in a run that only chases (qps and socket_qps 0)
        "server": _NULL_STR,  # the socket client's server, else resolv.conf's first nameserver
        "source_port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},  # null: no socket client
        "qps": _QPS,
        "socket_qps": _QPS,
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
        "chase_every_s": {"type": "number", "exclusiveMinimum": 0},
        "chase_give_up_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
    },
)

_MONITOR_ROWS = _line({"event": {"const": "rows"}, "rows": {"type": "array"}})  # rows: see module docstring

# The names of one chase line (or of the chase argument), whose name indexes start at first_index.
_MONITOR_CHASED = _line(
    {"event": {"const": "chased"}, "names": {**_NAMES, "maxItems": MAX_NAMES}, "first_index": _NONNEG}
)

# A stdin line that was a JSON object but no valid chase request: ignored, the run goes on.
_MONITOR_ERROR = _line({"event": {"const": "error"}, "error": _STR})

_MONITOR_END = _doc(
    "monitor",
    {
        "event": {"const": "end"},
        "stopped": {"enum": list(MONITOR_STOPS)},
        "elapsed_ns": _NONNEG,
        "totals": _object(
            {
                "libc": _object(
                    dict.fromkeys(("lookups", "ok", "failed", "skipped", "unfinished", "chase_given_up"), _NONNEG)
                ),
                "socket": _object(dict.fromkeys(("queries", "ok", "failed", "late"), _NONNEG)),
            }
        ),
        "errors": _ERRORS,
    },
)

# `serve`'s lines: start (listening), one per query, end (the document __main__ prints).
_SERVE_START = _line({"event": {"const": "start"}, "listen": _STR, "port": _PORT, "name": _STR, "zone": _STR,
                      "address": _STR})
_SERVE_QUERY = _line({"event": {"const": "query"}, "qname": _STR, "qtype": _STR, "proto": {"enum": list(PROTOS)},
                      "client": _STR, "outcome": {"enum": list(SERVE_OUTCOMES)}})
_SERVE_END = _doc("serve", {"event": {"const": "end"}, "name": _STR, "address": _STR,
                            "stopped": {"enum": list(SERVE_STOPS)}, "elapsed_ns": _NONNEG,
                            "queries": _object(dict.fromkeys(PROTOS, _NONNEG)),
                            "outcomes": _object(dict.fromkeys(SERVE_OUTCOMES, _NONNEG)), "lines_dropped": _NONNEG})

# `load`: one tally per step of the ramp, outcomes counted by the step in which the query was sent.
_LOAD_STEP = _object({
    "rate": {"type": "number", "exclusiveMinimum": 0},
    **dict.fromkeys(("sent", "answered", "timeouts", "send_errors", "truncated", "empty"), _NONNEG),
    "rcodes": {"type": "object", "additionalProperties": _NONNEG},
    "histogram": {"type": "array", "items": _NONNEG, "minItems": len(LOAD_BUCKETS_NS) + 1,
                  "maxItems": len(LOAD_BUCKETS_NS) + 1},
})
_LOAD = _doc("load", {
    "server": _STR, "port": _PORT, "qtype": {"enum": list(LOAD_QTYPES)}, "names": {"type": "integer", "minimum": 1},
    "step_s": {"type": "number"}, "timeout_s": {"type": "number"}, "sockets": {"type": "integer", "minimum": 1},
    "buckets_ns": {"const": list(LOAD_BUCKETS_NS)}, "steps": {"type": "array", "items": _LOAD_STEP},
    "late": _NONNEG, "stopped": {"enum": list(LOAD_STOPS)}, "elapsed_s": {"type": "number", "minimum": 0},
})

# One per protocol.COMMANDS entry, in its order (tests/probe checks it).
SCHEMAS: dict[str, dict[str, Any]] = {
    "info": _doc(
        "info",
        {
            "python": {"type": "string", "pattern": r"^\d+\.\d+"},
            "implementation": _STR,
            "executable": _STR,
            "machine": _STR,
            "libc": {"enum": list(LIBCS)},
            "libc_version": _NULL_STR,
            "libc_evidence": _STR,
            "hostname": _STR,
            "resolv_conf": _NULL_STR,
            "resolv_conf_error": _NULL_STR,
            "pid": {"type": "integer", "minimum": 1},
            "dnspython": _NULL_STR,
        },
    ),
    "lookup": _STOP_RULE_IFF_VERDICT | _doc(
        "lookup",
        {
            **_LIBC_RUN,
            "columns": {"const": list(LOOKUP_COLUMNS)},
            "qps": {"type": "number", "minimum": 0},
            "concurrency": {"type": "integer", "minimum": 1},
            "count": {"type": ["integer", "null"]},
            "duration_s": {"type": ["number", "null"]},
            **_STOP,
        },
    ),
    "burst": _STOP_RULE_IFF_VERDICT | _doc(
        "burst",
        {
            **_LIBC_RUN,
            "columns": {"const": list(BURST_COLUMNS)},
            "bursts": {"type": "integer", "minimum": 1},
            "parallel": {"type": "integer", "minimum": 1},
            "interval_s": {"type": "number", "minimum": 0},
            **_STOP,
        },
    ),
    "query": _doc(
        "query",
        {
            "server": _STR,
            "port": _PORT,
            "name": _STR,
            "qname": _STR,
            "rdtype": _STR,
            "tcp": {"type": "boolean"},
            "timeout": {"type": "number"},
            "replies": {"type": "array", "items": _REPLY},
            "totals": _object({"queries": _NONNEG, "ok": _NONNEG, "failed": _NONNEG}),
        },
    ),
    "capture": _doc(
        "capture",
        {
            "listen": _STR,
            "upstream": {"type": "array", "items": _STR, "minItems": 1},
            "port": _PORT,
            "family": {"enum": list(FAMILIES)},
            "resolv_conf": _NULL_STR,
            "warnings": _STRS,
            "parser": {"enum": list(PARSERS)},
            "columns": {"const": list(CAPTURE_COLUMNS)},
            "lookups": {"type": "array", "items": _RECORDED_LOOKUP},
            "unattributed": {"type": "array", "items": _RECORDED_QUERY},
            "dropped": _NONNEG,
            "unanswered": _NONNEG,
            "resent": _NONNEG,
        },
    ),
    "http": _doc(
        "http",
        {
            "url": _STR,
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "reason": _STR,
            "headers": {"type": "object", "additionalProperties": _STR},
            "body": _STR,
            "truncated": {"type": "boolean"},
            "latency_ns": _NONNEG,
        },
    ),
    "monitor": _MONITOR_END,
    "serve": _SERVE_END,
    "load": _LOAD,
}

# serve's lines by their event, as protocol.SERVE_EVENTS orders them.
SERVE_SCHEMAS: dict[str, dict[str, Any]] = {"start": _SERVE_START, "query": _SERVE_QUERY, "end": _SERVE_END}

# monitor's lines by their event, as protocol.MONITOR_EVENTS orders them: start first, end last,
# rows, chased and error lines (none or many) between them.
MONITOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "start": _MONITOR_START,
    "rows": _MONITOR_ROWS,
    "chased": _MONITOR_CHASED,
    "error": _MONITOR_ERROR,
    "end": _MONITOR_END,
}
