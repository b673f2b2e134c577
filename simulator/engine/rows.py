"""The metrics rows the cloud loop writes: one per round, per evaluation tick, one at the end.

The run room's summary and the reports read these keys; they are defined here
once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.engine import protocol
from simulator.engine.failures import WENT_OFFLINE
from simulator.engine.outcome import RoundOutcome
from simulator.engine.requests import Requests


@dataclass(frozen=True)
class RoundFacts:
    """What the loop knows of a round besides its replies."""

    index: int
    start_s: float
    duration_s: float
    sent: int
    wall_s: float
    cloud_flops: float
    requests: Requests  # the service requests polled before it (billed as uploads)
    traced: bool  # devices online only in traced windows: count those that closed mid-round
    # Wall seconds the round took where time is real (a deployment: its exchanges and the
    # cloud's aggregation between them), else None.
    measured_s: float | None = None


def round_row(facts: RoundFacts, outcome: RoundOutcome, metrics: Any) -> dict[str, Any]:
    """A round: who was sent, kept, late, failed; what moved and what it cost."""

    def total(key: str) -> float:
        return sum(float(m[key]) for m in outcome.meters)

    requests = facts.requests
    row = {
        "kind": "round",
        "round": facts.index,
        "start_s": facts.start_s,
        "duration_s": facts.duration_s,
        "sampled": facts.sent,
        "kept": len(outcome.kept),
        "late": outcome.late,
        "failed": outcome.failed,
        "discarded": outcome.discarded,
        "failures": outcome.failures[:5],
        "replied": outcome.replied,
        "bytes_up": total(protocol.UPLOAD_BYTES) + requests.bytes_up,  # asking is billed
        "bytes_down": total(protocol.DOWNLOAD_BYTES) + requests.bytes_down,
        "flops": total(protocol.FLOPS),
        "energy_j": total(protocol.ENERGY_J) + requests.energy_j,
        "energy_compute_j": total(protocol.ENERGY_COMPUTE_J),
        "backward_passes": int(total(protocol.BACKWARD_PASSES)),
        "compute_s": total(protocol.COMPUTE_S),
        "train_metrics": dict(metrics) if metrics is not None else {},
        "wall_s": facts.wall_s,
        "cloud_flops": facts.cloud_flops,
    }
    if facts.traced:
        row["went_offline"] = sum(WENT_OFFLINE in f for f in outcome.failures)
    if facts.measured_s is not None:  # real devices: wall seconds beside the simulated duration_s
        row["measured_wall_s"] = facts.measured_s
    row["requests"] = len(requests.asking)
    row["request_bytes_up"] = requests.bytes_up
    return row


def eval_row(
    time_s: float,
    scores: dict[int, float],
    asked: int,
    further: dict[str, list[float]] | None = None,
    nonfinite: int = 0,
    contexts: dict[int, str | None] | None = None,
) -> dict[str, Any]:
    """An evaluation tick: each answering device's score and their mean; the task's
    further metrics (``ranking``: HR@k, NDCG@k) as means over the devices; how many
    devices served a model with non-finite outputs (``nonfinite``, only when any did);
    ``contexts``: per device, ``known``/``unknown`` (is its context one the cloud holds
    data under) or None on clean data, written only when some device is shifted."""
    ordered = sorted(scores)
    accuracies = [scores[d] for d in ordered]
    mean = sum(accuracies) / len(accuracies) if accuracies else float("nan")
    row = {
        "kind": "eval",
        "time_s": time_s,
        "acc_mean": mean,
        "failed": asked - len(scores),
        "devices": ordered,
        "accs": accuracies,
    }
    if nonfinite:
        row["nonfinite"] = nonfinite
    if contexts and any(contexts.get(d) is not None for d in ordered):
        row["contexts"] = [contexts.get(d) for d in ordered]
    if further:
        row["ranking"] = {name: sum(v) / len(v) for name, v in sorted(further.items()) if v}
    return row


def end_row(
    rounds_run: int,
    sim_duration_s: float,
    wall_s: float,
    registration_s: float,
    devices: int,
    facts: dict[str, Any],
    cloud_device: str = "cpu",
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The end of a method-seed run (its presence marks the run finished).

    ``facts`` is what the method reports about itself (``run_facts``);
    ``cloud_device`` is where its cloud half computed (``cloud.device``);
    ``model`` the device model's size (parameters, forward FLOPs per sample).
    """
    return {
        "kind": "end",
        "rounds": rounds_run,
        "sim_duration_s": sim_duration_s,
        "wall_s": wall_s,
        "registration_wall_s": registration_s,
        "devices": devices,
        "facts": facts,
        "cloud_device": cloud_device,
        "model": model or {},
    }
