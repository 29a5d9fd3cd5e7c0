"""Create, wait for, exec into and delete the plugin's pods; waits explain what they saw."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from pytest_k8sdns.errors import ClusterError, NotFound, PodError, WaitTimeout
from pytest_k8sdns.kube.client import MANAGED_BY, Cluster
from pytest_k8sdns.kube.wait import Watched, until

#: Container states that will not fix themselves: a wait that sees one ends at once.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
#: Longest pause between two looks of a watched wait: the watch wakes it sooner on any change.
WATCHED_EVERY_S = 5.0
#: Label on every object of one run, so a run can remove its own from a shared namespace.
RUN_LABEL = "k8sdns.io/run"


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """Output of one command run in a pod."""

    stdout: str
    stderr: str
    exit_code: int


def namespace_manifest(name: str, run_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**MANAGED_BY, RUN_LABEL: run_id}},
    }


def create_namespace(cluster: Cluster, name: str, run_id: str) -> None:
    cluster.call("create", "namespaces", None, cluster.core.create_namespace, namespace_manifest(name, run_id))


def delete_namespace(cluster: Cluster, name: str) -> None:
    """Delete a namespace (and so everything in it); missing is fine. Nothing waits for it to go:
    the API server empties it in the background, and every run makes a namespace of its own name."""
    try:
        cluster.call("delete", "namespaces", None, cluster.core.delete_namespace, name, grace_period_seconds=0)
    except NotFound:
        pass


def check_namespace(cluster: Cluster, namespace: str, run_id: str, pod: dict[str, Any]) -> None:
    """Make sure an existing namespace (--k8sdns-namespace) can hold this run: no other run's pods
    are in it, it exists, and it admits the probe pod (a dry run, so Pod Security and quota
    refusals show before any check starts)."""
    others = cluster.call("list", "pods", namespace, cluster.core.list_namespaced_pod, namespace,
                          label_selector=",".join(f"{k}={v}" for k, v in MANAGED_BY.items())).items
    runs = sorted({(p.metadata.labels or {}).get(RUN_LABEL, "?") for p in others} - {run_id})
    if runs:
        raise ClusterError(
            f"namespace {namespace} holds pods of another run ({', '.join(runs)}); wait for it to end, or if it "
            f"was killed, delete them: kubectl delete pods -n {namespace} -l {RUN_LABEL}={runs[0]}"
        )
    try:
        cluster.call("create", "pods", namespace, cluster.core.create_namespaced_pod, namespace, pod, dry_run="All")
    except NotFound:
        raise ClusterError(
            f"namespace {namespace} does not exist on {cluster.server}; create it (fixtures/rbac.yaml does) "
            f"or drop --k8sdns-namespace"
        ) from None


def delete_run_objects(cluster: Cluster, namespace: str, run_id: str) -> None:
    """Delete one run's pods and Services from a namespace the run did not create."""
    selector = f"{RUN_LABEL}={run_id}"
    cluster.call("deletecollection", "pods", namespace, cluster.core.delete_collection_namespaced_pod, namespace,
                 label_selector=selector, grace_period_seconds=0)
    services = cluster.call("list", "services", namespace, cluster.core.list_namespaced_service, namespace,
                            label_selector=selector).items
    for svc in services:
        try:
            cluster.call("delete", "services", namespace, cluster.core.delete_namespaced_service,
                         svc.metadata.name, namespace)
        except NotFound:
            pass  # deleted meanwhile: what was wanted


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions if pod.status else None) or [])


def describe(pod: Any, events: list[str]) -> str:
    """A pod's phase, its containers' states and its last events, for a timeout's "last seen"."""
    phase = pod.status.phase if pod.status else "unknown"
    states = []
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        st = cs.state
        if st.waiting:
            states.append(f"{cs.name} waiting ({st.waiting.reason}: {st.waiting.message or ''})".strip())
        elif st.terminated:
            states.append(f"{cs.name} terminated ({st.terminated.reason}, exit {st.terminated.exit_code})")
        elif st.running:
            states.append(f"{cs.name} running")
    last = "; last events: " + " | ".join(events[-3:]) if events else ""
    return f"phase {phase}" + (", " + ", ".join(states) if states else "") + last


def pod_events(cluster: Cluster, namespace: str, name: str) -> list[str]:
    evs = cluster.call(
        "list", "events", namespace, cluster.core.list_namespaced_event, namespace,
        field_selector=f"involvedObject.name={name}",
    ).items
    evs.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return [f"{e.reason}: {e.message}" for e in evs]


