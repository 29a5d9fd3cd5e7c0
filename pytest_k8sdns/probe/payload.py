"""The DNS probe that runs inside probe pods: `python3 probe.pyz <command> '<json args>'`.

Standalone on purpose: stdlib plus the dnspython bundled beside it in the zipapp, Python 3.8+,
glibc or a static musl CPython without _ssl, _hashlib, _ctypes, _bz2, _lzma or _sqlite3.
It prints exactly one JSON document on stdout; on failure {"error": ..., "command": ...} and exit
code 2, with the traceback on stderr. It reads no file but /etc/resolv.conf, and sends DNS traffic
only to the servers named in its arguments and through the libc's own resolver.

Commands (argument and output shapes are checked on the host by pytest_k8sdns.probe.schema):
  info    interpreter, libc, hostname, /etc/resolv.conf, pid
  lookup  paced libc getaddrinfo lookups, one compact row per lookup
  burst   bursts of parallel getaddrinfo lookups released together by a barrier
  query   raw dnspython queries to one server over UDP or TCP
  record  a recording DNS forwarder on <listen>:53 and one libc lookup per name through it
  http    one plain-HTTP GET of a given URL (metrics, health endpoints), no proxy
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, cast

PROBE_VERSION = 1
RESOLV_CONF = "/etc/resolv.conf"

LOOKUP_COLUMNS = ["name_index", "start_offset_ns", "latency_ns", "ok", "error_code", "n_addrs"]
BURST_COLUMNS = LOOKUP_COLUMNS + ["burst"]
RECORD_COLUMNS = ["qname", "qtype", "proto"]

# error_code values that are not getaddrinfo's EAI_* codes (those are negative, never 0).
ERR_ENCODE = -1000  # the name cannot be encoded (IDNA/Unicode error in Python)
ERR_OTHER = -1001  # any other exception raised around getaddrinfo

MAX_NAMES = 1000
MAX_LOOKUPS = 2000000  # rows kept by `lookup`; past it the run stops with stopped="limit"
DEFAULT_MAX_LOOKUPS = 500000
MAX_DURATION_S = 3600.0
MAX_THREADS = 256
MAX_RECORDS = 20000  # queries kept by `record`; further ones are forwarded but only counted
MAX_PENDING_UDP = 512  # upstream UDP exchanges in flight in the forwarder
MAX_TCP_CLIENTS = 32

FAMILIES = {"any": socket.AF_UNSPEC, "inet": socket.AF_INET, "inet6": socket.AF_INET6}
SOCKTYPES = {"any": 0, "stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM}
RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
}
QTYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    13: "HINFO",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    64: "SVCB",
    65: "HTTPS",
    255: "ANY",
}

mono = time.monotonic_ns


class ArgError(Exception):
    """Bad or missing arguments: the message says which one and what is allowed."""


class ProbeFailure(Exception):
    """The probe could not do its work (port in use, dnspython unusable): a one-line reason."""


# ---- arguments ---------------------------------------------------------------------------------


def _arg(
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


def _ip_arg(args: dict[str, Any], key: str, default: str | None = None, required: bool = False) -> Any:
    value = _arg(args, key, str, default, required)
    if value is not None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ArgError(f"argument {key!r}={value!r} is not an IP address") from None
    return value


def _read_resolv_conf() -> tuple[str | None, str | None]:
    """(text, error): the pod's resolver configuration, the only file the probe reads."""
    try:
        with open(RESOLV_CONF, "rb") as fh:
            return fh.read().decode("utf-8", "replace"), None
    except OSError as exc:
        return None, f"{RESOLV_CONF}: {exc.strerror or exc}"


# ---- info --------------------------------------------------------------------------------------


def _detect_libc() -> tuple[str, str | None, str]:
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
        return "musl", None, loaders[0]
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


def _dnspython_version() -> str | None:
    try:
        import dns.version

        return dns.version.version
    except Exception:
        return None


def cmd_info(args: dict[str, Any]) -> dict[str, Any]:
    import platform

    libc, libc_version, evidence = _detect_libc()
    text, error = _read_resolv_conf()
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


