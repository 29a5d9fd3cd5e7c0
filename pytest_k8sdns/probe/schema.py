"""Check the probe's JSON output against its command's schema and turn it into typed results.

Anything malformed raises PodError with one line naming the command, the pod and the first
problem. The schemas are in jsonschemas.py, the result types in results.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import jsonschema

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.probe.jsonschemas import MONITOR_SCHEMAS, SCHEMAS, SERVE_SCHEMAS
from pytest_k8sdns.probe.load import LoadResult
from pytest_k8sdns.probe.protocol import (
    BURST_COLUMNS,
    BURST_IN_FLIGHT_COLUMNS,
    CLIENTS,
    IN_FLIGHT_COLUMNS,
    LOOKUP_COLUMNS,
    MONITOR_COLUMNS,
)
from pytest_k8sdns.probe.results import (
    BurstResult,
    CapturedLookup,
    CapturedQuery,
    CaptureResult,
    DnsRecord,
    HttpResult,
    InFlightLookup,
    LookupResult,
    LookupRow,
    LookupTotals,
    MonitorChased,
    MonitorEnd,
    MonitorLibcTotals,
    MonitorLine,
    MonitorRow,
    MonitorSocketTotals,
    MonitorStart,
    MonitorStdinError,
    MonitorTotals,
    ProbeInfo,
    ProbeResult,
    QueryReply,
    QueryResult,
)

_VALIDATORS = {name: jsonschema.Draft202012Validator(schema) for name, schema in SCHEMAS.items()}
_MONITOR_VALIDATORS = {event: jsonschema.Draft202012Validator(schema) for event, schema in MONITOR_SCHEMAS.items()}
_SERVE_VALIDATORS = {event: jsonschema.Draft202012Validator(schema) for event, schema in SERVE_SCHEMAS.items()}


def _fail(command: str, where: str, problem: str) -> PodError:
    place = f" in {where}" if where else ""
    return PodError(f"probe {command}{place} {problem}; check that the probe payload matches this plugin version")


def _json(command: str, output: str | bytes, where: str) -> Any:
    """The one JSON document of `output`; an error document from the probe raises PodError (not
    monitor's error event, which has an event key)."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    try:
        doc = json.loads(text)
    except ValueError:
        first = text.strip().splitlines()[0][:200] if text.strip() else "nothing"
        raise _fail(command, where, f"printed no JSON document (got: {first!r})") from None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str) and "event" not in doc:
        place = f" in {where}" if where else ""
        reason = " ".join(doc["error"].split())[:500]
        raise PodError(f"probe {command}{place} failed: {reason}")
    return doc


def _validate(command: str, where: str, validator: jsonschema.Draft202012Validator, doc: Any) -> dict[str, Any]:
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        path = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise _fail(command, where, f"returned invalid output at {path}: {error.message[:200]}")
    return cast(dict[str, Any], doc)


def load_document(command: str, output: str | bytes, *, where: str = "") -> dict[str, Any]:
    """Parse and validate one command's stdout; an error document from the probe raises PodError.
    For `monitor` that is its last line (event "end"): parse_monitor_line reads each of them."""
    if command not in SCHEMAS:
        raise PodError(f"unknown probe command {command!r}; valid commands: {', '.join(SCHEMAS)}")
    doc = _validate(command, where, _VALIDATORS[command], _json(command, output, where))
    if command in ("lookup", "burst"):
        _check_rows(command, where, doc)
    return doc


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
    width = len(BURST_IN_FLIGHT_COLUMNS if command == "burst" else IN_FLIGHT_COLUMNS)
    for i, row in enumerate(doc["in_flight"]):
        if type(row) is not list or len(row) != width or not all(type(v) is int and v >= 0 for v in row) \
                or not row[0] < n_names:
            raise _fail(command, where, f"returned an invalid in-flight lookup at $.in_flight[{i}]: {str(row)[:120]}")
    if len(doc["addresses"]) != n_names:
        raise _fail(command, where, f"returned {len(doc['addresses'])} address lists for {n_names} names")


