"""Check the probe's JSON output against a schema per command and turn it into dataclasses.

Anything malformed raises PodError with one line naming the command, the pod and the first
problem. Lookup rows, which can number in the hundreds of thousands, are checked by a plain loop
instead of jsonschema, which would take seconds per run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import jsonschema

from pytest_k8sdns.errors import PodError

PROBE_VERSION = 1
LOOKUP_COLUMNS = ("name_index", "start_offset_ns", "latency_ns", "ok", "error_code", "n_addrs")
BURST_COLUMNS = (*LOOKUP_COLUMNS, "burst")
RECORD_COLUMNS = ("qname", "qtype", "proto")

_INT = {"type": "integer"}
_NONNEG = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_NULL_STR = {"type": ["string", "null"]}


def _doc(command: str, properties: dict[str, Any]) -> dict[str, Any]:
    base = {"command": {"const": command}, "probe_version": {"const": PROBE_VERSION}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {**base, **properties},
        "required": sorted([*base, *properties]),
    }


_LIBC_RUN = {
    "names": {"type": "array", "items": _STR, "minItems": 1},
    "family": {"enum": ["any", "inet", "inet6"]},
    "socktype": {"enum": ["any", "stream", "dgram"]},
    # rows: an array of integer arrays, checked by _check_rows (see module docstring)
    "lookups": {"type": "array"},
    "addresses": {"type": "array", "items": {"anyOf": [{"type": "null"}, _STRS]}},
    "errors": {"type": "object", "additionalProperties": _STR, "propertyNames": {"pattern": "^-?[0-9]+$"}},
    "totals": {
        "type": "object",
        "properties": {
            "lookups": _NONNEG,
            "ok": _NONNEG,
            "failed": _NONNEG,
            "elapsed_ns": _NONNEG,
            "rate_per_s": {"type": "number", "minimum": 0},
        },
        "required": ["lookups", "ok", "failed", "elapsed_ns", "rate_per_s"],
    },
}

_REPLY = {
    "type": "object",
    "properties": {
        "latency_ns": _NONNEG,
        "rcode": _NULL_STR,
        "error": _NULL_STR,
        "flags": _STRS,
        "answers": _STRS,
        "ttls": {"type": "array", "items": _NONNEG},
        "authority": _STRS,
    },
    "required": ["latency_ns", "rcode", "error", "flags", "answers", "ttls", "authority"],
}

_RECORDED_QUERY = {
    "type": "array",
    "prefixItems": [_STR, _STR, {"enum": ["udp", "tcp"]}],
    "minItems": 3,
    "maxItems": 3,
}

_RECORDED_LOOKUP = {
    "type": "object",
    "properties": {
        "name": _STR,
        "ok": {"type": "boolean"},
        "error_code": _INT,
        "error": _NULL_STR,
        "addresses": _STRS,
        "latency_ns": _NONNEG,
        "queries": {"type": "array", "items": _RECORDED_QUERY},
        "rcodes": {"type": "array", "items": _NULL_STR},
        "late_queries": _NONNEG,
    },
    "required": ["name", "ok", "error_code", "error", "addresses", "latency_ns", "queries", "rcodes", "late_queries"],
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "info": _doc(
        "info",
        {
            "python": {"type": "string", "pattern": r"^\d+\.\d+"},
            "implementation": _STR,
            "executable": _STR,
            "machine": _STR,
            "libc": {"enum": ["glibc", "musl", "unknown"]},
            "libc_version": _NULL_STR,
            "libc_evidence": _STR,
            "hostname": _STR,
            "resolv_conf": _NULL_STR,
            "resolv_conf_error": _NULL_STR,
            "pid": {"type": "integer", "minimum": 1},
            "dnspython": _NULL_STR,
        },
    ),
    "lookup": _doc(
        "lookup",
        {
            **_LIBC_RUN,
            "columns": {"const": list(LOOKUP_COLUMNS)},
            "qps": {"type": "number", "minimum": 0},
            "concurrency": {"type": "integer", "minimum": 1},
            "count": {"type": ["integer", "null"]},
            "duration_s": {"type": ["number", "null"]},
            "stopped": {"enum": ["count", "duration", "limit"]},
        },
    ),
    "burst": _doc(
        "burst",
        {
            **_LIBC_RUN,
            "columns": {"const": list(BURST_COLUMNS)},
            "bursts": {"type": "integer", "minimum": 1},
            "parallel": {"type": "integer", "minimum": 1},
            "interval_s": {"type": "number", "minimum": 0},
        },
    ),
    "query": _doc(
        "query",
        {
            "server": _STR,
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "name": _STR,
            "qname": _STR,
            "rdtype": _STR,
            "tcp": {"type": "boolean"},
            "timeout": {"type": "number"},
            "replies": {"type": "array", "items": _REPLY},
            "totals": {
                "type": "object",
                "properties": {"queries": _NONNEG, "ok": _NONNEG, "failed": _NONNEG},
                "required": ["queries", "ok", "failed"],
            },
        },
    ),
    "record": _doc(
        "record",
        {
            "listen": _STR,
            "upstream": {"type": "array", "items": _STR, "minItems": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "family": {"enum": ["any", "inet", "inet6"]},
            "resolv_conf": _NULL_STR,
            "warnings": _STRS,
            "parser": {"enum": ["dnspython", "builtin"]},
            "columns": {"const": list(RECORD_COLUMNS)},
            "lookups": {"type": "array", "items": _RECORDED_LOOKUP},
            "unattributed": {"type": "array", "items": _RECORDED_QUERY},
            "dropped": _NONNEG,
            "unanswered": _NONNEG,
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
}

_VALIDATORS = {name: jsonschema.Draft202012Validator(schema) for name, schema in SCHEMAS.items()}


# ---- dataclasses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeInfo:
    """`info`: the interpreter and libc a probe pod runs, and its resolver configuration."""

    python: str
    implementation: str
    executable: str
    machine: str
    libc: str  # "glibc", "musl" or "unknown"
    libc_version: str | None
    libc_evidence: str
    hostname: str
    resolv_conf: str | None
    resolv_conf_error: str | None
    pid: int
    dnspython: str | None


@dataclass(frozen=True)
class LookupRow:
    """One libc getaddrinfo: offsets are from the start of the run, in nanoseconds."""

    name_index: int
    start_offset_ns: int
    latency_ns: int
    ok: bool
    error_code: int  # 0, an EAI_* code (negative), -1000 (name not encodable) or -1001 (other)
    n_addrs: int
    burst: int | None = None  # the burst index, for `burst` rows

    @property
    def latency_s(self) -> float:
        return self.latency_ns / 1e9


@dataclass(frozen=True)
class LookupTotals:
    lookups: int
    ok: int
    failed: int
    elapsed_ns: int
    rate_per_s: float


@dataclass(frozen=True)
class LookupResult:
    """`lookup` (and, with bursts set, `burst`): rows plus what was resolved and what failed."""

    names: tuple[str, ...]
    family: str
    socktype: str
    rows: tuple[LookupRow, ...]
    addresses: tuple[tuple[str, ...] | None, ...]  # per name, from its first success
    errors: Mapping[int, str]  # error_code -> first message seen
    totals: LookupTotals
    qps: float | None = None
    concurrency: int | None = None
    stopped: str | None = None
    bursts: int | None = None
    parallel: int | None = None
    interval_s: float | None = None

    def name_of(self, row: LookupRow) -> str:
        return self.names[row.name_index]


BurstResult = LookupResult


@dataclass(frozen=True)
class QueryReply:
    latency_ns: int
    rcode: str | None  # None when no reply came (then error says why)
    error: str | None
    flags: tuple[str, ...]
    answers: tuple[str, ...]  # rrset text lines, e.g. "kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"
    ttls: tuple[int, ...]  # one per answers line
    authority: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.error is None

    def addresses(self) -> tuple[str, ...]:
        """The rdata of A/AAAA answer lines."""
        out = []
        for line in self.answers:
            fields = line.split()
            if len(fields) >= 5 and fields[3] in ("A", "AAAA"):
                out.append(fields[4])
        return tuple(out)


@dataclass(frozen=True)
class QueryResult:
    """`query`: raw dnspython exchanges with one server."""

    server: str
    port: int
    name: str
    qname: str
    rdtype: str
    tcp: bool
    timeout: float
    replies: tuple[QueryReply, ...]


@dataclass(frozen=True)
class RecordedQuery:
    qname: str  # as sent, absolute with the trailing dot
    qtype: str
    proto: str  # "udp" or "tcp"
    rcode: str | None = None  # the upstream's reply relayed back, None if none was


@dataclass(frozen=True)
class RecordedLookup:
    """One libc lookup through the recording forwarder and the queries it caused, in order."""

    name: str
    ok: bool
    error_code: int
    error: str | None
    addresses: tuple[str, ...]
    latency_ns: int
    queries: tuple[RecordedQuery, ...]
    late_queries: int  # queries that arrived after getaddrinfo had returned

    @property
    def qnames(self) -> tuple[str, ...]:
        """The distinct query names in the order they were first asked."""
        return tuple(dict.fromkeys(query.qname for query in self.queries))


@dataclass(frozen=True)
class RecordResult:
    listen: str
    upstream: tuple[str, ...]
    port: int
    family: str
    resolv_conf: str | None
    warnings: tuple[str, ...]
    parser: str
    lookups: tuple[RecordedLookup, ...]
    unattributed: tuple[RecordedQuery, ...]
    dropped: int
    unanswered: int


@dataclass(frozen=True)
class HttpResult:
    """`http`: one GET of a metrics or health endpoint from inside the pod."""

    url: str
    status: int
    reason: str
    headers: Mapping[str, str]  # names lower-cased
    body: str
    truncated: bool
    latency_ns: int


ProbeResult = ProbeInfo | LookupResult | QueryResult | RecordResult | HttpResult


# ---- validation and parsing --------------------------------------------------------------------


def _fail(command: str, where: str, problem: str) -> PodError:
    place = f" in {where}" if where else ""
    return PodError(f"probe {command}{place} {problem}; check that the probe payload matches this plugin version")


def load_document(command: str, output: str | bytes, *, where: str = "") -> dict[str, Any]:
    """Parse and validate one command's stdout; an error document from the probe raises PodError."""
    if command not in SCHEMAS:
        raise PodError(f"unknown probe command {command!r}; valid commands: {', '.join(SCHEMAS)}")
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    try:
        doc = json.loads(text)
    except ValueError:
        first = text.strip().splitlines()[0][:200] if text.strip() else "nothing"
        raise _fail(command, where, f"printed no JSON document (got: {first!r})") from None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        place = f" in {where}" if where else ""
        reason = " ".join(doc["error"].split())[:500]
        raise PodError(f"probe {command}{place} failed: {reason}")
    error = jsonschema.exceptions.best_match(_VALIDATORS[command].iter_errors(doc))
    if error is not None:
        path = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise _fail(command, where, f"returned invalid output at {path}: {error.message[:200]}")
    if command in ("lookup", "burst"):
        _check_rows(command, where, doc)
    return cast(dict[str, Any], doc)