# ---- libc lookups (lookup, burst) --------------------------------------------------------------


class _Lookups:
    """Shared state of one run of libc lookups: names, first addresses, error texts."""

    def __init__(self, names: list[str], family: int, socktype: int) -> None:
        self.names = names
        self.family = family
        self.socktype = socktype
        self.addresses: list[list[str] | None] = [None] * len(names)
        self.errors: dict[int, str] = {}

    def one(self, idx: int, t0: int) -> list[int]:
        """Do one getaddrinfo of names[idx]; return its row (without the burst column)."""
        name = self.names[idx]
        start = mono()
        try:
            res = socket.getaddrinfo(name, None, self.family, self.socktype)
        except socket.gaierror as exc:
            end = mono()
            code = exc.errno if isinstance(exc.errno, int) and exc.errno else ERR_OTHER
            self._error(code, exc)
            return [idx, start - t0, end - start, 0, code, 0]
        except UnicodeError as exc:
            end = mono()
            self._error(ERR_ENCODE, exc)
            return [idx, start - t0, end - start, 0, ERR_ENCODE, 0]
        except Exception as exc:
            end = mono()
            self._error(ERR_OTHER, exc)
            return [idx, start - t0, end - start, 0, ERR_OTHER, 0]
        end = mono()
        addrs = {ai[4][0] for ai in res}
        if self.addresses[idx] is None:
            self.addresses[idx] = sorted(str(addr) for addr in addrs)
        return [idx, start - t0, end - start, 1, 0, len(addrs)]

    def _error(self, code: int, exc: BaseException) -> None:
        if code not in self.errors:
            self.errors[code] = f"{type(exc).__name__}: {exc}"

    def document(self, rows: list[list[int]], elapsed_ns: int) -> dict[str, Any]:
        ok = sum(row[3] for row in rows)
        return {
            "names": self.names,
            "family": _key_of(FAMILIES, self.family),
            "socktype": _key_of(SOCKTYPES, self.socktype),
            "lookups": rows,
            "addresses": self.addresses,
            "errors": {str(code): text for code, text in sorted(self.errors.items())},
            "totals": {
                "lookups": len(rows),
                "ok": ok,
                "failed": len(rows) - ok,
                "elapsed_ns": elapsed_ns,
                "rate_per_s": round(len(rows) / (elapsed_ns / 1e9), 3) if elapsed_ns > 0 else 0.0,
            },
        }


def _key_of(table: Mapping[str, int], value: int) -> str:
    for key, val in table.items():
        if val == value:
            return key
    return str(value)


def _lookup_args(args: dict[str, Any]) -> _Lookups:
    names = _arg(args, "names", list, required=True)
    family = FAMILIES[_arg(args, "family", str, "any", choices=FAMILIES)]
    socktype = SOCKTYPES[_arg(args, "socktype", str, "any", choices=SOCKTYPES)]
    return _Lookups(names, family, socktype)