def _monitor_rows(where: str, rows: list[Any], n_names: int | None) -> list[MonitorRow]:
    out = []
    for i, row in enumerate(rows):
        if (
            type(row) is not list
            or len(row) != len(MONITOR_COLUMNS)
            or not all(type(v) is int for v in row)
            or not 0 <= row[0] < len(CLIENTS)
            or row[1] < 0
            or (n_names is not None and row[1] >= n_names)
            or row[2] < 0
            or row[3] < 0
            or row[4] not in (0, 1)
            or (row[4] == 1) != (row[5] == 0)  # ok exactly when there is no error code
        ):
            raise _fail("monitor", where, f"returned an invalid row at $.rows[{i}]: {str(row)[:120]}")
        out.append(MonitorRow(CLIENTS[row[0]], row[1], row[2], row[3], row[4] == 1, row[5]))
    return out


def parse_serve_line(line: str | bytes, where: str = "") -> dict[str, Any]:
    """One line of `serve`'s output, validated: its start, a query it answered, or its end. An
    error document raises PodError as the other parsers do."""
    doc = _json("serve", line, where)
    event = doc.get("event") if isinstance(doc, dict) else None
    if not isinstance(event, str) or event not in SERVE_SCHEMAS:
        raise _fail("serve", where, f"printed a line that is no serve event: {str(line).strip()[:120]!r}")
    return _validate("serve", where, _SERVE_VALIDATORS[event], doc)


def parse_monitor_line(
    line: str | bytes, where: str = "", *, start: MonitorStart | None = None, n_names: int | None = None
) -> MonitorLine:
    """One line of `monitor`'s output: its start, a batch of rows, names it now chases, an ignored
    stdin line, or its end. An error document (bad arguments, or a failure after the start) raises
    PodError as the other parsers do. Given `n_names`, the names the run has so far (its start's
    plus those of the chased lines before this one; len(start.names) when only `start` is given),
    rows are also checked to name one of them, and a chased line to take the next indexes."""
    doc = _json("monitor", line, where)
    event = doc.get("event") if isinstance(doc, dict) else None
    if not isinstance(event, str) or event not in MONITOR_SCHEMAS:
        raise _fail("monitor", where, f"printed a line that is no monitor event: {str(line).strip()[:120]!r}")
    doc = _validate("monitor", where, _MONITOR_VALIDATORS[event], doc)
    if n_names is None and start is not None:
        n_names = len(start.names)
    if event == "rows":
        return _monitor_rows(where, doc["rows"], n_names)
    if event == "chased":
        if n_names is not None and doc["first_index"] != n_names:
            raise _fail("monitor", where, f"chased names from index {doc['first_index']}, after {n_names} names")
        return MonitorChased(tuple(doc["names"]), doc["first_index"])
    if event == "error":
        return MonitorStdinError(doc["error"])
    if event == "start":
        return MonitorStart(
            t0_unix_ns=doc["t0_unix_ns"],
            names=tuple(doc["names"]),
            server=doc["server"],
            source_port=doc["source_port"],
            qps=float(doc["qps"]),
            socket_qps=float(doc["socket_qps"]),
            timeout_s=float(doc["timeout_s"]),
            chase_every_s=float(doc["chase_every_s"]),
            chase_give_up_s=float(doc["chase_give_up_s"]),
        )
    totals = doc["totals"]
    return MonitorEnd(
        stopped=doc["stopped"],
        elapsed_ns=doc["elapsed_ns"],
        totals=MonitorTotals(
            MonitorLibcTotals(**{k: totals["libc"][k] for k in MonitorLibcTotals.__dataclass_fields__}),
            MonitorSocketTotals(**{k: totals["socket"][k] for k in MonitorSocketTotals.__dataclass_fields__}),
        ),
        errors={int(code): text for code, text in doc["errors"].items()},
    )


