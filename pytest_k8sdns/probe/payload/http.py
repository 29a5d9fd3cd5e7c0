"""`http`: one plain-HTTP GET of a metrics or health endpoint from inside the pod, no proxy."""

from __future__ import annotations

from typing import Any

from ..protocol import MAX_HTTP_BYTES
from .common import ArgError, arg, mono


def cmd_http(args: dict[str, Any]) -> dict[str, Any]:
    import http.client
    from urllib.parse import urlsplit

    url = arg(args, "url", str, required=True)
    timeout = arg(args, "timeout", float, 10.0, lo=0.01, hi=300.0)
    max_bytes = arg(args, "max_bytes", int, 4 * 1024 * 1024, lo=1, hi=MAX_HTTP_BYTES)
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
