"""Progress of the cloud's long training loops, shown by whoever owns a terminal.

Pretraining the starting model, training Persona's adapter and the
cloud-retrain model take from seconds to minutes before the first round;
without a bar a cold run looks hung. The loops report steps here; the command
line installs a display with ``showing_progress``; everywhere else (tests, Ray
workers, the API without ``progress=True``) reporting costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressDisplay(Protocol):
    """Something that draws a bar: ``start`` returns the function that advances it."""

    def start(self, label: str, total: int) -> Callable[[int], None]: ...

    def finish(self, label: str) -> None: ...


_display: ProgressDisplay | None = None


@contextmanager
def showing_progress(display: ProgressDisplay | None) -> Iterator[None]:
    """Within the block, training loops in this process report to ``display``."""
    global _display
    previous, _display = _display, display
    try:
        yield
    finally:
        _display = previous


@contextmanager
def training_steps(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for a loop of ``total`` steps; a no-op without a display."""
    display = _display
    if display is None or total <= 0:
        yield lambda steps: None
        return
    advance = display.start(label, total)
    try:
        yield advance
    finally:
        display.finish(label)
