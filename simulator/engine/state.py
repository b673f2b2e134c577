"""What a simulated device keeps between rounds, where it is kept, and its encoding.

A device's state is only what differs from what it was given: the weights it
runs beyond the factory model (``held``; often tensors shared with every
device that got the same model) and its method's records. A device that never
took part holds nothing: the in-process store has no entry for it.

The encoding (Flower's protobuf encoding of a ``RecordDict``) is the same on
every engine, so checkpoints hold device states the same way wherever the
devices ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict

from simulator.engine.control import records_from_bytes, records_to_bytes
from strategies.base import DeviceView, Weights
from strategies.records import record_of, weights_of

HELD_KEY = "held-weights"
RECORD_PREFIX = "method:"


@dataclass
class DeviceState:
    """One device's state: weights held beyond the factory model, and method records.

    ``phase`` is set between the two phases of a two-phase round: the round
    and the simulated seconds the first phase took.
    """

    held: Weights | None = None
    records: RecordDict = field(default_factory=RecordDict)
    phase: tuple[int, float] | None = None

    @property
    def view(self) -> DeviceView:
        return DeviceView(self.held, self.records)

    def is_empty(self) -> bool:
        return self.held is None and not self.records


def encode_state(state: DeviceState) -> RecordDict:
    """The state as records (what a snapshot reply carries and a checkpoint stores)."""
    records = RecordDict({RECORD_PREFIX + k: v for k, v in state.records.items()})
    if state.held is not None:
        records[HELD_KEY] = record_of(state.held)
    return records


def decode_state(records: RecordDict) -> DeviceState:
    held = records.get(HELD_KEY)
    return DeviceState(
        held=weights_of(held) if isinstance(held, ArrayRecord) else None,
        records=RecordDict(
            {
                k.removeprefix(RECORD_PREFIX): v
                for k, v in records.items()
                if k.startswith(RECORD_PREFIX)
            }
        ),
    )


def state_bytes(state: DeviceState) -> bytes:
    return records_to_bytes(encode_state(state))


def state_from_bytes(data: bytes) -> DeviceState:
    return decode_state(records_from_bytes(data))


class StateStore(Protocol):
    """Where a process keeps the states of the devices it simulates."""

    def get(self, device: int) -> DeviceState:
        """The device's state (an empty one if it holds nothing)."""
        ...

    def put(self, device: int, state: DeviceState) -> None: ...


class MemoryStore:
    """States in a dict: devices that hold nothing take no memory."""

    def __init__(self) -> None:
        self.states: dict[int, DeviceState] = {}

    def get(self, device: int) -> DeviceState:
        return self.states.get(device) or DeviceState()

    def put(self, device: int, state: DeviceState) -> None:
        if state.is_empty() and state.phase is None:
            self.states.pop(device, None)
        else:
            self.states[device] = state


PHASE_KEY = "sim-phase"


class ContextStore:
    """One device's state in a Flower node ``Context`` (Flower's own simulation runtime)."""

    def __init__(self, context: Context):
        self.context = context

    def get(self, device: int) -> DeviceState:
        state = decode_state(RecordDict(dict(self.context.state.items())))
        phase = self.context.state.get(PHASE_KEY)
        if phase is not None:
            state.phase = (int(phase["round"]), float(phase["elapsed-s"]))
        return state

    def put(self, device: int, state: DeviceState) -> None:
        for key in list(self.context.state.keys()):
            del self.context.state[key]
        for key, record in encode_state(state).items():
            self.context.state[key] = record
        if state.phase is not None:
            round_index, elapsed_s = state.phase
            self.context.state[PHASE_KEY] = ConfigRecord(
                {"round": round_index, "elapsed-s": elapsed_s}
            )
