"""The disruption monitor: every chosen probe pod streams lookups (its libc's resolver, and in the
glibc pod also a long-lived UDP socket) while a change runs; stopping it gives a Timeline.

The monitor is asyncio at heart: one task per probe stream (each reads its exec in a thread of
the monitor's own pool, as the Kubernetes client's websocket is blocking), the change's command
as an asyncio subprocess, timers for warm-up and settling. Sync code uses it as `with Monitor(...)`,
which runs the loop in a background thread; async code uses `async with`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pytest_k8sdns.errors import K8sDnsError, WaitTimeout
from pytest_k8sdns.kube.stream import ExecStream
from pytest_k8sdns.monitor.timeline import CHANGE_START, Mark, Sample, Stream, Timeline
from pytest_k8sdns.probe import build, schema
from pytest_k8sdns.probe.pods import ProbePod
from pytest_k8sdns.probe.protocol import MAX_DURATION_S
from pytest_k8sdns.probe.results import (
    MonitorChased,
    MonitorEnd,
    MonitorStart,
    MonitorStdinError,
)
from pytest_k8sdns.verdict.disruption import (
    ChangeBounds,
    ChangeOutcome,
    ChangeVerdict,
    judge,
)

#: How long one read of a stream waits for lines before the task looks again.
PUMP_S = 0.5
#: How long a stream may take to end after it was told to stop: the probe waits up to 30 s for
#: libc lookups still in flight (glibc's 5 s timeouts, retried per server).
STOP_GRACE_S = 45.0


class ProbeStream:
    """One probe pod's `monitor` command: its lines read as they come (blocking; one thread)."""

    def __init__(self, pod: ProbePod, args: dict[str, Any]) -> None:
        self.pod = pod
        self.args = args
        self.start: MonitorStart | None = None
        self.end: MonitorEnd | None = None
        self.samples: list[Sample] = []
        self.error = ""  # why the stream ended without its end document
        self._exec: ExecStream | None = None
        self.streams = {client: Stream(pod.node, pod.libc, client) for client in ("libc", "socket")}
        #: every name the stream asks, by name_index: the rotation's, then the chased ones
        self.names: list[str] = [*args["names"], *args.get("chase", [])]
        self._rotation = len(args["names"])
        self._confirmed = self._rotation  # names the probe has confirmed (its start, its chased lines)
        self.ignored: list[str] = []  # stdin lines the probe ignored, in its words
        self._stop_sent = False
        #: libc lookups of chased names, by name: (start unix ns, latency ns, ok, error code)
        self.chased: dict[str, list[tuple[int, int, bool, int]]] = {}

    @property
    def label(self) -> str:
        return f"{self.pod.node}/{self.pod.libc}"

    def open(self) -> None:
        self._exec = ExecStream(self.pod.cluster, self.pod.namespace, self.pod.name,
                                build.probe_command("monitor", self.args))

    def pump(self, timeout_s: float) -> bool:
        """Read what arrived; False once the stream has ended (its end document, or the exec closed)."""
        assert self._exec is not None, "open() first"
        for line in self._exec.lines(timeout_s):
            parsed = schema.parse_monitor_line(line, where=self.pod.where, n_names=self._confirmed)
            if isinstance(parsed, MonitorStart):
                self.start = parsed
            elif isinstance(parsed, MonitorEnd):
                self.end = parsed
            elif isinstance(parsed, MonitorStdinError):
                self.ignored.append(parsed.error)
            elif isinstance(parsed, MonitorChased):
                self.names[parsed.first_index:parsed.first_index + len(parsed.names)] = list(parsed.names)
                self._confirmed = parsed.first_index + len(parsed.names)
            elif self.start is not None:
                t0 = self.start.t0_unix_ns
                for r in parsed:
                    if r.name_index < self._rotation:  # the timeline holds the rotation's lookups only
                        self.samples.append(Sample(self.streams[r.client], t0 + r.start_offset_ns, r.latency_ns,
                                                   r.ok, r.error_code))
                    else:
                        self.chased.setdefault(self.names[r.name_index], []).append(
                            (t0 + r.start_offset_ns, r.latency_ns, r.ok, r.error_code))
        if self.end is not None:
            if self.end.stopped == "duration" and not self._stop_sent:
                self.error = (f"the probe in {self.pod.where} stopped at its safety limit of {self.args['duration_s']:g} s "
                              f"before the monitor did; raise --k8sdns-during-timeout-s")
            return False
        if not self._exec.running:
            result = self._exec.close()
            tail = " | ".join(result.stderr.strip().splitlines()[-2:]) or "no stderr"
            self.error = f"the probe's stream in {self.pod.where} ended without its summary (exit {result.exit_code}: {tail})"
            return False
        return True

    def ok_seen(self, client: str) -> bool:
        return any(s.ok and s.stream.client == client for s in self.samples)

    def chase(self, names: Sequence[str]) -> None:
        """Have the probe ask these names until each answers once (they get the next name indexes)."""
        if self._exec is not None:
            self.names.extend(names)
            self._exec.send(json.dumps({"chase": list(names)}) + "\n")

    def answered(self, name: str) -> bool:
        return any(ok for _, _, ok, _ in self.chased.get(name, []))

    def stop(self) -> None:
        self._stop_sent = True
        if self._exec is not None:
            self._exec.send("stop\n")

    def close(self) -> None:
        if self._exec is not None:
            self._exec.close()


