"""What one round's replies mean: kept, late, failed, and when the round closes.

A reply that is an error, malformed, or carries non-finite values is a failed
device-round with its cause; no method ever sees it. A late reply (the
device's own clock says it missed the deadline) holds the round to the
deadline. With overcommitment, the round closes once the target number of
devices finished, and the slower extras are discarded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Message

from simulator.engine import protocol
from simulator.engine.faults import reply_problem
from simulator.scenario.schema import Rounds

ReplyValidator = Callable[[Message], str | None]


def failure_cause(reason: str) -> str:
    """The device's own error text, without the runtime's wrapping (same on every engine)."""
    marker = "occurred. Message: "
    if marker in reason:
        reason = reason.split(marker, 1)[1].removesuffix("'>")
    return reason.strip()[:200]


@dataclass
class RoundOutcome:
    """What the cloud learned from one round's replies."""

    kept: list[Message] = field(default_factory=list)
    late: int = 0
    failed: int = 0
    discarded: int = 0
    failures: list[str] = field(default_factory=list)
    meters: list[ConfigRecord] = field(default_factory=list)
    replied: int = 0

    def followed_by(self, second: RoundOutcome) -> RoundOutcome:
        """This phase's outcome, then a second phase's within the same round."""
        return RoundOutcome(
            kept=second.kept,
            late=self.late + second.late,
            failed=self.failed + second.failed,
            discarded=self.discarded + second.discarded,
            failures=self.failures + second.failures,
            meters=self.meters + second.meters,
            replied=self.replied,
        )


def classify_replies(
    replies: list[Message], target: int, validate: ReplyValidator | None = None
) -> RoundOutcome:
    """Split replies (in device order) into kept, late, failed; extras beyond ``target`` go."""
    outcome = RoundOutcome()
    on_time: list[tuple[float, Message]] = []
    for reply in replies:
        problem = (
            failure_cause(reply.error.reason)
            if reply.has_error()
            else reply_problem(reply) or (validate(reply) if validate else None)
        )
        if problem is not None:
            outcome.failed += 1
            outcome.failures.append(problem)
            continue
        meter = reply.content[protocol.SIM_METER]
        outcome.meters.append(meter)
        outcome.replied += 1
        if meter[protocol.STATUS] == protocol.STATUS_OK:
            on_time.append((float(meter[protocol.TOTAL_S]), reply))
        else:
            outcome.late += 1
    fastest = sorted(on_time, key=lambda pair: pair[0])
    kept = {id(m) for _, m in fastest[:target]}
    outcome.discarded = max(0, len(fastest) - target)
    outcome.kept = [m for _, m in on_time if id(m) in kept]
    return outcome


def round_duration(outcome: RoundOutcome, rounds: Rounds, target: int) -> float:
    """When the cloud closes the round, in seconds after its start.

    With overcommitment, as soon as the target number of devices finished;
    otherwise when the slowest device finished, or at the deadline if one
    is late. A crashed device drops its connection and is not waited for.
    """
    if rounds.overcommit > 1.0 and len(outcome.kept) >= target:
        return max(float(m.content[protocol.SIM_METER][protocol.TOTAL_S]) for m in outcome.kept)
    if outcome.late:
        return rounds.deadline_s
    finished = [float(m.content[protocol.SIM_METER][protocol.TOTAL_S]) for m in outcome.kept]
    return min(rounds.deadline_s, max(finished, default=0.0))