def wait_ready(cluster: Cluster, namespace: str, names: list[str], timeout_s: float, image_options: dict[str, str]) -> None:
    """Wait until every named pod is Ready, woken by the watch of the namespace's pods. An image
    that cannot be pulled or a container that exited ends the wait at once.

    image_options maps an image to the command-line option that overrides it, for the message.
    """

    def look() -> list[Any]:
        """The named pods not Ready yet, in the order given."""
        listed = {p.metadata.name: p for p in
                  cluster.call("list", "pods", namespace, cluster.core.list_namespaced_pod, namespace).items}
        pending = []
        for name in names:
            pod = listed.get(name)
            if pod is None:
                raise PodError(f"pod {namespace}/{name} is gone while the run waited for it; something else deletes "
                               f"pods in namespace {namespace}: keep it to this run")
            _raise_if_stuck(pod, image_options)
            if not is_ready(pod):
                pending.append(pod)
        return pending

    def message(pending: list[Any]) -> str:
        first = pending[0]
        name = first.metadata.name
        return (f"pod {namespace}/{name} not Ready after {timeout_s:.0f} s: "
                f"{describe(first, pod_events(cluster, namespace, name))}")

    until(f"pods {', '.join(names)} in {namespace} not Ready", look, lambda pending: not pending,
          timeout_s=timeout_s, message=message, every_s=WATCHED_EVERY_S,
          watched=Watched(cluster, "pods", namespace, cluster.core.list_namespaced_pod))


def _raise_if_stuck(pod: Any, image_options: dict[str, str]) -> None:
    """PodError for a container state that will not fix itself."""
    where = f"{pod.metadata.namespace}/{pod.metadata.name}"
    for cs in (pod.status.container_statuses if pod.status else None) or []:
        waiting = cs.state.waiting
        if waiting and waiting.reason in PULL_FAILURES:
            option = image_options.get(cs.image, "the image option")
            raise PodError(
                f"pod {where} cannot pull image {cs.image} ({waiting.reason}); "
                f"make it pullable from the cluster or point {option} at one that is"
            )
        if cs.state.terminated or (waiting and waiting.reason == "CrashLoopBackOff"):
            raise PodError(f"pod {where} (image {cs.image}) exited: {describe(pod, [])}")


def exec_in_pod(
    cluster: Cluster, namespace: str, pod: str, command: list[str], stdin: str | None = None, timeout_s: float = 300
) -> ExecResult:
    """Run a command in a pod's first container; stdin, if given, must end with a newline."""
    resp = cluster.call(
        "create", "pods/exec", namespace, stream, cluster.exec_api.connect_get_namespaced_pod_exec,
        pod, namespace, command=command, stdin=stdin is not None, stdout=True, stderr=True, tty=False,
        _preload_content=False, _request_timeout=None,
    )
    out: list[str] = []
    err: list[str] = []
    try:
        if stdin is not None:
            # the websocket carries stdin in frames; commands given stdin read one line, so
            # no end-of-file is needed (older API servers cannot signal one)
            for i in range(0, len(stdin), 1 << 16):
                resp.write_stdin(stdin[i : i + (1 << 16)])
        deadline = time.monotonic() + timeout_s
        while resp.is_open():
            resp.update(timeout=1)
            if resp.peek_stdout():
                out.append(resp.read_stdout())
            if resp.peek_stderr():
                err.append(resp.read_stderr())
            if time.monotonic() > deadline:
                raise WaitTimeout(f"command {command[:3]} in pod {namespace}/{pod} still running after {timeout_s:.0f} s")
        out.append(resp.read_stdout() if resp.peek_stdout() else "")
        err.append(resp.read_stderr() if resp.peek_stderr() else "")
        status = resp.read_channel(3)
    finally:
        resp.close()
        # websocket-client skips closing the socket when the server closed first
        sock = getattr(resp, "sock", None)
        if sock is not None:
            sock.shutdown()
    return ExecResult("".join(out), "".join(err), _exit_code(status))


def _exit_code(status: str) -> int:
    if not status:
        return 0
    try:
        doc = json.loads(status)
    except ValueError:
        return 1
    if doc.get("status") == "Success":
        return 0
    for cause in (doc.get("details") or {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", 1))
    return 1


def logs(cluster: Cluster, namespace: str, pod: str, *, previous: bool = False, container: str | None = None) -> str:
    try:
        return str(
            cluster.call(
                "get", "pods/log", namespace, cluster.core.read_namespaced_pod_log, pod, namespace,
                previous=previous, container=container, tail_lines=2000,
            )
        )
    except NotFound:
        if previous:
            return ""  # no previous container
        raise
    except ApiException as exc:
        if exc.status == 400 and previous:
            return ""  # no previous container (the API server says so with a 400)
        raise


def raise_probe_failure(namespace: str, pod: str, image: str, result: ExecResult) -> None:
    __tracebackhide__ = True
    tail = " | ".join(result.stderr.strip().splitlines()[-3:]) or "no stderr"
    raise PodError(f"probe in pod {namespace}/{pod} (image {image}) failed with exit {result.exit_code}: {tail}")
