"""Evaluation ticks: every evaluated device scores what it serves, at a simulated time.

Test-then-adapt on a fixed time grid shared by all methods, so their curves
are comparable. Evaluation is measurement: not billed, and it changes no
device's state.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from strategies import wire

GRID_TIMEOUT_S = 3600.0


def evaluate_devices(
    grid: Grid, node_of: dict[int, int], time_s: float, devices: list[int]
) -> dict[int, float]:
    """Accuracy per device that answered (a failed device is left out)."""
    config = ConfigRecord({wire.ROUND: 0, wire.START_S: time_s})
    content = RecordDict({wire.SIM_CONFIG: config})
    messages = [
        Message(content, dst_node_id=node_of[d], message_type=MessageType.EVALUATE) for d in devices
    ]
    scores: dict[int, float] = {}
    for reply in grid.send_and_receive(messages, timeout=GRID_TIMEOUT_S):
        if not reply.has_error():
            meter = reply.content[wire.SIM_METER]
            scores[int(meter[wire.DEVICE])] = float(meter[wire.ACCURACY])
    return scores
