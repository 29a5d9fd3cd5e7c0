"""kube.wait.until, the one wait: returns the look that satisfied it, and a timeout says what it
waited for and what it saw last, in the documented shape when a caller gives one."""

from __future__ import annotations

import itertools

import pytest

from pytest_k8sdns.errors import PodError, WaitTimeout
from pytest_k8sdns.kube.wait import until, wait_gone


def test_returns_the_look_that_was_done() -> None:
    looks = itertools.count(1)
    assert until("three looks", lambda: next(looks), lambda n: n >= 3, timeout_s=5, every_s=0.01) == 3


def test_timeout_names_what_and_the_last_look() -> None:
    with pytest.raises(WaitTimeout) as err:
        until("deployment ns/x not rolled out", lambda: "updated 0 of 1", lambda seen: False, timeout_s=0.05,
              every_s=0.01)
    assert str(err.value) == "deployment ns/x not rolled out after 0 s; last seen: updated 0 of 1"


def test_a_documented_message_replaces_the_default() -> None:
    with pytest.raises(WaitTimeout) as err:
        until("pods not Ready", lambda: "phase Pending", lambda seen: False, timeout_s=0.05, every_s=0.01,
              message=lambda seen: f"pod ns/p not Ready after 8 s: {seen}")
    assert str(err.value) == "pod ns/p not Ready after 8 s: phase Pending"


def test_a_look_that_raises_ends_the_wait_at_once() -> None:
    def look() -> str:
        raise PodError("pod ns/p cannot pull image x (ErrImagePull)")

    with pytest.raises(PodError, match="cannot pull"):
        until("never", look, lambda seen: False, timeout_s=60, every_s=10)


def test_wait_gone_until_nothing_is_left() -> None:
    left = [["a", "b"], ["b"], []]
    wait_gone("pods still there", lambda: left.pop(0), timeout_s=5, every_s=0.01)
    assert left == []


def test_a_stop_during_the_pause_ends_without_another_look() -> None:
    """A periodic actor (faults.base.every) stops with its block: no action after the stop."""
    import threading
    import time

    stop = threading.Event()
    looks: list[float] = []
    worker = threading.Thread(target=until, args=("actor", lambda: looks.append(time.monotonic()), lambda _: False),
                              kwargs={"timeout_s": 60, "every_s": 5, "stop": stop})
    worker.start()
    time.sleep(0.2)
    stop.set()
    worker.join(timeout=2)
    assert not worker.is_alive() and len(looks) == 1


def test_a_node_still_tainted_not_ready_is_not_ready_yet() -> None:
    from pytest_k8sdns.kube.client import NodeFacts
    from pytest_k8sdns.kube.rollout import _lifecycle_tainted

    def node(*taints: str) -> NodeFacts:
        return NodeFacts("w", "10.0.0.2", True, "", "", "", "", taints=taints)

    assert _lifecycle_tainted(node("node.kubernetes.io/not-ready:NoSchedule"))
    assert _lifecycle_tainted(node("node.kubernetes.io/unreachable:NoExecute"))
    assert not _lifecycle_tainted(node("dedicated=dns:NoSchedule"))
    assert not _lifecycle_tainted(node())
