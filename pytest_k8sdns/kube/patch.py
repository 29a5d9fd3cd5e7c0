"""Patch one object and restore exactly what was there: the plugin's one primitive for changing a
cluster it created (faults, CoreDNS's forward) and undoing it.

A change is a set of JSON Pointer paths and their new values. `patched()` saves what each path
held (or that it was absent), applies the change as one JSON Patch, and on leaving the block,
also on failure and Ctrl-C, puts every path back: replaced with its old value or removed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pytest_k8sdns.kube.client import Cluster

_ABSENT = object()


@dataclasses.dataclass(frozen=True)
class Target:
    """One object the plugin may patch: how to read it and how to patch it."""

    cluster: Cluster
    resource: str
    namespace: str
    name: str
    read_fn: Callable[..., Any]
    patch_fn: Callable[..., Any]

    @classmethod
    def configmap(cls, cluster: Cluster, namespace: str, name: str) -> Target:
        return cls(cluster, "configmaps", namespace, name, cluster.core.read_namespaced_config_map,
                   cluster.core.patch_namespaced_config_map)

    @classmethod
    def deployment(cls, cluster: Cluster, namespace: str, name: str) -> Target:
        return cls(cluster, "deployments", namespace, name, cluster.apps.read_namespaced_deployment,
                   cluster.apps.patch_namespaced_deployment)

    @classmethod
    def daemonset(cls, cluster: Cluster, namespace: str, name: str) -> Target:
        return cls(cluster, "daemonsets", namespace, name, cluster.apps.read_namespaced_daemon_set,
                   cluster.apps.patch_namespaced_daemon_set)

    def __str__(self) -> str:
        return f"{self.resource} {self.namespace}/{self.name}"

    def read(self) -> dict[str, Any]:
        """The object as the API serializes it (camelCase keys)."""
        obj = self.cluster.call("get", self.resource, self.namespace, self.read_fn, self.name, self.namespace)
        doc: dict[str, Any] = self.cluster.api_client.sanitize_for_serialization(obj)
        return doc

    def patch(self, body: Any) -> None:
        """A JSON Patch (a list of operations) or a strategic merge patch (a dict)."""
        self.cluster.call("patch", self.resource, self.namespace, self.patch_fn, self.name, self.namespace, body)

    def restart(self) -> None:
        """Roll the pods of a Deployment or DaemonSet, as `kubectl rollout restart` does."""
        stamp = f"{time.time():.3f}"
        self.patch({"spec": {"template": {"metadata": {"annotations": {"k8sdns.io/restarted-at": stamp}}}}})


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def value_at(doc: Any, path: str) -> Any:
    """What a JSON Pointer names in doc, or _ABSENT."""
    node = doc
    for token in (_unescape(t) for t in path.lstrip("/").split("/")):
        if isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return _ABSENT
    return node


def _op(path: str, old: Any, new: Any) -> dict[str, Any]:
    if new is _ABSENT:
        return {"op": "remove", "path": path}
    return {"op": "add" if old is _ABSENT else "replace", "path": path, "value": new}


def apply(target: Target, change: Mapping[str, Any], doc: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Set each path of `change` and return what the paths held before (for `restore`); `doc` is
    the object as just read, when the caller has it (one read, not two)."""
    doc = target.read() if doc is None else doc
    saved = {path: value_at(doc, path) for path in change}
    ops = [_op(path, saved[path], value) for path, value in change.items() if value is not _ABSENT
           or saved[path] is not _ABSENT]
    if ops:
        target.patch(ops)
    return saved


def restore(target: Target, saved: Mapping[str, Any]) -> None:
    """Put back what `apply` saved: old values replaced, paths that were absent removed."""
    doc = target.read()
    ops = [_op(path, value_at(doc, path), old) for path, old in saved.items()
           if not (old is _ABSENT and value_at(doc, path) is _ABSENT)]
    if ops:
        target.patch(ops)


@contextlib.contextmanager
def patched(target: Target, change: Mapping[str, Any], *, settle: Callable[[], None] | None = None,
            doc: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Hold `change` on `target` while the block runs, then restore it exactly. `settle` runs after
    the change and again after the restore (restart and wait for a rollout, say)."""
    saved = apply(target, change, doc)
    try:
        if settle is not None:
            settle()
        yield
    finally:
        restore(target, saved)
        if settle is not None:
            settle()


def edited(target: Target, path: str, edit: Callable[[Any], Any], *,
           settle: Callable[[], None] | None = None) -> contextlib.AbstractContextManager[None]:
    """`patched` with the new value computed from the current one (a Corefile edited, say)."""
    doc = target.read()
    current = value_at(doc, path)
    return patched(target, {path: edit(None if current is _ABSENT else current)}, settle=settle, doc=doc)


ABSENT = _ABSENT
"""Give this as a path's new value to remove the path while the change holds."""
