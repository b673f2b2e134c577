"""Tell a broken engine apart from a failing device.

On Flower's Ray engine a ClientApp that raises (a simulated crash) comes back
as an error reply with code ``CLIENT_APP_RAISED_EXCEPTION``. A Ray worker
that dies (killed, out of memory) also comes back as an error reply, with a
``ray.exceptions`` error and another code, and Flower keeps the dead actor
in its pool, so from then on most messages fail the same way. Counted as
device failures, those would quietly spoil the results. A worker that
freezes sends nothing at all.

``WorkerGuardGrid`` wraps the engine's Grid: a reply naming a Ray error that
is not a ClientApp's own, or replies missing after ``reply_timeout_s``, raise
``EngineFailure`` so the runner can restart the engine from the last
checkpoint (the timeout starts with the second exchange: the first, the
registration, includes Ray starting its workers). A frozen worker would also
keep Flower's engine from shutting down (its thread waits on the worker
without a timeout), so on a local Ray the guard first kills this process's
ClientApp workers (found under ``/proc``; without it, the engine may not
stop).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from pathlib import Path

from flwr.app import Message
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from simulator.engine.delegating_grid import DelegatingGrid
from simulator.engine.failures import EngineFailure

RAY_ERROR_MARKER = "ray.exceptions."
WORKER_TITLES = ("ray::ClientAppActor", "ray::DeviceShard")  # Flower's actors, our shards


def local_worker_pids() -> list[int]:
    """This process's descendants that simulate devices (Ray retitles its worker processes)."""
    parents: dict[int, int] = {}
    workers = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if title.startswith(tuple(t.encode() for t in WORKER_TITLES)):
            workers.append(pid)
    me = os.getpid()

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == me:
                return True
        return False

    return sorted(p for p in workers if descends(p))


def kill_local_workers() -> int:
    """SIGKILL this process's ClientApp workers (so the engine can shut down); how many."""
    killed = 0
    for pid in local_worker_pids():
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            continue
    return killed


def engine_error(reply: Message) -> str | None:
    """The engine failure a reply reports, or ``None`` (no error, or a device's own)."""
    if not reply.has_error() or reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION:
        return None
    reason = reply.error.reason or ""
    return reason.split("\n", 1)[0][:300] if RAY_ERROR_MARKER in reason else None


class WorkerGuardGrid(DelegatingGrid):
    """Delegates to the engine's Grid; raises ``EngineFailure`` on a lost or frozen worker."""

    def __init__(self, grid: Grid, reply_timeout_s: float, local: bool = True):
        super().__init__(grid)
        self._reply_timeout_s = reply_timeout_s
        self._local = local
        self._warm = False  # the first exchange waits for Ray to start its workers

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._check(list(self._grid.pull_messages(message_ids)))

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        limit = self._reply_timeout_s if timeout is None else min(timeout, self._reply_timeout_s)
        if not self._warm and timeout is not None:
            limit = timeout
        replies = self._check(list(self._grid.send_and_receive(messages, timeout=limit)))
        if len(replies) < len(messages):
            if self._local:
                kill_local_workers()
            raise EngineFailure(
                f"{len(messages) - len(replies)} of {len(messages)} replies missing after "
                f"{limit:.0f} s (a frozen worker?)"
            )
        self._warm = True
        return replies

    @staticmethod
    def _check(replies: list[Message]) -> list[Message]:
        for reply in replies:
            if (error := engine_error(reply)) is not None:
                raise EngineFailure(f"a Ray worker was lost: {error}")
        return replies
