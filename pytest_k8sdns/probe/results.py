"""The probe's documents as typed results: what schema.py returns for each command.

Query replies hold structured records with accessors (rdata, records, srv, soa, negative_ttl),
so no caller splits DNS text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_k8sdns.errors import PodError
from pytest_k8sdns.probe.load import LoadResult


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
class InFlightLookup:
    """A lookup still running when a stop rule ended its run: its outcome is unknown, its latency at
    least `waited_ns` (a rule on any outcome counted it once it passed the rule's latency)."""

    name_index: int
    start_offset_ns: int
    waited_ns: int
    burst: int | None = None  # the burst index, for `burst` runs

    @property
    def waited_s(self) -> float:
        return self.waited_ns / 1e9


@dataclass(frozen=True)
class LookupTotals:
    lookups: int
    ok: int
    failed: int
    elapsed_ns: int
    rate_per_s: float


@dataclass(frozen=True)
class LookupResult:
    """`lookup` (and, with bursts set, `burst`): rows plus what was resolved and what failed, and
    why the run ended (a burst run ends on "count", all its bursts, or on "verdict")."""

    names: tuple[str, ...]
    family: str
    socktype: str
    rows: tuple[LookupRow, ...]
    addresses: tuple[tuple[str, ...] | None, ...]  # per name, from its first success
    errors: Mapping[int, str]  # error_code -> first message seen
    totals: LookupTotals
    stopped: str  # protocol.STOP_REASONS: "count", "duration", "limit"; "verdict" when a stop rule tripped
    stop_rule: int | None = None  # the index of the stop rule that tripped, with stopped="verdict"
    in_flight: tuple[InFlightLookup, ...] = ()  # lookups still running when that rule ended the run
    qps: float | None = None
    concurrency: int | None = None
    bursts: int | None = None
    parallel: int | None = None
    interval_s: float | None = None

    def name_of(self, row: LookupRow) -> str:
        return self.names[row.name_index]


BurstResult = LookupResult

FieldValue = int | str | tuple[str, ...]


@dataclass(frozen=True)
class DnsRecord:
    """One resource record of a reply, as dnspython read it; names are absolute (trailing dot)."""

    name: str
    ttl: int
    rdclass: str  # "IN"
    rdtype: str  # "A", "SRV", ...
    rdata: str  # dnspython's presentation text, e.g. "0 100 80 web.ns.svc.cluster.local."
    fields: Mapping[str, FieldValue] = field(default_factory=dict)  # for protocol.RDATA_FIELDS types

    @property
    def text(self) -> str:
        """The record as one zone-file line, as dnspython prints it."""
        return f"{self.name} {self.ttl} {self.rdclass} {self.rdtype} {self.rdata}"


@dataclass(frozen=True)
class Srv:
    """An SRV record (RFC 2782)."""

    name: str
    ttl: int
    priority: int
    weight: int
    port: int
    target: str  # absolute, with the trailing dot


@dataclass(frozen=True)
class Soa:
    """An SOA record; in a negative answer's authority section its TTL is how long to cache the
    denial (RFC 2308 section 3)."""

    name: str
    ttl: int
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


def _int(record: DnsRecord, key: str) -> int:
    value = record.fields[key]
    if not isinstance(value, int):  # jsonschemas.py rules this out for documents it checked
        raise PodError(f"{record.rdtype} record {record.name} has {key}={value!r}, not a number; "
                       "parse replies with pytest_k8sdns.probe.schema")
    return value


def _str(record: DnsRecord, key: str) -> str:
    value = record.fields[key]
    if not isinstance(value, str):
        raise PodError(f"{record.rdtype} record {record.name} has {key}={value!r}, not a name; "
                       "parse replies with pytest_k8sdns.probe.schema")
    return value


@dataclass(frozen=True)
class QueryReply:
    """One reply (or the lack of one) to a `query`, its sections as records."""

    latency_ns: int
    rcode: str | None  # None when no reply came (then error says why)
    error: str | None
    flags: tuple[str, ...]
    answer: tuple[DnsRecord, ...] = ()
    authority: tuple[DnsRecord, ...] = ()
    additional: tuple[DnsRecord, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def records(self, rdtype: str | None = None, section: str = "answer") -> list[DnsRecord]:
        """The records of one section ("answer", "authority", "additional"), of one type if given."""
        found: tuple[DnsRecord, ...] = getattr(self, section)
        return [r for r in found if rdtype is None or r.rdtype == rdtype.upper()]

    def rdata(self, rdtype: str, section: str = "answer") -> list[str]:
        """The rdata text of each record of a type, in message order: addresses for A/AAAA, the
        target name for CNAME/PTR, the quoted strings for TXT."""
        return [r.rdata for r in self.records(rdtype, section)]

    def addresses(self) -> tuple[str, ...]:
        """The addresses of the A and AAAA answers."""
        return tuple(r.rdata for r in self.answer if r.rdtype in ("A", "AAAA"))

    def srv(self) -> list[Srv]:
        """The SRV answers, field by field."""
        return [
            Srv(r.name, r.ttl, _int(r, "priority"), _int(r, "weight"), _int(r, "port"), _str(r, "target"))
            for r in self.records("SRV")
        ]

    def soa(self) -> Soa | None:
        """The SOA of the authority section (a negative or referral answer), else of the answer."""
        for r in self.records("SOA", "authority") + self.records("SOA"):
            ints = [_int(r, key) for key in ("serial", "refresh", "retry", "expire", "minimum")]
            return Soa(r.name, r.ttl, _str(r, "mname"), _str(r, "rname"), *ints)
        return None

    def negative_ttl(self) -> int | None:
        """How long the server said to cache this denial: the TTL of the authority's SOA (RFC 2308
        section 3, which sets it to min(SOA TTL, MINIMUM)); None without one."""
        found = self.records("SOA", "authority")
        return found[0].ttl if found else None

    @property
    def answers(self) -> tuple[str, ...]:
        """The answer section as zone-file lines, e.g. "kubernetes.default.svc.cluster.local. 30 IN A 10.96.0.1"."""
        return tuple(r.text for r in self.answer)

    @property
    def ttls(self) -> tuple[int, ...]:
        """The TTL of each answer record."""
        return tuple(r.ttl for r in self.answer)


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
class CapturedQuery:
    qname: str  # as sent, absolute with the trailing dot
    qtype: str
    proto: str  # "udp" or "tcp"
    rcode: str | None = None  # the upstream's reply relayed back, None if none was


@dataclass(frozen=True)
class CapturedLookup:
    """One libc lookup through the capturing forwarder and the queries it caused, in order."""

    name: str
    ok: bool
    error_code: int
    error: str | None
    addresses: tuple[str, ...]
    latency_ns: int
    queries: tuple[CapturedQuery, ...]
    late_queries: int  # queries that arrived after getaddrinfo had returned

    @property
    def qnames(self) -> tuple[str, ...]:
        """The distinct query names in the order they were first asked."""
        return tuple(dict.fromkeys(query.qname for query in self.queries))


@dataclass(frozen=True)
class CaptureResult:
    listen: str
    upstream: tuple[str, ...]
    port: int
    family: str
    resolv_conf: str | None
    warnings: tuple[str, ...]
    parser: str  # "dnspython", or "builtin" on an interpreter the bundled dnspython does not run on
    lookups: tuple[CapturedLookup, ...]
    unattributed: tuple[CapturedQuery, ...]
    dropped: int
    unanswered: int
    resent: int = 0  # queries the forwarder sent its upstream again (resend_s), each counted


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


@dataclass(frozen=True)
class MonitorStart:
    """`monitor`'s first line: what it runs, and when its offsets start."""

    t0_unix_ns: int  # wall clock at the monotonic t0 the rows' start_offset_ns count from
    names: tuple[str, ...]  # the open loop's (name_index 0..); chased names follow (MonitorChased)
    server: str | None  # where the socket client sends; the pod's first nameserver when not given
    source_port: int | None  # the socket client's one source port; None without a socket client
    qps: float  # libc lookups started per second (0: no libc client)
    socket_qps: float  # socket queries per second (0: no socket client)
    timeout_s: float  # a socket query unanswered this long is a failed row (ERR_TIMEOUT)
    chase_every_s: float = 0.1  # a chased name is asked this often (one lookup of it at a time)
    chase_give_up_s: float = 120.0  # and dropped this long after it was chased, if it never answered


@dataclass(frozen=True)
class MonitorRow:
    """One finished libc lookup or socket query of `monitor`; rows arrive in the order they end."""

    client: str  # protocol.CLIENTS: "libc" or "socket"
    name_index: int
    start_offset_ns: int  # from MonitorStart.t0_unix_ns (monotonic)
    latency_ns: int
    ok: bool
    # 0 when ok; libc: an EAI_* code (negative), ERR_ENCODE or ERR_OTHER; socket: the rcode (1..15),
    # ERR_TIMEOUT, ERR_EMPTY (NOERROR without answers), ERR_SEND or ERR_ENCODE
    error_code: int

    @property
    def latency_s(self) -> float:
        return self.latency_ns / 1e9

    @property
    def end_offset_ns(self) -> int:
        return self.start_offset_ns + self.latency_ns


@dataclass(frozen=True)
class MonitorLibcTotals:
    lookups: int  # rows: ok + failed
    ok: int
    failed: int
    skipped: int  # due while max_in_flight were running, so not started
    unfinished: int  # still running when monitor gave up waiting for them (no row)
    chase_given_up: int = 0  # chased names dropped without an answer, chase_give_up_s after their chase


@dataclass(frozen=True)
class MonitorSocketTotals:
    queries: int  # rows: ok + failed
    ok: int
    failed: int
    late: int  # replies that came after their query's timeout row


@dataclass(frozen=True)
class MonitorTotals:
    libc: MonitorLibcTotals
    socket: MonitorSocketTotals


@dataclass(frozen=True)
class MonitorEnd:
    """`monitor`'s last line: why it stopped, the totals over all rows, the first text of each error."""

    stopped: str  # protocol.MONITOR_STOPS: "stdin" (a line that is no JSON object, or end-of-file) or "duration"
    elapsed_ns: int
    totals: MonitorTotals
    errors: Mapping[int, str]  # error_code -> first message seen, both clients


@dataclass(frozen=True)
class MonitorChased:
    """A `chased` line: names the monitor now chases (a line on its stdin, or its chase argument),
    asked through the libc until each answers once; their rows' name_index is first_index + i."""

    names: tuple[str, ...]
    first_index: int

    @property
    def indexes(self) -> range:
        return range(self.first_index, self.first_index + len(self.names))


@dataclass(frozen=True)
class MonitorStdinError:
    """An `error` line: a stdin line that was a JSON object but no valid chase request, ignored
    (the run goes on)."""

    error: str


MonitorLine = MonitorStart | list[MonitorRow] | MonitorChased | MonitorStdinError | MonitorEnd

ProbeResult = ProbeInfo | LookupResult | QueryResult | CaptureResult | HttpResult | LoadResult