def cmd_lookup(args: dict[str, Any]) -> dict[str, Any]:
    run = _lookup_args(args)
    count = _arg(args, "count", int, None, lo=1, hi=MAX_LOOKUPS)
    duration_s = _arg(args, "duration_s", float, None, lo=0.0, hi=MAX_DURATION_S)
    qps = _arg(args, "qps", float, 0.0, lo=0.0, hi=1e6)
    concurrency = _arg(args, "concurrency", int, 1, lo=1, hi=MAX_THREADS)
    max_lookups = _arg(args, "max_lookups", int, DEFAULT_MAX_LOOKUPS, lo=1, hi=MAX_LOOKUPS)
    if count is None and duration_s is None:
        count = len(run.names)
    limit = min(count, max_lookups) if count is not None else max_lookups
    n_names = len(run.names)
    period_ns = 1e9 / qps if qps > 0 else 0.0
    duration_ns = int(duration_s * 1e9) if duration_s is not None else None
    counter = itertools.count()  # next() on it is atomic under the GIL: the shared ticket
    stopped: list[str] = []
    t0 = mono()
    deadline = t0 + duration_ns if duration_ns is not None else None

    def worker(rows: list[list[int]]) -> None:
        one = run.one
        append = rows.append
        while True:
            i = next(counter)
            if i >= limit:
                stopped.append("count" if count is not None and i >= count else "limit")
                return
            if period_ns:
                due = t0 + int(i * period_ns)
                if deadline is not None and due >= deadline:
                    stopped.append("duration")
                    return
                wait = due - mono()
                if wait > 0:
                    time.sleep(wait / 1e9)
            elif deadline is not None and mono() >= deadline:
                stopped.append("duration")
                return
            append(one(i % n_names, t0))

    per_thread: list[list[list[int]]] = [[] for _ in range(concurrency)]
    if concurrency == 1:
        worker(per_thread[0])
    else:
        threads = [threading.Thread(target=worker, args=(rows,), daemon=True) for rows in per_thread]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = mono() - t0
    rows = sorted(itertools.chain.from_iterable(per_thread), key=lambda row: row[1])
    doc = run.document(rows, elapsed)
    doc.update(
        {
            "columns": LOOKUP_COLUMNS,
            "qps": qps,
            "concurrency": concurrency,
            "count": count,
            "duration_s": duration_s,
            "stopped": next((why for why in ("limit", "duration") if why in stopped), "count"),
        }
    )
    return doc


