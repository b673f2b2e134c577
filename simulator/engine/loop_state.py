"""What the cloud loop needs to continue after an interruption, and where it goes.

The loop's state between two rounds is its position (next round, simulated
clock, next evaluation tick), the global arrays, the method's cloud state,
every device's state, and how much of the metrics file belongs before it. The
loop hands that to a ``CheckpointStore`` and its rows to a ``RowSink``; the
run room (``simulator.run``) implements both on disk, so the engine never
touches the run folder. Nothing else is needed: every random draw is a pure
function of (seed, labels), so there is no RNG state to save.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class LoopPosition:
    """Where the cloud loop stands between two rounds."""

    next_round: int = 1
    clock_s: float = 0.0
    next_eval_s: float = 0.0
    rounds_run: int = 0
    last_accuracy: float | None = None


@dataclass
class LoopSnapshot:
    """One method-seed run frozen between rounds.

    ``arrays`` and each of ``devices`` (device index -> its state records) are
    Flower's protobuf encoding of their records (``engine.control``), exact
    for every dtype; ``log_offset`` is the byte length of the metrics file
    at this point; ``wall_s`` the cloud loop's wall time so far.
    """

    position: LoopPosition
    arrays: bytes
    strategy: dict[str, Any]
    devices: dict[int, bytes]
    log_offset: int
    wall_s: float


class RowSink(Protocol):
    """Where the loop writes its rows (one per round, per evaluation tick, and an end row)."""

    def append(self, row: dict[str, Any]) -> None: ...

    def offset(self) -> int:
        """Bytes written so far (the snapshot records it)."""
        ...


class CheckpointStore(Protocol):
    """Where the loop saves snapshots, and the one it resumes from.

    ``device_states`` holds the last recorded state of every device; the loop
    refreshes only devices that got a message since, then saves the whole.
    """

    resume_from: LoopSnapshot | None
    device_states: dict[int, bytes]

    def due(self, round_index: int, elapsed_s: float) -> bool:
        """Whether to save after ``round_index``, ``elapsed_s`` wall seconds into the run."""
        ...

    def save(self, snapshot: LoopSnapshot) -> None:
        """Persist ``snapshot`` atomically (the previous one stays valid until then)."""
        ...

    def record_cost(self, seconds: float) -> None:
        """Wall seconds the last checkpoint took, gathering included (for the budget)."""
        ...

    @property
    def keeps_final(self) -> bool:
        """Whether the run's end state is kept (``simulate --keep-final``)."""
        ...

    def save_final(self, snapshot: LoopSnapshot) -> None:
        """Persist the end state: the cloud's model and every device's (a checkpoint's format)."""
        ...
