"""The one way the plugin waits: a deadline with a reason, that says what it saw last.

`until(what, look, done, ...)` looks, judges, and looks again until `done` holds or the deadline
passes; the timeout names what it waited for and what the last look showed. Between looks it
either sleeps `every_s` or, given a `Watched` list call, blocks on the API's watch of it and looks
again as soon as anything there changes (kr8s' wait: read once, then watch). A look may raise to
end the wait at once (an image that cannot be pulled will not fix itself).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from pytest_k8sdns.errors import WaitTimeout

if TYPE_CHECKING:
    from pytest_k8sdns.kube.client import Cluster

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Watched:
    """A list call of the API whose watch wakes a wait: `list_fn(namespace, ...)` for namespaced
    resources, `list_fn(...)` when namespace is None."""

    cluster: Cluster
    resource: str
    namespace: str | None
    list_fn: Callable[..., Any]
    label_selector: str | None = None
    field_selector: str | None = None

    def _args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        kwargs = {k: v for k, v in (("label_selector", self.label_selector),
                                    ("field_selector", self.field_selector)) if v}
        return ((self.namespace,) if self.namespace is not None else ()), kwargs

    def version(self) -> str | None:
        """The list's resourceVersion: a watch from it misses no change made after this call."""
        args, kwargs = self._args()
        listed = self.cluster.call("list", self.resource, self.namespace, self.list_fn, *args, **kwargs)
        return str(listed.metadata.resource_version or "") or None

    def next_change(self, version: str | None, timeout_s: float) -> str | None:
        """Block until an object of the list changes after `version`, or timeout_s passes. Return
        the version to watch from next: the change's own, or `version` when nothing changed; None
        when the watch expired (410), so the caller lists again. A watch the identity may not make
        (403) waits a moment and keeps `version`: the wait then polls."""
        args, kwargs = self._args()
        w = watch.Watch()
        try:
            for event in w.stream(self.list_fn, *args, resource_version=version, timeout_seconds=max(1, int(timeout_s)),
                                  _request_timeout=timeout_s + 10, allow_watch_bookmarks=False, **kwargs):
                metadata = getattr(event.get("object"), "metadata", None)
                return str(getattr(metadata, "resource_version", "") or "") or None
        except ApiException as exc:
            if exc.status == 410:
                return None
            if exc.status == 403:
                time.sleep(min(timeout_s, 1.0))  # no watch here: the wait polls instead
                return version
            raise
        except (urllib3.exceptions.HTTPError, OSError):
            return version  # a dropped watch connection: look again, watch again from the same point
        finally:
            w.stop()
        return version

def until(what: str, look: Callable[[], T], done: Callable[[T], bool], *, timeout_s: float,
          seen: Callable[[T], str] = str, every_s: float = 1.0, watched: Watched | None = None,
          stop: threading.Event | None = None, message: Callable[[T], str] | None = None) -> T:
    """Look until done(look()) holds; return the last look. On timeout, raise WaitTimeout:
    "<what> after <N> s; last seen: <seen(last look)>", or message(last look) where a documented
    message has its own shape. With `watched`, wake on its changes (and at the latest every
    `every_s`); else sleep `every_s` between looks. A set `stop` event ends the wait early,
    returning the last look (for waits that run beside something else)."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout_s
    version: str | None = None
    while True:
        if watched is not None and version is None:
            version = watched.version()  # one list; afterwards the watch's own versions carry on
        value = look()
        if done(value) or (stop is not None and stop.is_set()):
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            if message is not None:
                raise WaitTimeout(message(value))
            raise WaitTimeout(f"{what} after {timeout_s:.0f} s; last seen: {seen(value)}")
        pause = min(every_s, left)
        if watched is not None:
            version = watched.next_change(version, pause)
        elif stop is not None:
            if stop.wait(pause):
                return value  # ended while pausing: no look after the block that set it
        else:
            time.sleep(pause)


def wait_gone(what: str, look: Callable[[], list[T]], *, timeout_s: float, seen: Callable[[list[T]], str] = str,
              every_s: float = 1.0, watched: Watched | None = None) -> None:
    """Wait until look() returns nothing (objects deleted, containers removed)."""
    __tracebackhide__ = True
    until(what, look, lambda left: not left, timeout_s=timeout_s, seen=seen, every_s=every_s, watched=watched)
