"""The probe protocol, written once: commands, document version, row columns, error codes and limits.

Shared by the payload (inside the pod, packed into the zipapp beside it), build.py and the schemas,
so it imports nothing but the stdlib and must stay valid Python 3.8.
"""

from __future__ import annotations

import socket

# Bumped whenever a document's shape changes; the host refuses documents of another version.
# 2: query replies carry structured records (answer, authority, additional) instead of text lines.
# 3: lookup and burst take stop_rules; their documents carry stopped (now also "verdict") and stop_rule.
# 4: `monitor`, the one streaming command: NDJSON lines (start, rows..., end) until told to stop;
#    a {"chase": [names]} line on its stdin adds names it asks until each answers once.
# (`serve`, added later, streams its own lines and changes no earlier document: still 4.)
# 5: lookup and burst documents carry in_flight: the lookups still running when a stop rule ended
#    the run (a rule on latency of any outcome counts them from the moment they pass its bound);
#    capture takes resend_s and its document counts the forwarder's upstream resends (resent).
PROBE_VERSION = 5

COMMANDS = ("info", "lookup", "burst", "query", "capture", "http", "monitor", "serve", "load")

# Lookup rows are compact integer arrays (a run keeps up to MAX_LOOKUPS of them), named by these.
LOOKUP_COLUMNS = ("name_index", "start_offset_ns", "latency_ns", "ok", "error_code", "n_addrs")
BURST_COLUMNS = LOOKUP_COLUMNS + ("burst",)
# A lookup still running when a stop rule ended its run: how long it had been waited for.
IN_FLIGHT_COLUMNS = ("name_index", "start_offset_ns", "waited_ns")
BURST_IN_FLIGHT_COLUMNS = IN_FLIGHT_COLUMNS + ("burst",)
CAPTURE_COLUMNS = ("qname", "qtype", "proto")
# Monitor rows, streamed in its "rows" lines in the order they finish; client indexes CLIENTS.
MONITOR_COLUMNS = ("client", "name_index", "start_offset_ns", "latency_ns", "ok", "error_code")
CLIENTS = ("libc", "socket")  # libc getaddrinfo; raw queries from one UDP socket that keeps its port
# chased: names a chase line (or the chase argument) added, and their first name_index; error: a
# stdin line that was a JSON object but no valid chase request, ignored (the run goes on).
MONITOR_EVENTS = ("start", "rows", "chased", "error", "end")
MONITOR_STOPS = ("stdin", "duration")  # a line that is no JSON object, or end-of-file; the duration_s safety stop
# `serve`: a DNS server on the pod's IP, authoritative for one test name's zone, until any line or
# end-of-file on stdin (or duration_s). Lines: start (listening), one per query (the first
# MAX_SERVED_LINES; later ones are only counted), end. Outcomes of a query, by its reply:
SERVE_EVENTS = ("start", "query", "end")
SERVE_OUTCOMES = ("answer", "nodata", "nxdomain", "refused", "formerr", "notimp")
SERVE_STOPS = ("stdin", "duration")
MAX_SERVED_LINES = 200  # query lines printed; a host that reads late must not block the server

# getaddrinfo's "try again" as the probe reports it from the pod (Linux: glibc and musl share -3,
# whatever the host running pytest calls it): no answer in time, or SERVFAIL.
EAI_AGAIN = -3
# error_code values that are not getaddrinfo's EAI_* codes (those are negative, never 0).
ERR_ENCODE = -1000  # the name cannot be encoded (IDNA/Unicode error in Python; monitor's socket: not ASCII)
ERR_OTHER = -1001  # any other exception raised around getaddrinfo
# monitor's socket client only; a reply whose rcode is not NOERROR gives that rcode instead (1..15).
ERR_TIMEOUT = -1002  # no reply within timeout_s (one arriving later is only counted, as late)
ERR_EMPTY = -1003  # NOERROR with no answer record (ancount 0)
ERR_SEND = -1004  # sendto raised OSError

FAMILIES = {"any": socket.AF_UNSPEC, "inet": socket.AF_INET, "inet6": socket.AF_INET6}
SOCKTYPES = {"any": 0, "stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM}
LIBCS = ("glibc", "musl", "unknown")
STOP_REASONS = ("count", "duration", "limit", "verdict")  # verdict: a stop rule tripped
# Early-stop rules of lookup and burst: a row matches by its outcome (failed: ok == 0) and latency.
STOP_OUTCOMES = ("failed", "ok", "any")
STOP_RULE_KEYS = ("outcome", "min_latency_ns", "more_than")
MAX_STOP_RULES = 8
PROTOS = ("udp", "tcp")
# Who read the captured questions: dnspython, or the fallback for interpreters it does not run on.
PARSERS = ("dnspython", "builtin")

# Sections of a query reply, as dnspython names them, and the keys of each record in them.
SECTIONS = ("answer", "authority", "additional")
RECORD_KEYS = ("name", "ttl", "class", "type", "rdata")
# Record types whose rdata the payload also emits field by field (dnspython's attribute names),
# so the host never splits rdata text. Names are absolute text, counts are integers.
RDATA_FIELDS = {
    "SOA": ("mname", "rname", "serial", "refresh", "retry", "expire", "minimum"),
    "SRV": ("priority", "weight", "port", "target"),
    "MX": ("preference", "exchange"),
    "TXT": ("strings",),
}

MAX_NAMES = 1000
MAX_LOOKUPS = 2000000  # rows kept by `lookup`; past it the run stops with stopped="limit"
DEFAULT_MAX_LOOKUPS = 500000
MAX_DURATION_S = 3600.0
MAX_THREADS = 256
MAX_MONITOR_QPS = 1000.0  # per client
MONITOR_DRAIN_S = 30.0  # at stop, how long monitor waits for libc lookups in flight
MAX_STDIN_LINE = 1 << 20  # bytes of one line on monitor's stdin; a longer one is ignored (an error event)
MAX_CAPTURED = 20000  # queries kept by `capture`; further ones are forwarded but only counted
MAX_PENDING_UDP = 512  # upstream UDP exchanges in flight in the forwarder
MAX_TCP_CLIENTS = 32
MAX_HTTP_BYTES = 16 * 1024 * 1024

# `load` (the capacity ramp): raw UDP queries at paced rates, one document at the end. Latencies
# are counted in buckets: LOAD_BUCKETS_NS are the upper edges (15 % apart, 20 µs to 10 s); a
# histogram has one count more, for what took longer than the last edge.
LOAD_QTYPES = {"A": 1, "AAAA": 28, "SRV": 33, "PTR": 12, "TXT": 16}
LOAD_BUCKETS_NS = tuple(int(20_000 * 1.15**i) for i in range(95))
MAX_LOAD_QPS = 200000.0
MAX_LOAD_STEPS = 600
MAX_LOAD_SOCKETS = 64
LOAD_STOPS = ("done", "loss")  # every step sent; or two steps in a row lost more than stop_loss