def cmd_burst(args: dict[str, Any]) -> dict[str, Any]:
    run = _lookup_args(args)
    bursts = _arg(args, "bursts", int, 1, lo=1, hi=100000)
    parallel = _arg(args, "parallel", int, 2, lo=1, hi=MAX_THREADS)
    interval_s = _arg(args, "interval_s", float, 1.0, lo=0.0, hi=MAX_DURATION_S)
    if bursts * parallel > MAX_LOOKUPS:
        raise ArgError(f"bursts x parallel = {bursts * parallel} lookups; at most {MAX_LOOKUPS}")
    interval_ns = int(interval_s * 1e9)
    n_names = len(run.names)
    # The barrier holds each burst's threads until all are there, so their lookups start together
    # (and, through a DNAT'ed service IP, race in conntrack as real clients do).
    barrier = threading.Barrier(parallel)
    failures: list[str] = []
    t0 = mono()

    def worker(j: int, rows: list[list[int]]) -> None:
        try:
            for b in range(bursts):
                wait = t0 + b * interval_ns - mono()
                if wait > 0:
                    time.sleep(wait / 1e9)
                barrier.wait(timeout=120)
                row = run.one((b * parallel + j) % n_names, t0)
                row.append(b)
                rows.append(row)
        except threading.BrokenBarrierError:
            failures.append("burst barrier broken (a thread stalled for 120 s)")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()

    per_thread: list[list[list[int]]] = [[] for _ in range(parallel)]
    threads = [threading.Thread(target=worker, args=(j, rows), daemon=True) for j, rows in enumerate(per_thread)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise ProbeFailure(failures[0])
    elapsed = mono() - t0
    rows = sorted(itertools.chain.from_iterable(per_thread), key=lambda row: (row[6], row[1]))
    doc = run.document(rows, elapsed)
    doc.update({"columns": BURST_COLUMNS, "bursts": bursts, "parallel": parallel, "interval_s": interval_s})
    return doc


# ---- query (dnspython) -------------------------------------------------------------------------


def _import_dnspython() -> Any:
    try:
        import dns.exception
        import dns.flags
        import dns.message
        import dns.query
        import dns.rcode
        import dns.rdatatype
        import dns.reversename
    except (ImportError, SyntaxError, TypeError, AttributeError) as exc:
        raise ProbeFailure(
            f"the dnspython bundled in the probe does not import on Python {sys.version.split()[0]} "
            f"({type(exc).__name__}: {exc}); "
            "use a probe image with a newer Python"
        ) from exc
    return dns


def _rrset_lines(section: Iterable[Any]) -> tuple[list[str], list[int]]:
    lines: list[str] = []
    ttls: list[int] = []
    for rrset in section:
        for line in rrset.to_text().splitlines():
            lines.append(line)
            ttls.append(rrset.ttl)
    return lines, ttls


def cmd_query(args: dict[str, Any]) -> dict[str, Any]:
    server = _ip_arg(args, "server", required=True)
    port = _arg(args, "port", int, 53, lo=1, hi=65535)
    name = _arg(args, "name", str, required=True)
    rdtype_text = _arg(args, "rdtype", str, "A").upper()
    tcp = _arg(args, "tcp", bool, False)
    timeout = _arg(args, "timeout", float, 2.0, lo=0.001, hi=60.0)
    count = _arg(args, "count", int, 1, lo=1, hi=100000)
    dns = _import_dnspython()
    try:
        rdtype = dns.rdatatype.from_text(rdtype_text)
    except Exception:
        raise ArgError(f"argument 'rdtype'={rdtype_text!r} is not a DNS record type") from None
    qname = name
    if rdtype == dns.rdatatype.PTR:
        try:  # PTR of an address: ask for its reverse name
            qname = dns.reversename.from_address(name).to_text()
        except Exception:
            pass
    exchange = dns.query.tcp if tcp else dns.query.udp
    replies = []
    for _ in range(count):
        message = dns.message.make_query(qname, rdtype)
        start = mono()
        try:
            if tcp:
                response = exchange(message, server, timeout=timeout, port=port)
            else:
                response = exchange(message, server, timeout=timeout, port=port, ignore_unexpected=True)
        except dns.exception.Timeout:
            replies.append(_no_reply(mono() - start, f"timeout after {timeout}s"))
            continue
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            replies.append(_no_reply(mono() - start, f"{type(exc).__name__}: {exc}"))
            continue
        latency = mono() - start
        answers, ttls = _rrset_lines(response.answer)
        authority, _ = _rrset_lines(response.authority)
        replies.append(
            {
                "latency_ns": latency,
                "rcode": dns.rcode.to_text(response.rcode()),
                "error": None,
                "flags": dns.flags.to_text(response.flags).split(),
                "answers": answers,
                "ttls": ttls,
                "authority": authority,
            }
        )
    ok = sum(1 for reply in replies if reply["error"] is None)
    return {
        "server": server,
        "port": port,
        "name": name,
        "qname": qname,
        "rdtype": dns.rdatatype.to_text(rdtype),
        "tcp": tcp,
        "timeout": timeout,
        "replies": replies,
        "totals": {"queries": len(replies), "ok": ok, "failed": len(replies) - ok},
    }


def _no_reply(latency: int, error: str) -> dict[str, Any]:
    return {
        "latency_ns": latency,
        "rcode": None,
        "error": error,
        "flags": [],
        "answers": [],
        "ttls": [],
        "authority": [],
    }


# ---- record: a recording forwarder on <listen>:53 ----------------------------------------------


def _question_builtin(wire: bytes) -> tuple[str, str]:
    """(qname, qtype) from a query's first question, without dnspython (compressed names refused)."""
    if len(wire) < 17 or struct.unpack_from("!H", wire, 4)[0] < 1:
        raise ValueError("no question")
    pos = 12
    labels: list[str] = []
    while True:
        length = wire[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed name in question")
        labels.append(wire[pos : pos + length].decode("ascii", "backslashreplace"))
        pos += length
    (qtype,) = struct.unpack_from("!H", wire, pos)
    return ".".join(labels) + ".", QTYPES.get(qtype, f"TYPE{qtype}")


def _question_parser() -> tuple[Callable[[bytes], tuple[str, str]], str]:
    """dnspython's parser when it imports here, else the small built-in one: (parse, its name)."""
    try:
        import dns.message
        import dns.rdatatype
    except (ImportError, SyntaxError, TypeError, AttributeError):
        return _question_builtin, "builtin"

    def parse(wire: bytes) -> tuple[str, str]:
        question = dns.message.from_wire(wire, question_only=True).question
        if not question:
            raise ValueError("no question")
        return question[0].name.to_text(), dns.rdatatype.to_text(question[0].rdtype)

    return parse, "dnspython"


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _Recorder:
    """Relays raw DNS messages between the libc and the upstreams, noting each query's question.

    UDP runs in one selector thread (one connected upstream socket per query, so replies find
    their client); each TCP client gets a thread. Memory is bounded: MAX_RECORDS questions,
    MAX_PENDING_UDP exchanges in flight, MAX_TCP_CLIENTS connections.
    """

    def __init__(self, listen: str, upstreams: list[str], port: int, timeout_s: float) -> None:
        self.upstreams = upstreams
        self.port = port
        self.timeout_ns = int(timeout_s * 1e9)
        self.parse, self.parser = _question_parser()
        self.lock = threading.Lock()
        self.events: list[list[Any]] = []  # [qname, qtype, proto, rcode or None, arrival_ns]
        self.last_arrival = 0
        self.dropped = 0
        self.unanswered = 0
        self.stopping = False
        family = socket.AF_INET6 if ":" in listen else socket.AF_INET
        self.udp = socket.socket(family, socket.SOCK_DGRAM)
        self.tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.udp.bind((listen, 53))
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind((listen, 53))
            self.tcp.listen(16)
        except OSError as exc:
            self.close()
            raise ProbeFailure(
                f"cannot listen on {listen}:53 ({exc.strerror or exc}); give the pod securityContext sysctl "
                "net.ipv4.ip_unprivileged_port_start=0 or run it as root"
            ) from exc
        self.udp.setblocking(False)
        self.tcp.setblocking(False)
        self.wake_r, self.wake_w = socket.socketpair()
        self.tcp_slots = threading.BoundedSemaphore(MAX_TCP_CLIENTS)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass
        self.thread.join(5)
        self.close()

    def close(self) -> None:
        for sock in (self.udp, self.tcp, getattr(self, "wake_r", None), getattr(self, "wake_w", None)):
            if sock is not None:
                sock.close()

    def mark(self) -> tuple[int, int]:
        with self.lock:
            return len(self.events), self.last_arrival

    def _note(self, wire: bytes, proto: str) -> int:
        try:
            qname, qtype = self.parse(wire)
        except Exception:
            qname, qtype = "", "?"
        now = mono()
        with self.lock:
            self.last_arrival = now
            if len(self.events) >= MAX_RECORDS:
                self.dropped += 1
                return -1
            self.events.append([qname, qtype, proto, None, now])
            return len(self.events) - 1

    def _answered(self, idx: int, reply: bytes) -> None:
        if idx >= 0 and len(reply) >= 4:
            with self.lock:
                if self.events[idx][3] is None:
                    code = reply[3] & 0x0F
                    self.events[idx][3] = RCODES.get(code, f"RCODE{code}")

    # UDP and the accept loop ----------------------------------------------------------------

    def _send_upstream(
        self, sel: selectors.BaseSelector, pending: dict[socket.socket, dict[str, Any]], exchange: dict[str, Any]
    ) -> bool:
        """Send exchange's query to its current upstream; False once no upstream is left."""
        while exchange["upstream"] < len(self.upstreams):
            server = self.upstreams[exchange["upstream"]]
            sock = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect((server, self.port))
                sock.send(exchange["wire"])
            except OSError:
                sock.close()
                exchange["upstream"] += 1
                continue
            exchange["deadline"] = mono() + self.timeout_ns
            pending[sock] = exchange
            sel.register(sock, selectors.EVENT_READ, exchange)
            return True
        return False

    def _drop(
        self, sel: selectors.BaseSelector, pending: dict[socket.socket, dict[str, Any]], sock: socket.socket
    ) -> None:
        sel.unregister(sock)
        del pending[sock]
        sock.close()

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ, "udp")
        sel.register(self.tcp, selectors.EVENT_READ, "tcp")
        sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        pending: dict[socket.socket, dict[str, Any]] = {}
        try:
            while not self.stopping:
                for key, _ in sel.select(0.05):
                    if key.data == "udp":
                        self._udp_queries(sel, pending)
                    elif key.data == "tcp":
                        self._accept()
                    elif key.data == "wake":
                        self.wake_r.recv(64)
                    else:
                        self._udp_reply(sel, pending, cast(socket.socket, key.fileobj), key.data)
                now = mono()
                for sock, exchange in list(pending.items()):
                    if now >= exchange["deadline"]:
                        self._drop(sel, pending, sock)
                        exchange["upstream"] += 1
                        if not self._send_upstream(sel, pending, exchange):
                            self.unanswered += 1  # the libc's own retry will show as a new query
        finally:
            for sock in list(pending):
                self._drop(sel, pending, sock)
            sel.close()

    def _udp_queries(self, sel: selectors.BaseSelector, pending: dict[socket.socket, dict[str, Any]]) -> None:
        while True:
            try:
                wire, client = self.udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            idx = self._note(wire, "udp")
            if len(pending) >= MAX_PENDING_UDP:
                self.unanswered += 1
                continue
            exchange = {"client": client, "wire": wire, "upstream": 0, "deadline": 0, "idx": idx}
            if not self._send_upstream(sel, pending, exchange):
                self.unanswered += 1

    def _udp_reply(
        self,
        sel: selectors.BaseSelector,
        pending: dict[socket.socket, dict[str, Any]],
        sock: socket.socket,
        exchange: dict[str, Any],
    ) -> None:
        try:
            reply = sock.recv(65535)
        except OSError:  # ICMP unreachable from that upstream: try the next one
            self._drop(sel, pending, sock)
            exchange["upstream"] += 1
            if not self._send_upstream(sel, pending, exchange):
                self.unanswered += 1
            return
        self._drop(sel, pending, sock)
        self._answered(exchange["idx"], reply)
        try:
            self.udp.sendto(reply, exchange["client"])
        except OSError:
            pass

    # TCP --------------------------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            conn, _ = self.tcp.accept()
        except OSError:
            return
        if not self.tcp_slots.acquire(blocking=False):
            conn.close()
            return
        threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        upstream = None
        try:
            conn.setblocking(True)
            conn.settimeout(10)
            while not self.stopping:
                header = _recv_exact(conn, 2)
                if header is None:
                    return
                wire = _recv_exact(conn, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                idx = self._note(wire, "tcp")
                reply = None
                for server in self.upstreams:
                    try:
                        if upstream is None:
                            upstream = socket.create_connection((server, self.port), self.timeout_ns / 1e9)
                        upstream.sendall(header + wire)
                        length = _recv_exact(upstream, 2)
                        reply = _recv_exact(upstream, struct.unpack("!H", length)[0]) if length else None
                    except OSError:
                        reply = None
                    if reply is not None:
                        break
                    if upstream is not None:
                        upstream.close()
                        upstream = None
                if reply is None:
                    self.unanswered += 1
                    return
                self._answered(idx, reply)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            if upstream is not None:
                upstream.close()
            conn.close()
            self.tcp_slots.release()


def _nameservers(text: str | None) -> list[str]:
    servers = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def cmd_record(args: dict[str, Any]) -> dict[str, Any]:
    upstreams = _arg(args, "upstream", list, required=True)
    for server in upstreams:
        _ip_arg({"upstream": server}, "upstream")
    port = _arg(args, "port", int, 53, lo=1, hi=65535)
    listen = _ip_arg(args, "listen", "127.0.0.1")
    names = _arg(args, "names", list, required=True)
    family = FAMILIES[_arg(args, "family", str, "any", choices=FAMILIES)]
    quiet_s = _arg(args, "quiet_s", float, 0.2, lo=0.0, hi=5.0)
    timeout = _arg(args, "timeout", float, 3.0, lo=0.01, hi=30.0)
    if listen in upstreams and port == 53:
        raise ArgError(f"upstream {listen}:53 is the recorder's own address; that would loop")
    text, error = _read_resolv_conf()
    warnings = []
    if error:
        warnings.append(error)
    elif listen not in _nameservers(text):
        warnings.append(
            f"{RESOLV_CONF} lists nameservers {_nameservers(text)}, not {listen}: "
            "the libc will not send its queries through the recorder"
        )
    recorder = _Recorder(listen, upstreams, port, timeout)
    recorder.start()
    quiet_ns = int(quiet_s * 1e9)
    max_quiet_ns = max(2 * quiet_ns, int(2e9))
    lookups = []
    try:
        first, _ = recorder.mark()
        for name in names:
            begin, _ = recorder.mark()
            start = mono()
            outcome: dict[str, Any] = {"name": name, "ok": True, "error_code": 0, "error": None, "addresses": []}
            try:
                res = socket.getaddrinfo(name, None, family)
                outcome["addresses"] = sorted({str(ai[4][0]) for ai in res})
            except socket.gaierror as exc:
                outcome.update(ok=False, error_code=exc.errno or ERR_OTHER, error=str(exc))
            except UnicodeError as exc:
                outcome.update(ok=False, error_code=ERR_ENCODE, error=str(exc))
            end = mono()
            # Quiet period: a query the libc sent late (a retry) belongs to this name, not the next.
            while True:
                _, last = recorder.mark()
                now = mono()
                until = min(max(end, last) + quiet_ns, end + max_quiet_ns)
                if now >= until:
                    break
                time.sleep((until - now) / 1e9)
            with recorder.lock:
                events = [list(event) for event in recorder.events[begin:]]
            outcome["latency_ns"] = end - start
            outcome["queries"] = [event[:3] for event in events]
            outcome["rcodes"] = [event[3] for event in events]
            outcome["late_queries"] = sum(1 for event in events if event[4] > end)
            lookups.append(outcome)
    finally:
        recorder.stop()
    return {
        "listen": listen,
        "upstream": upstreams,
        "port": port,
        "family": _key_of(FAMILIES, family),
        "resolv_conf": text,
        "warnings": warnings,
        "parser": recorder.parser,
        "columns": RECORD_COLUMNS,
        "lookups": lookups,
        "unattributed": [event[:3] for event in recorder.events[:first]],
        "dropped": recorder.dropped,
        "unanswered": recorder.unanswered,
    }


# ---- http: metrics and health endpoints ----------------------------------------------------------

MAX_HTTP_BYTES = 16 * 1024 * 1024


def cmd_http(args: dict[str, Any]) -> dict[str, Any]:
    import http.client
    from urllib.parse import urlsplit

    url = _arg(args, "url", str, required=True)
    timeout = _arg(args, "timeout", float, 10.0, lo=0.01, hi=300.0)
    max_bytes = _arg(args, "max_bytes", int, 4 * 1024 * 1024, lo=1, hi=MAX_HTTP_BYTES)
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ArgError(f"argument 'url'={url!r} must be an http:// URL with a host")
    # http.client, not urllib.request: no proxy from the environment, only the given host.
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    start = mono()
    try:
        path = parts.path or "/"
        conn.request("GET", path + ("?" + parts.query if parts.query else ""), headers={"Accept": "*/*"})
        response = conn.getresponse()
        body = response.read(max_bytes + 1)
        latency = mono() - start
        headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        conn.close()
    return {
        "url": url,
        "status": response.status,
        "reason": response.reason,
        "headers": headers,
        "body": body[:max_bytes].decode("utf-8", "replace"),
        "truncated": len(body) > max_bytes,
        "latency_ns": latency,
    }


# ---- entry point -------------------------------------------------------------------------------

COMMANDS = {
    "info": cmd_info,
    "lookup": cmd_lookup,
    "burst": cmd_burst,
    "query": cmd_query,
    "record": cmd_record,
    "http": cmd_http,
}


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, separators=(",", ":"), allow_nan=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    try:
        if command not in COMMANDS:
            raise ArgError("unknown command {!r}; valid: {}".format(command, ", ".join(sorted(COMMANDS))))
        if len(argv) > 2:
            raise ArgError(f"expected <command> ['<json args>'], got {len(argv)} arguments")
        try:
            args = json.loads(argv[1]) if len(argv) == 2 else {}
        except ValueError as exc:
            raise ArgError(f"arguments are not JSON: {exc}") from None
        if not isinstance(args, dict):
            raise ArgError("arguments must be a JSON object")
        doc = {"command": command, "probe_version": PROBE_VERSION}
        doc.update(COMMANDS[command](args))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        _emit({"command": command, "probe_version": PROBE_VERSION, "error": f"{type(exc).__name__}: {exc}"})
        return 2
    _emit(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
