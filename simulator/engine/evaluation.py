"""Evaluation ticks: every evaluated device scores what it serves, at a simulated time.

Test-then-adapt on a fixed time grid shared by all methods, so their curves
are comparable. Evaluation is measurement: not billed, and it changes no
device's state.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from simulator.engine.scoring import defined
from simulator.run.ranking_metrics import RANKING_NAMES
from strategies import wire

GRID_TIMEOUT_S = 3600.0


def evaluate_devices(
    grid: Grid, node_of: dict[int, int], time_s: float, devices: list[int]
) -> tuple[dict[int, float], dict[str, list[float]]]:
    """The score per device that answered (a failed or undefined one is left out), and the
    task's further metrics (HR@k, NDCG@k for click streams) as lists over those devices."""
    config = ConfigRecord({wire.ROUND: 0, wire.START_S: time_s})
    content = RecordDict({wire.SIM_CONFIG: config})
    messages = [
        Message(content, dst_node_id=node_of[d], message_type=MessageType.EVALUATE) for d in devices
    ]
    scores: dict[int, float] = {}
    further: dict[str, list[float]] = {}
    for reply in grid.send_and_receive(messages, timeout=GRID_TIMEOUT_S):
        if not reply.has_error():
            meter = reply.content[wire.SIM_METER]
            score = float(meter[wire.ACCURACY])
            if defined(score):
                scores[int(meter[wire.DEVICE])] = score
                for name in RANKING_NAMES:
                    if name in meter:
                        further.setdefault(name, []).append(float(meter[name]))
    return scores, further
