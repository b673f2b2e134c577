"""Checkpoint files: one method-seed run's loop state on disk, and when to write them.

A checkpoint is the engine's ``LoopSnapshot`` (loop position, global arrays,
the method's cloud state, every device's state, the metrics file's length)
plus a key naming the run it belongs to. Files are written atomically (a
temporary file, fsync, rename, fsync of the folder): a run killed at any
instant leaves either the previous checkpoint or the new one, never a torn
file. They are loaded with ``weights_only``, so a checkpoint can hold
tensors, numbers, strings and bytes but never code.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from google.protobuf.message import DecodeError

from basemodel.atomic import atomic_path
from simulator.catalog.errors import UserError
from simulator.engine.checkpointing import decode_arrays
from simulator.engine.loop_state import LoopPosition, LoopSnapshot

FORMAT = 1


def run_key(scenario_json: str, method: str, seed: int) -> str:
    """Identifies the run a checkpoint belongs to (scenario document, method, seed)."""
    text = f"{scenario_json}\n{method}\n{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _as_tensor(data: bytes) -> torch.Tensor:
    """Encoded records as a byte tensor: stored raw, and ``weights_only`` allows it."""
    return (
        torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if data
        else torch.empty(0, dtype=torch.uint8)
    )


def _as_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.numpy().tobytes()


def save_checkpoint(path: Path, key: str, snapshot: LoopSnapshot) -> None:
    """Write ``snapshot`` to ``path`` atomically (old or new file, never a torn one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "key": key,
        "format": FORMAT,
        "position": asdict(snapshot.position),
        "arrays": _as_tensor(snapshot.arrays),
        "strategy": snapshot.strategy,  # no deep copy: torch.save reads it as it is
        "devices": {d: _as_tensor(b) for d, b in snapshot.devices.items()},
        "log_offset": snapshot.log_offset,
        "wall_s": snapshot.wall_s,
    }
    with atomic_path(path) as temporary:
        torch.save(document, temporary)


def load_checkpoint(path: Path, expected_key: str) -> LoopSnapshot:
    """Read a checkpoint (``weights_only``); a clear error if it is unreadable or foreign."""
    try:
        document = torch.load(path, weights_only=True)
        fmt, key = document["format"], document["key"]
        snapshot = LoopSnapshot(
            position=LoopPosition(**document["position"]),
            arrays=_as_bytes(document["arrays"]),
            strategy=document["strategy"],
            devices={int(d): _as_bytes(t) for d, t in document["devices"].items()},
            log_offset=int(document["log_offset"]),
            wall_s=float(document["wall_s"]),
        )
        decode_arrays(snapshot.arrays)
    except (
        OSError,
        RuntimeError,
        EOFError,
        TypeError,
        KeyError,
        AttributeError,
        ValueError,
    ) as err:
        raise UserError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err})") from None
    except (pickle.UnpicklingError, DecodeError) as err:
        reason = str(err).strip().splitlines()[-1][:200]
        raise UserError(f"{path}: corrupt or unsafe checkpoint ({reason})") from None
    if fmt != FORMAT:
        raise UserError(f"{path}: checkpoint format {fmt}, expected {FORMAT}")
    if key != expected_key:
        raise UserError(
            f"{path}: checkpoint belongs to another scenario, method or seed "
            f"(key {key}, expected {expected_key})"
        )
    return snapshot


@dataclass
class Checkpointer:
    """One method-seed run's checkpoint file and policy (the engine's ``CheckpointStore``).

    A checkpoint is due every ``every`` rounds, unless it would take the
    time spent on checkpoints past ``budget`` (a fraction) of the run's wall
    time: on the Ray engine asking a thousand devices for their state costs
    about two rounds' worth, so the budget, not the interval, sets the pace
    there. Checkpoints never change results, only how much a resume redoes.

    ``device_states`` accumulates: a device that has not run a round since the
    last checkpoint still holds the state that checkpoint recorded, so only
    the devices touched since are asked again.
    """

    path: Path
    every: int
    key: str
    budget: float | None
    resume_from: LoopSnapshot | None = None
    device_states: dict[int, bytes] = field(default_factory=dict)
    spent_s: float = 0.0  # wall seconds spent on checkpoints so far
    last_cost_s: float = 0.0
    final_path: Path | None = None  # where the end state goes (None: not kept)

    @property
    def keeps_final(self) -> bool:
        return self.final_path is not None

    def __post_init__(self) -> None:
        if self.resume_from is not None:
            self.device_states = dict(self.resume_from.devices)

    def due(self, round_index: int, elapsed_s: float) -> bool:
        """Whether to checkpoint after ``round_index``, ``elapsed_s`` wall seconds into the run."""
        if self.every <= 0 or round_index % self.every:
            return False
        return self.budget is None or self.spent_s + self.last_cost_s <= self.budget * elapsed_s

    def save(self, snapshot: LoopSnapshot) -> None:
        save_checkpoint(self.path, self.key, snapshot)

    def save_final(self, snapshot: LoopSnapshot) -> None:
        if self.final_path is not None:
            save_checkpoint(self.final_path, self.key, snapshot)

    def record_cost(self, seconds: float) -> None:
        self.spent_s += seconds
        self.last_cost_s = seconds