def _check_rows(command: str, where: str, doc: Mapping[str, Any]) -> None:
    width = len(BURST_COLUMNS if command == "burst" else LOOKUP_COLUMNS)
    n_names = len(doc["names"])
    for i, row in enumerate(doc["lookups"]):
        if (
            type(row) is not list
            or len(row) != width
            or not all(type(v) is int for v in row)
            or not 0 <= row[0] < n_names
            or row[3] not in (0, 1)
            or row[2] < 0
        ):
            raise _fail(command, where, f"returned an invalid row at $.lookups[{i}]: {str(row)[:120]}")
    if len(doc["addresses"]) != n_names:
        raise _fail(command, where, f"returned {len(doc['addresses'])} address lists for {n_names} names")


def _lookup_result(doc: Mapping[str, Any]) -> LookupResult:
    burst = doc["command"] == "burst"
    rows = tuple(LookupRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6] if burst else None) for r in doc["lookups"])
    return LookupResult(
        names=tuple(doc["names"]),
        family=doc["family"],
        socktype=doc["socktype"],
        rows=rows,
        addresses=tuple(None if a is None else tuple(a) for a in doc["addresses"]),
        errors={int(code): text for code, text in doc["errors"].items()},
        totals=LookupTotals(**doc["totals"]),
        qps=doc.get("qps"),
        concurrency=doc.get("concurrency"),
        stopped=doc.get("stopped"),
        bursts=doc.get("bursts"),
        parallel=doc.get("parallel"),
        interval_s=doc.get("interval_s"),
    )