def _lookup_result(doc: Mapping[str, Any]) -> LookupResult:
    burst = doc["command"] == "burst"
    rows = tuple(LookupRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6] if burst else None) for r in doc["lookups"])
    in_flight = tuple(InFlightLookup(r[0], r[1], r[2], r[3] if burst else None) for r in doc["in_flight"])
    return LookupResult(
        names=tuple(doc["names"]),
        family=doc["family"],
        socktype=doc["socktype"],
        rows=rows,
        in_flight=in_flight,
        addresses=tuple(None if a is None else tuple(a) for a in doc["addresses"]),
        errors={int(code): text for code, text in doc["errors"].items()},
        totals=LookupTotals(**doc["totals"]),
        qps=doc.get("qps"),
        concurrency=doc.get("concurrency"),
        stopped=doc["stopped"],
        stop_rule=doc["stop_rule"],
        bursts=doc.get("bursts"),
        parallel=doc.get("parallel"),
        interval_s=doc.get("interval_s"),
    )


def _record(d: Mapping[str, Any]) -> DnsRecord:
    fields = {key: tuple(v) if isinstance(v, list) else v for key, v in d.get("fields", {}).items()}
    return DnsRecord(d["name"], d["ttl"], d["class"], d["type"], d["rdata"], fields)


def _reply(d: Mapping[str, Any]) -> QueryReply:
    return QueryReply(
        latency_ns=d["latency_ns"],
        rcode=d["rcode"],
        error=d["error"],
        flags=tuple(d["flags"]),
        answer=tuple(_record(r) for r in d["answer"]),
        authority=tuple(_record(r) for r in d["authority"]),
        additional=tuple(_record(r) for r in d["additional"]),
    )


def _captured_lookup(d: Mapping[str, Any]) -> CapturedLookup:
    rcodes = list(d["rcodes"]) + [None] * (len(d["queries"]) - len(d["rcodes"]))
    return CapturedLookup(
        name=d["name"],
        ok=d["ok"],
        error_code=d["error_code"],
        error=d["error"],
        addresses=tuple(d["addresses"]),
        latency_ns=d["latency_ns"],
        queries=tuple(
            CapturedQuery(q[0], q[1], q[2], rc) for q, rc in zip(d["queries"], rcodes[: len(d["queries"])], strict=True)
        ),
        late_queries=d["late_queries"],
    )


def parse_output(command: str, output: str | bytes, *, where: str = "") -> ProbeResult:
    """Validate one command's stdout and return its dataclass. `where` names the pod in errors.
    Not for `monitor`, whose output is lines: parse_monitor_line."""
    if command == "monitor":
        raise PodError("probe monitor prints one JSON line per event; read each with parse_monitor_line")
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
    if command == "load":
        return LoadResult.from_doc(doc)
    return CaptureResult(
        listen=doc["listen"],
        upstream=tuple(doc["upstream"]),
        port=doc["port"],
        family=doc["family"],
        resolv_conf=doc["resolv_conf"],
        warnings=tuple(doc["warnings"]),
        parser=doc["parser"],
        lookups=tuple(_captured_lookup(d) for d in doc["lookups"]),
        unattributed=tuple(CapturedQuery(q[0], q[1], q[2]) for q in doc["unattributed"]),
        dropped=doc["dropped"],
        unanswered=doc["unanswered"],
        resent=doc["resent"],
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


def parse_capture(output: str | bytes, *, where: str = "") -> CaptureResult:
    return _typed("capture", output, where, CaptureResult)


def parse_http(output: str | bytes, *, where: str = "") -> HttpResult:
    return _typed("http", output, where, HttpResult)


def parse_load(output: str | bytes, *, where: str = "") -> LoadResult:
    return _typed("load", output, where, LoadResult)


__all__ = ["load_document", "parse_burst", "parse_capture", "parse_http", "parse_info", "parse_load", "parse_lookup",
           "parse_monitor_line", "parse_output", "parse_query"]
