"""Injected device faults, decided per device-round from the run seed.

The device half computes its honest reply; a fault then stalls it past the
deadline, loses it, or corrupts it the way a buggy or hostile device might
(a missing record, a wrongly shaped array, NaN values). The cloud must notice:
``reply_problem`` is the check every reply passes before any method sees it.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Message, RecordDict

from simulator.catalog.seeding import rng_for
from simulator.engine import protocol
from simulator.scenario.schema import Faults
from strategies.records import tensor_of

KINDS = ("hang", "drop", "malformed", "nonfinite")


class MessageDropped(RuntimeError):
    """An injected fault: the device's reply never reaches the cloud."""


def draw_fault(faults: Faults, device: int, round_index: int, seed: int) -> str | None:
    """Which fault (if any) hits this device-round."""
    draw = rng_for(seed, "fault", device, round_index).random()
    edge = 0.0
    for kind in KINDS:
        edge += getattr(faults, kind)
        if draw < edge:
            return kind
    return None


def corrupt(reply: RecordDict, kind: str, device: int, round_index: int, seed: int) -> RecordDict:
    """A corrupted copy of a reply's payload (``malformed`` or ``nonfinite``)."""
    records = dict(reply.items())
    arrays = [key for key, record in records.items() if isinstance(record, ArrayRecord)]
    if not records:
        return reply
    if kind == "nonfinite" and arrays:
        record = records[arrays[0]]
        first = next(iter(record.keys()))
        values = record[first].numpy().astype(np.float32).copy()
        values.flat[0] = np.nan
        changed = ArrayRecord({k: record[k] for k in record})
        changed[first] = Array(values)
        records[arrays[0]] = changed
    elif rng_for(seed, "corrupt", device, round_index).random() < 0.5 or not arrays:
        records.pop(sorted(records)[0])  # a record goes missing
    else:
        record = records[arrays[0]]
        first = next(iter(record.keys()))
        changed = ArrayRecord({k: record[k] for k in record})
        changed[first] = Array(np.zeros(3, dtype=np.float32))  # wrong shape
        records[arrays[0]] = changed
    return RecordDict(records)


def reply_problem(reply: Message) -> str | None:
    """Why a (non-error) reply cannot be used, or ``None`` if it is well-formed.

    Checks what every method relies on: the metering record is there and sane,
    and every array in the payload is finite.
    """
    content = reply.content
    meter = content.get(protocol.SIM_METER)
    if meter is None:
        return "malformed reply: no metering record"
    try:
        status = meter[protocol.STATUS]
        float(meter[protocol.TOTAL_S])
        int(meter[protocol.DEVICE])
    except (KeyError, TypeError, ValueError):
        return "malformed reply: incomplete metering record"
    if status not in (protocol.STATUS_OK, protocol.STATUS_LATE):
        return f"malformed reply: unknown status {status!r}"
    for key, record in content.items():
        if isinstance(record, ArrayRecord):
            for name in record:
                if not bool(torch.isfinite(tensor_of(record[name])).all()):
                    return f"rejected update: non-finite values in {key}/{name}"
    return None
