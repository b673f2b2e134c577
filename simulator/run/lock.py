"""One writer per folder: an exclusive lock a run, a resume or a sweep holds while it writes.

Two processes appending to one run folder (a resume started twice, or while
the original still runs; a scheduler's retry) interleave their metrics rows
and leave a summary that looks complete and is wrong. Every writer therefore
takes an exclusive ``flock`` on the folder's ``.writer.lock`` for as long as
it writes; the kernel drops it when the process ends, however it ends, so a
crashed run never leaves a stale lock behind. The file holds the holder's pid
and start time, for the message a second writer gets. Readers (``report``,
``compare``) never take the lock: ``held_by`` only looks, so a report can say
a run is still being written.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulator.catalog.errors import UserError

LOCK_FILE = ".writer.lock"
# A reader's look takes the lock for an instant; a writer retries this long first.
_RETRY_S = 2.0


# A lock file is never followed through a link (a folder from elsewhere could point
# it at any file of the user's) and never blocks on open (a pipe would hang).
_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK


def _regular(handle: int, path: Path) -> None:
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        raise UserError(f"{path}: not a regular file; remove it and retry")


class FolderBusy(UserError):
    """Another live process writes this folder; the message names it."""


def _holder_words(handle: int) -> str:
    try:
        text = os.pread(handle, 200, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that wrote no name"


@contextmanager
def writer_lock(folder: Path, what: str = "run") -> Iterator[None]:
    """Hold ``folder``'s writer lock for the block; raise ``FolderBusy`` if another holds it."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such {what} folder")
    path = folder / LOCK_FILE
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | _SAFE, 0o644)
    except OSError as err:
        raise UserError(f"{path}: cannot open the {what}'s lock file ({err.strerror})") from None
    try:
        _regular(handle, path)
        deadline = time.monotonic() + _RETRY_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FolderBusy(
                        f"{folder}: another process writes this {what} "
                        f"({_holder_words(handle)}); wait for it to end or stop it, then retry"
                    ) from None
                time.sleep(0.05)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()}, started {stamp}\n".encode(), 0)
        yield
    finally:
        os.close(handle)  # closing drops the lock


def held_by(folder: Path) -> str | None:
    """Who writes ``folder`` now (pid and start time), or ``None`` when nobody does."""
    path = folder / LOCK_FILE
    try:
        handle = os.open(path, os.O_RDONLY | _SAFE)
    except OSError:
        return None  # never locked (an older folder), a link, unreadable: nobody we can see
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_words(handle)
        return None
    finally:
        os.close(handle)
