"""Running a change under the monitor: a user's command (--k8sdns-during) as an asyncio subprocess,
or a built-in scenario (plain blocking code, in a thread), between the marks of the timeline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping

from pytest_k8sdns.monitor.core import Monitor
from pytest_k8sdns.monitor.timeline import CHANGE_END, Timeline
from pytest_k8sdns.verdict.disruption import ChangeOutcome

#: Output of a change kept for the report: its last lines are what explains a failure.
OUTPUT_KEPT = 64 * 1024
#: How long a command's background children may keep writing after it exited, before its process
#: group is ended (nothing a change started is left running).
CHILDREN_GRACE_S = 2.0

Change = Callable[[], Awaitable[ChangeOutcome]]


async def run_command(command: str, *, env: Mapping[str, str], timeout_s: float,
                      name: str = "--k8sdns-during") -> ChangeOutcome:
    """Run a shell command in its own process group; stdout and stderr kept together. A timeout or
    cancellation (Ctrl-C) kills the whole group, so nothing it started is left running."""
    started = time.time_ns()
    try:
        proc = await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True)
    except OSError as exc:
        return ChangeOutcome(name, command, None, started, time.time_ns(), error=f"could not start: {exc}")
    chunks: list[bytes] = []

    async def read() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            chunks.append(chunk)
            while sum(map(len, chunks)) > 2 * OUTPUT_KEPT and len(chunks) > 1:
                chunks.pop(0)

    error = ""
    reader = asyncio.ensure_future(read())
    try:
        await asyncio.wait_for(_exited(proc), timeout=timeout_s)
        # a child it left in the background may hold its output open: the change is the command, so
        # once it exited its group gets a moment to finish writing, and is then ended
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), CHILDREN_GRACE_S)
    except asyncio.TimeoutError:
        error = f"did not end within {timeout_s:g} s (raise --k8sdns-during-timeout-s if it needs longer)"
    finally:
        _kill_group(proc.pid)
        with contextlib.suppress(BaseException):  # collected, so asyncio never reports it unretrieved
            await asyncio.wait_for(reader, 5)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), 5)
    output = b"".join(chunks)[-OUTPUT_KEPT:].decode("utf-8", "replace")
    return ChangeOutcome(name, command, proc.returncode if not error else None, started, time.time_ns(),
                         output=output, error=error)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Until the command itself exited (proc.wait() also waits for its output pipes, which a child
    it left in the background may hold open)."""
    while proc.returncode is None:
        await asyncio.sleep(0.05)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_blocking(name: str, fn: Callable[[], str]) -> ChangeOutcome:
    """Run a built-in scenario (blocking code that returns what it did, in words) in a thread."""
    started = time.time_ns()
    try:
        said = await asyncio.to_thread(fn)
    except Exception as exc:  # noqa: BLE001 - the scenario's failure is the change's outcome, judged
        return ChangeOutcome(name, None, 1, started, time.time_ns(), error=f"failed: {exc}")
    return ChangeOutcome(name, None, 0, started, time.time_ns(), output=said)


async def observe(monitor: Monitor, change: Change, settle_s: float) -> tuple[Timeline, ChangeOutcome]:
    """Start the monitor, run the change once it is warm, keep watching `settle_s` after the change
    ended, and stop. The monitor stops on every path (a failure, Ctrl-C)."""
    await monitor.start()  # marks the change's start once every stream is warm
    try:
        outcome = await change()
        monitor.mark(CHANGE_END)
        await asyncio.sleep(settle_s)
    finally:
        timeline = await monitor.stop()
    return timeline, outcome
