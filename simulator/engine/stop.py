"""A stop request the cloud loop honours between rounds (set by Ctrl-C or SIGTERM)."""

from __future__ import annotations

import threading


class StopRequested(Exception):
    """The user asked the run to stop; it stopped between rounds, after a checkpoint."""


class StopSwitch:
    """Set by the first interrupt; read by the cloud loop between rounds.

    ``in_loop`` tells the interrupt handler whether the loop will see the
    request (during rounds) or the interrupt must act at once (before them).
    """

    def __init__(self) -> None:
        self._requested = threading.Event()
        self.in_loop = False

    def request(self) -> None:
        self._requested.set()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()
