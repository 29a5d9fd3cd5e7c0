"""A stand-in Kubernetes API server for whole pytester sessions that test the plugin's own plumbing
(permission checks, namespaces of parallel workers, what reports contain), never the cluster: it
answers just the requests a run makes before and after its checks, and records them."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake", "gitCommit": "0", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}
NODE = {
    "metadata": {"name": "node-a"},
    "status": {
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1",
                     "kernelVersion": "6.1", "kubeProxyVersion": "v1.34.0", "kubeletVersion": "v1.34.0",
                     "machineID": "m", "operatingSystem": "linux", "osImage": "fake", "systemUUID": "u"},
    },
}


class FakeApi:
    """State and request log of the stand-in API server; start() it in a `with` block."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, list[dict[str, Any]]] = {}
        #: (verb, resource[/subresource]) pairs a SelfSubjectAccessReview answers "not allowed" to
        self.denied: set[tuple[str, str]] = set()
        self.status_for_all: int | None = None  # e.g. 401: every request is refused so
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.created_namespaces: list[str] = []
        self.deleted_namespaces: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                parts = urlsplit(self.path.rstrip("/") if self.path != "/" else self.path)
                with api._lock:
                    api.requests.append((method, parts.path, {k.lower(): v for k, v in self.headers.items()}))
                    status, doc = api.handle(method, parts.path, parse_qs(parts.query), body)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # -- the API -------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if self.status_for_all:
            return self.status_for_all, _status(self.status_for_all, "Unauthorized")
        if path == "/version":
            return 200, VERSION
        if method == "POST" and path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            attrs = body["spec"]["resourceAttributes"]
            resource = attrs["resource"] + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
            body["status"] = {"allowed": (attrs["verb"], resource) not in self.denied}
            return 201, body
        if path == "/api/v1/nodes":
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [NODE]}
        if method == "POST" and path == "/api/v1/namespaces":
            name = body["metadata"]["name"]
            self.namespaces[name] = body
            self.created_namespaces.append(name)
            return 201, body
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)", path)
        if m and method == "DELETE":
            self.deleted_namespaces.append(m.group(1))
            return (200, self.namespaces.pop(m.group(1))) if m.group(1) in self.namespaces else (404, _status(404, "NotFound"))
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path)
        if m:
            ns = m.group(1)
            if method == "GET":
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self.pods.get(ns, [])}
            if method == "POST":
                if ns not in self.namespaces:
                    return 404, _status(404, "NotFound", f'namespaces "{ns}" not found')
                return 201, body  # only dry runs reach here
            if method == "DELETE":
                return 200, _status(200, "")
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/services", path):
            return 200, {"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": []}
        if re.fullmatch(r"/apis/apps/v1/namespaces/[^/]+/daemonsets", path):
            return 200, {"kind": "DaemonSetList", "apiVersion": "apps/v1", "metadata": {}, "items": []}
        return 404, _status(404, "NotFound", f"{method} {path} is not served by the fake API")

    def paths(self, method: str) -> Iterator[str]:
        return (p for m, p, _ in self.requests if m == method)


def _status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure" if code >= 400 else "Success",
            "reason": reason, "message": message or reason, "code": code}


def kubeconfig(server: str, token: str = "not-a-secret", client_key: str = "", client_cert: str = "") -> str:
    """A kubeconfig text with one context, `fake`, for server."""
    user = {"token": token}
    if client_key:
        user["client-key-data"] = client_key
    if client_cert:
        user["client-certificate-data"] = client_cert
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "fake", "context": {"cluster": "c", "user": "u"}}],
    })
