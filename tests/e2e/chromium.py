"""Load a local HTML file in Debian's headless chromium through the DevTools protocol: console
errors, every request the page made, what a script sees in the page, and a screenshot.

The browser gets no network: a fresh profile, no background or component traffic, and a host
resolver that resolves nothing, so a report that needs anything but itself shows failed loads.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclasses.dataclass
class Page:
    """What the browser saw."""

    console_errors: list[str]
    requests: list[str]
    failed_loads: list[str]
    facts: Any  # the value of the script given to load()
    screenshot: bytes


class _DevTools:
    def __init__(self, ws_url: str, timeout: float) -> None:
        import websocket  # websocket-client, a dependency of the kubernetes client

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, deadline: float) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == method:
                return
        raise TimeoutError(f"no {method} event from chromium before the deadline")

    def drain(self, seconds: float) -> None:
        self.ws.settimeout(seconds)
        with contextlib.suppress(Exception):
            while True:
                self.events.append(json.loads(self.ws.recv()))


@contextlib.contextmanager
def _browser(timeout: float) -> Iterator[str]:
    """Start chromium with a fresh profile; yield its page target's DevTools websocket URL."""
    binary = chromium_path()
    assert binary, "chromium is not installed (apt-get install chromium; substrate/install-host.sh does)"
    with tempfile.TemporaryDirectory(prefix="k8sdns-chromium-") as home, \
            open(Path(home, "stderr.log"), "wb") as log:
        profile = Path(home, "profile")
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    stderr = Path(home, "stderr.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"chromium did not open its DevTools port (exit {proc.poll()}): {stderr}")
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
            targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=timeout).read())
            yield next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def load(html: Path, script: str, width: int = 1280, height: int = 1500, timeout: float = 60) -> Page:
    """Open `html` (a local file), let its scripts run, evaluate `script` (an expression whose value
    is JSON-serialisable), and take a screenshot of the first width x height pixels."""
    with _browser(timeout) as ws_url:
        dt = _DevTools(ws_url, timeout)
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                dt.call(f"{domain}.enable")
            dt.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            dt.call("Page.navigate", url=html.resolve().as_uri())
            dt.wait_for("Page.loadEventFired", time.monotonic() + timeout)
            dt.drain(1.0)  # pytest-html builds its table from a script after load
            dt.ws.settimeout(timeout)
            facts = dt.call("Runtime.evaluate", expression=f"JSON.stringify({script})", returnByValue=True)
            if "exceptionDetails" in facts:
                raise RuntimeError(f"the check script failed in the page: {facts['exceptionDetails']}")
            shot = dt.call("Page.captureScreenshot", format="png")
        finally:
            dt.ws.close()
    errors, requests, failed = [], [], []
    for e in dt.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            failed.append(f"{params.get('requestId')}: {params.get('errorText')}")
    return Page(errors, requests, failed, json.loads(facts["result"]["value"]), base64.b64decode(shot["data"]))
