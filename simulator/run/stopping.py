"""Ctrl-C (and SIGTERM): stop at the next round boundary, with a checkpoint, on every engine.

A plain ``KeyboardInterrupt`` cannot stop a Ray run: Flower's simulation
engine keeps the main thread waiting on its worker threads, where the
exception never arrives, while the cloud loop goes on in its own thread. So
during a run the first Ctrl-C only sets a flag; the cloud loop sees it after
the round in progress, saves a checkpoint and ends with ``StopRequested``,
and the runner writes the summary. A second Ctrl-C stops the process at
once (rows already written and the last checkpoint stay valid). Outside the
round loop (pretraining, start-up) the first Ctrl-C interrupts at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from simulator.engine.stop import StopSwitch

EXIT_INTERRUPTED = 130


@contextmanager
def graceful_interrupts(switch: StopSwitch) -> Iterator[None]:
    """Route SIGINT to ``switch`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if switch.requested:
            sys.stderr.write("interrupted again: stopping now; resume with simulate --resume\n")
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        switch.request()
        if not switch.in_loop:
            raise KeyboardInterrupt
        sys.stderr.write("interrupt: stopping after the current round (Ctrl-C again: now)\n")
        sys.stderr.flush()

    # SIGTERM (a scheduler's or `kill`'s polite stop) ends a run like Ctrl-C does.
    previous = {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
