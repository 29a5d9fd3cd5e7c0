"""The DNS probe: the protocol both sides share (protocol.py), the payload run inside probe pods
(payload/), how to ship and run it (build.py), and how to read what it prints (schema.py)."""

from __future__ import annotations

from pytest_k8sdns.probe.build import (
    PAYLOAD_PATH,
    build_zipapp,
    install_command,
    install_input,
    payload_sha256,
    probe_command,
)
from pytest_k8sdns.probe.jsonschemas import SCHEMAS
from pytest_k8sdns.probe.protocol import (
    BURST_COLUMNS,
    CAPTURE_COLUMNS,
    COMMANDS,
    LOOKUP_COLUMNS,
    PROBE_VERSION,
)
from pytest_k8sdns.probe.results import (
    BurstResult,
    CapturedLookup,
    CapturedQuery,
    CaptureResult,
    DnsRecord,
    HttpResult,
    LookupResult,
    LookupRow,
    LookupTotals,
    ProbeInfo,
    ProbeResult,
    QueryReply,
    QueryResult,
    Soa,
    Srv,
)
from pytest_k8sdns.probe.schema import (
    load_document,
    parse_burst,
    parse_capture,
    parse_http,
    parse_info,
    parse_lookup,
    parse_output,
    parse_query,
)

__all__ = [
    "BURST_COLUMNS",
    "COMMANDS",
    "LOOKUP_COLUMNS",
    "PAYLOAD_PATH",
    "PROBE_VERSION",
    "CAPTURE_COLUMNS",
    "SCHEMAS",
    "BurstResult",
    "DnsRecord",
    "HttpResult",
    "LookupResult",
    "LookupRow",
    "LookupTotals",
    "ProbeInfo",
    "ProbeResult",
    "QueryReply",
    "QueryResult",
    "CaptureResult",
    "CapturedLookup",
    "CapturedQuery",
    "Soa",
    "Srv",
    "build_zipapp",
    "install_command",
    "install_input",
    "load_document",
    "parse_burst",
    "parse_http",
    "parse_info",
    "parse_lookup",
    "parse_output",
    "parse_query",
    "parse_capture",
    "payload_sha256",
    "probe_command",
]