class Monitor:
    """Probe streams on the given pods, started together, warm before it returns from start()."""

    def __init__(self, pods: Sequence[ProbePod], *, names: Sequence[str], qps: float, socket_qps: float,
                 timeout_s: float = 2.0, warm_timeout_s: float = 60.0, max_duration_s: float = 3600.0,
                 bounds: ChangeBounds | None = None, chase: Sequence[str] = (), chase_every_s: float = 0.1,
                 chase_give_up_s: float = 120.0) -> None:
        if not pods:
            raise K8sDnsError("the monitor has no probe pod to stream from; the placement chose no node")
        args: dict[str, Any] = {"names": list(names), "qps": qps, "timeout_s": timeout_s,
                                "duration_s": min(max_duration_s, MAX_DURATION_S), "chase_give_up_s": chase_give_up_s,
                                "chase_every_s": chase_every_s, **({"chase": list(chase)} if chase else {})}
        self.streams = [ProbeStream(pod, {**args, "socket_qps": socket_qps if pod.libc == "glibc" else 0.0})
                        for pod in pods]
        self.warm_timeout_s = warm_timeout_s
        self.bounds = bounds or ChangeBounds()
        #: called with the monitor once it stopped (the k8sdns_monitor fixture records its timeline)
        self.on_stop: Callable[[Monitor], None] | None = None
        self.marks: list[Mark] = []
        self.timeline: Timeline | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(self.streams) + 2,
                                                           thread_name_prefix="k8sdns-monitor")
        self._tasks: list[asyncio.Task[None]] = []
        self._started_ns = 0
        self._thread: _LoopThread | None = None

    # -- async API ---------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started_ns = time.time_ns()
        try:
            # every open is waited for, also when one fails: a late one would leave an exec nobody stops
            opened = await asyncio.gather(*(loop.run_in_executor(self._pool, s.open) for s in self.streams),
                                          return_exceptions=True)
            failure = next((r for r in opened if isinstance(r, BaseException)), None)
            if failure is not None:
                raise failure
            self._tasks = [asyncio.create_task(self._pump(s), name=f"k8sdns-monitor {s.label}") for s in self.streams]
            await self._warm()
        except BaseException:
            await self._shutdown()
            raise
        if not any(m.label == CHANGE_START for m in self.marks):
            self.mark(CHANGE_START)  # a gate's change starts when the monitor is warm, unless it says otherwise

    async def chase(self, names: Sequence[str]) -> None:
        """Every stream asks these names until each answers once (propagation, negative caching)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, s.chase, list(names)) for s in self.streams))

    def mark(self, label: str) -> None:
        """Mark a moment on the timeline (the change's start and end; any step of a gate)."""
        self.marks.append(Mark(label, time.time_ns()))

    async def stop(self) -> Timeline:
        """Tell every stream to stop, wait for their summaries, and build the timeline."""
        stopped_ns = time.time_ns()
        await self._shutdown()
        samples = [sample for s in self.streams for sample in s.samples]
        errors: dict[int, str] = {}
        for s in self.streams:
            if s.end is not None:
                for code, text in s.end.errors.items():
                    errors.setdefault(int(code), text)
        streams = [st for s in self.streams for client, st in s.streams.items()
                   if client == "libc" or s.args["socket_qps"] > 0]
        unstarted = {s.label: s.end.totals.libc.skipped + s.end.totals.libc.unfinished
                     for s in self.streams if s.end is not None}
        self.timeline = Timeline(samples, list(self.marks), self._started_ns, stopped_ns, errors, streams,
                                 lost={s.label: s.error for s in self.streams if s.error},
                                 unstarted={k: v for k, v in unstarted.items() if v})
        if self.on_stop is not None:
            self.on_stop(self)
        return self.timeline

    def verdict(self, outcome: ChangeOutcome | None = None) -> ChangeVerdict:
        """The stopped monitor's timeline judged by its bounds (a ChangeVerdict: .ok, .message, .figures)."""
        if self.timeline is None:
            raise K8sDnsError("the monitor has not stopped yet: ask for its verdict after the `with` block")
        return judge(self.timeline, self.bounds, outcome)

    async def __aenter__(self) -> Monitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- sync API ----------------------------------------------------------------------------------
    def __enter__(self) -> Monitor:
        self._thread = _LoopThread()
        try:
            self._thread.run(self.start())
        except BaseException:
            self._thread.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._thread is not None
        try:
            self._thread.run(self.stop())
        finally:
            self._thread.close()

    # -- internals ---------------------------------------------------------------------------------
    async def _pump(self, stream: ProbeStream) -> None:
        loop = asyncio.get_running_loop()
        try:
            while await loop.run_in_executor(self._pool, stream.pump, PUMP_S):
                pass
        except K8sDnsError as exc:
            stream.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the websocket broke: the stream is lost, the others go on
            stream.error = f"the probe's stream in {stream.pod.where} broke: {type(exc).__name__}: {exc}"

    async def _warm(self) -> None:
        """Wait until every stream has answered a lookup (and its socket a query): a monitor that is
        not warm would blame the change for DNS that was broken before it."""
        deadline = time.monotonic() + self.warm_timeout_s
        while True:
            cold = [s for s in self.streams
                    if not s.ok_seen("libc") or (s.args["socket_qps"] > 0 and not s.ok_seen("socket"))]
            lost = [s for s in self.streams if s.error]
            if lost:
                raise K8sDnsError(lost[0].error)
            if not cold:
                return
            if time.monotonic() > deadline:
                first = cold[0]
                failed = sum(1 for x in first.samples if not x.ok)
                raise WaitTimeout(
                    f"the monitor is not warm after {self.warm_timeout_s:.0f} s: {first.label} has no answered lookup "
                    f"yet ({len(first.samples)} ended, {failed} failed); DNS does not work there before any change, "
                    f"so fix that first (the other checks show why)")
            await asyncio.sleep(0.2)

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        for s in self.streams:
            await loop.run_in_executor(self._pool, s.stop)
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
        for s in self.streams:
            if s.end is None and not s.error and self._tasks:
                s.error = f"the probe's stream in {s.pod.where} did not end within {STOP_GRACE_S:.0f} s of its stop"
            await loop.run_in_executor(self._pool, s.close)
        self._tasks = []
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass
class _LoopThread:
    """An event loop in a daemon thread, for the sync API: run() waits for a coroutine there, and a
    Ctrl-C in the waiting thread cancels it (its cleanup runs) before it is raised."""

    loop: asyncio.AbstractEventLoop = dataclasses.field(default_factory=asyncio.new_event_loop)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self.loop.run_forever, name="k8sdns-monitor-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Any) -> Any:
        done = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            box["task"] = asyncio.current_task()
            try:
                box["result"] = await coro
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(main()))
        try:
            done.wait()
        except BaseException:
            # Ctrl-C in the waiting thread: cancel the coroutine's own task, and wait for its cleanup
            # (streams told to stop, execs closed) before the interrupt goes on
            task = box.get("task")
            if task is not None:
                self.loop.call_soon_threadsafe(task.cancel)
            done.wait(timeout=STOP_GRACE_S + 15)
            raise
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()