def _reply(d: Mapping[str, Any]) -> QueryReply:
    return QueryReply(
        latency_ns=d["latency_ns"],
        rcode=d["rcode"],
        error=d["error"],
        flags=tuple(d["flags"]),
        answers=tuple(d["answers"]),
        ttls=tuple(d["ttls"]),
        authority=tuple(d["authority"]),
    )


def _recorded_lookup(d: Mapping[str, Any]) -> RecordedLookup:
    rcodes = list(d["rcodes"]) + [None] * (len(d["queries"]) - len(d["rcodes"]))
    return RecordedLookup(
        name=d["name"],
        ok=d["ok"],
        error_code=d["error_code"],
        error=d["error"],
        addresses=tuple(d["addresses"]),
        latency_ns=d["latency_ns"],
        queries=tuple(
            RecordedQuery(q[0], q[1], q[2], rc) for q, rc in zip(d["queries"], rcodes[: len(d["queries"])], strict=True)
        ),
        late_queries=d["late_queries"],
    )


def parse_output(command: str, output: str | bytes, *, where: str = "") -> ProbeResult:
    """Validate one command's stdout and return its dataclass. `where` names the pod in errors."""
    doc = load_document(command, output, where=where)
    if command == "info":
        return ProbeInfo(**{k: doc[k] for k in ProbeInfo.__dataclass_fields__})
    if command in ("lookup", "burst"):
        return _lookup_result(doc)
    if command == "query":
        return QueryResult(
            server=doc["server"],
            port=doc["port"],
            name=doc["name"],
            qname=doc["qname"],
            rdtype=doc["rdtype"],
            tcp=doc["tcp"],
            timeout=float(doc["timeout"]),
            replies=tuple(_reply(r) for r in doc["replies"]),
        )
    if command == "http":
        return HttpResult(**{k: doc[k] for k in HttpResult.__dataclass_fields__})
    return RecordResult(
        listen=doc["listen"],
        upstream=tuple(doc["upstream"]),
        port=doc["port"],
        family=doc["family"],
        resolv_conf=doc["resolv_conf"],
        warnings=tuple(doc["warnings"]),
        parser=doc["parser"],
        lookups=tuple(_recorded_lookup(d) for d in doc["lookups"]),
        unattributed=tuple(RecordedQuery(q[0], q[1], q[2]) for q in doc["unattributed"]),
        dropped=doc["dropped"],
        unanswered=doc["unanswered"],
    )


_T = TypeVar("_T")


def _typed(command: str, output: str | bytes, where: str, kind: type[_T]) -> _T:
    result = parse_output(command, output, where=where)
    if not isinstance(result, kind):  # pragma: no cover - parse_output maps commands to types
        raise _fail(command, where, f"parsed as {type(result).__name__}")
    return result


def parse_info(output: str | bytes, *, where: str = "") -> ProbeInfo:
    return _typed("info", output, where, ProbeInfo)


def parse_lookup(output: str | bytes, *, where: str = "") -> LookupResult:
    return _typed("lookup", output, where, LookupResult)


def parse_burst(output: str | bytes, *, where: str = "") -> BurstResult:
    return _typed("burst", output, where, LookupResult)


def parse_query(output: str | bytes, *, where: str = "") -> QueryResult:
    return _typed("query", output, where, QueryResult)


def parse_record(output: str | bytes, *, where: str = "") -> RecordResult:
    return _typed("record", output, where, RecordResult)


def parse_http(output: str | bytes, *, where: str = "") -> HttpResult:
    return _typed("http", output, where, HttpResult)
