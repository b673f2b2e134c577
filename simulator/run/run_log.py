"""``run.log``: what the terminal showed during a run, kept in the run folder.

A reader of a run folder (a colleague, a reviewer, the author a month later)
sees the warnings, the starting model's cache key and the engine's lines
that scrolled by, without the progress bars. A resumed run appends to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

from rich.console import Console

RUN_LOG_FILE = "run.log"


class RunLog:
    """Prints a line on the terminal's console and appends it to ``run.log``."""

    def __init__(self, console: Console, handle: TextIO):
        self.console = console
        self._handle = handle

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)
        self.write(text)

    def write(self, text: str) -> None:
        """Only into ``run.log`` (what the terminal shows otherwise, e.g. the final table)."""
        self._handle.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self._handle.flush()


class _FileLines(logging.Handler):
    def __init__(self, log: RunLog):
        super().__init__(logging.INFO)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        with suppress(OSError, ValueError):  # a full disk must not stop the run
            self._log.write(f"{record.levelname.lower()}: {record.getMessage()}")


@contextmanager
def run_log(folder: Path, console: Console, logger_name: str = "persona_fleet") -> Iterator[RunLog]:
    """A ``RunLog`` on ``folder/run.log`` that also receives the methods' log records."""
    with (folder / RUN_LOG_FILE).open("a", encoding="utf-8") as handle:
        log = RunLog(console, handle)
        handler = _FileLines(log)
        logger = logging.getLogger(logger_name)
        logger.addHandler(handler)
        try:
            yield log
        finally:
            logger.removeHandler(handler)
