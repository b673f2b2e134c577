"""Checkpoints: what one method-seed run needs to continue after an interruption.

A checkpoint is taken between rounds, every ``every`` rounds. It holds the
cloud loop's position (next round, simulated clock, next evaluation tick),
the global arrays, the method's cloud state (``checkpoint_state``), every
device's persistent state as its ClientApp reported it, and how many bytes of
the metrics file belong before it. Nothing else is needed: every random draw
in the simulator is a pure function of (seed, labels), so there is no RNG
state to save, and rows written after the checkpoint are rewritten exactly
on resume.

Files are written atomically (a temporary file, fsync, rename, fsync of the
folder): a run killed at any instant leaves either the previous checkpoint or
the new one, never a torn file. They are loaded with ``weights_only``, so a
checkpoint can hold tensors, numbers, strings and bytes but never code.
Device states and arrays travel as Flower's own protobuf encoding of their
records, which round-trips every dtype bit for bit.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, RecordDict
from flwr.common import serde
from flwr.proto.recorddict_pb2 import RecordDict as RecordDictProto
from google.protobuf.message import DecodeError

from simulator.errors import UserError

FORMAT = 1
ARRAYS_KEY = "arrays"


def records_to_bytes(records: RecordDict) -> bytes:
    """Flower's wire encoding of a RecordDict (exact for every record type)."""
    return serde.recorddict_to_proto(records).SerializeToString(deterministic=True)


def records_from_bytes(data: bytes) -> RecordDict:
    proto = RecordDictProto()
    proto.ParseFromString(data)
    return serde.recorddict_from_proto(proto)


def run_key(scenario_json: str, method: str, seed: int) -> str:
    """Identifies the run a checkpoint belongs to (scenario document, method, seed)."""
    text = f"{scenario_json}\n{method}\n{seed}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class LoopPosition:
    """Where the cloud loop stands between two rounds."""

    next_round: int = 1
    clock_s: float = 0.0
    next_eval_s: float = 0.0
    rounds_run: int = 0
    last_accuracy: float | None = None


@dataclass
class Checkpoint:
    """One method-seed run, frozen between rounds."""

    key: str
    position: LoopPosition
    arrays: bytes  # the global ArrayRecord, encoded
    strategy: dict[str, Any]
    devices: dict[int, bytes]  # device index -> its state records, encoded
    log_offset: int  # bytes of the metrics file written before this point
    wall_s: float  # wall time of the cloud loop so far
    format: int = FORMAT

    def global_arrays(self) -> ArrayRecord:
        record = records_from_bytes(self.arrays)[ARRAYS_KEY]
        assert isinstance(record, ArrayRecord)
        return record


def encode_arrays(arrays: ArrayRecord) -> bytes:
    return records_to_bytes(RecordDict({ARRAYS_KEY: arrays}))


def _as_tensor(data: bytes) -> torch.Tensor:
    """Encoded records as a byte tensor: stored raw, and ``weights_only`` allows it."""
    return (
        torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if data
        else torch.empty(0, dtype=torch.uint8)
    )


def _as_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.numpy().tobytes()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (old or new file, never a torn one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    document = {f.name: getattr(checkpoint, f.name) for f in fields(checkpoint)}  # no deep copy
    document["position"] = asdict(checkpoint.position)
    document["arrays"] = _as_tensor(checkpoint.arrays)
    document["devices"] = {d: _as_tensor(b) for d, b in checkpoint.devices.items()}
    with temporary.open("wb") as handle:
        torch.save(document, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_checkpoint(path: Path, expected_key: str) -> Checkpoint:
    """Read a checkpoint (``weights_only``); a clear error if it is unreadable or foreign."""
    try:
        document = torch.load(path, weights_only=True)
        position = LoopPosition(**document.pop("position"))
        document["arrays"] = _as_bytes(document["arrays"])
        document["devices"] = {int(d): _as_bytes(t) for d, t in document["devices"].items()}
        checkpoint = Checkpoint(position=position, **document)
        records_from_bytes(checkpoint.arrays)
    except (OSError, RuntimeError, EOFError, TypeError, KeyError, AttributeError) as err:
        raise UserError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err})") from None
    except (pickle.UnpicklingError, DecodeError) as err:
        reason = str(err).strip().splitlines()[-1][:200]
        raise UserError(f"{path}: corrupt or unsafe checkpoint ({reason})") from None
    if checkpoint.format != FORMAT:
        raise UserError(f"{path}: checkpoint format {checkpoint.format}, expected {FORMAT}")
    if checkpoint.key != expected_key:
        raise UserError(
            f"{path}: checkpoint belongs to another scenario, method or seed "
            f"(key {checkpoint.key}, expected {expected_key})"
        )
    return checkpoint


@dataclass
class Checkpointer:
    """The driver's checkpoint policy for one method-seed run, and the states gathered so far.

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
    resume_from: Checkpoint | None = None
    budget: float | None = 0.05
    device_states: dict[int, bytes] = field(default_factory=dict)
    spent_s: float = 0.0  # wall seconds spent on checkpoints so far
    last_cost_s: float = 0.0

    def __post_init__(self) -> None:
        if self.resume_from is not None:
            self.device_states = dict(self.resume_from.devices)

    def due(self, round_index: int, elapsed_s: float) -> bool:
        """Whether to checkpoint after ``round_index``, ``elapsed_s`` wall seconds into the run."""
        if self.every <= 0 or round_index % self.every:
            return False
        return self.budget is None or self.spent_s + self.last_cost_s <= self.budget * elapsed_s

    def record_cost(self, seconds: float) -> None:
        self.spent_s += seconds
        self.last_cost_s = seconds
