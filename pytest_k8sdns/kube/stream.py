"""A command kept running in a pod with stdin open, its stdout read line by line as it comes.

`kube.pods.exec_in_pod` runs a command to its end; this is for one that runs until told to stop
(the probe's `monitor`): the host reads its lines while it runs and stops it with a line on stdin.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kubernetes.stream import stream

from pytest_k8sdns.kube.client import Cluster
from pytest_k8sdns.kube.pods import ExecResult, _exit_code


class ExecStream:
    """One exec with stdin open. Not thread-safe: one reader at a time (the monitor gives each
    stream one thread)."""

    def __init__(self, cluster: Cluster, namespace: str, pod: str, command: list[str]) -> None:
        self.where = f"pod {namespace}/{pod}"
        self._resp: Any = cluster.call(
            "create", "pods/exec", namespace, stream, cluster.exec_api.connect_get_namespaced_pod_exec,
            pod, namespace, command=command, stdin=True, stdout=True, stderr=True, tty=False,
            _preload_content=False, _request_timeout=None,
        )
        self._partial = ""
        self._stderr: list[str] = []
        self._status = ""
        self._closed = False

    @property
    def running(self) -> bool:
        return not self._closed and bool(self._resp.is_open())

    def lines(self, timeout_s: float) -> list[str]:
        """The complete stdout lines that arrived within `timeout_s` (none is fine); once the
        command has ended, also its last line without a newline."""
        if self._closed:
            return []
        resp = self._resp
        if resp.is_open():
            resp.update(timeout=timeout_s)
        chunk = resp.read_stdout() if resp.peek_stdout() else ""
        if resp.peek_stderr():
            self._stderr.append(resp.read_stderr())
        text = self._partial + chunk
        *done, self._partial = text.split("\n")
        if not resp.is_open():
            self._status = resp.read_channel(3) or self._status
            if self._partial:
                done.append(self._partial)
                self._partial = ""
        return [line for line in done if line.strip()]

    def send(self, text: str) -> None:
        """Write to the command's stdin (a closed stream ignores it: the command has ended)."""
        if self.running:
            with contextlib.suppress(Exception):  # the server closed meanwhile: nothing to tell
                self._resp.write_stdin(text)

    def close(self) -> ExecResult:
        """Close the stream; the exit status and stderr seen (stdout was given out by lines())."""
        if not self._closed:
            self._closed = True
            resp = self._resp
            with contextlib.suppress(Exception):
                if resp.peek_stderr():
                    self._stderr.append(resp.read_stderr())
                if not self._status and not resp.is_open():
                    self._status = resp.read_channel(3)
            resp.close()
            sock = getattr(resp, "sock", None)  # websocket-client skips this when the server closed first
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.shutdown()
        code = _exit_code(self._status) if self._status else (0 if not self._stderr else 1)
        return ExecResult("", "".join(self._stderr), code)
