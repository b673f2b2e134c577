"""Evaluation ticks: every evaluated device scores what it serves, at a simulated time.

Test-then-adapt on a fixed time grid shared by all methods, so their curves
are comparable. Evaluation is measurement: not billed, and it changes no
device's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from simulator.catalog.ranking_metrics import RANKING_NAMES
from simulator.engine import protocol
from simulator.engine.scoring import defined

GRID_TIMEOUT_S = 3600.0


@dataclass
class TickScores:
    """What one evaluation tick measured.

    ``scores``: the score per device that answered (a failed or undefined one is
    left out); ``further``: the task's further metrics (HR@k, NDCG@k for click
    streams) as lists over those devices; ``nonfinite``: devices whose served
    model gave NaN or infinite outputs (a diverged model: its score counts,
    but means little, so the run says so).
    """

    scores: dict[int, float] = field(default_factory=dict)
    further: dict[str, list[float]] = field(default_factory=dict)
    nonfinite: list[int] = field(default_factory=list)


def evaluate_devices(
    grid: Grid, node_of: dict[int, int], time_s: float, devices: list[int]
) -> TickScores:
    """Ask ``devices`` to score what they serve at ``time_s``; collect their answers."""
    config = ConfigRecord({protocol.ROUND: 0, protocol.START_S: time_s})
    content = RecordDict({protocol.SIM_CONFIG: config})
    messages = [
        Message(content, dst_node_id=node_of[d], message_type=MessageType.EVALUATE) for d in devices
    ]
    tick = TickScores()
    for reply in grid.send_and_receive(messages, timeout=GRID_TIMEOUT_S):
        if not reply.has_error():
            meter = reply.content[protocol.SIM_METER]
            device, score = int(meter[protocol.DEVICE]), float(meter[protocol.ACCURACY])
            if protocol.NONFINITE in meter:
                tick.nonfinite.append(device)
            if defined(score):
                tick.scores[device] = score
                for name in RANKING_NAMES:
                    if name in meter:
                        tick.further.setdefault(name, []).append(float(meter[name]))
    return tick
