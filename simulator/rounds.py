"""The cloud's round loop in simulated time, run inside a Flower ServerApp.

Each round: pick the devices online now (seeded), let the method's Strategy
configure the round, exchange messages through the Grid, read each device's
metering, drop devices that were late or failed, aggregate the rest with the
Strategy, and advance the simulated clock by the round's duration (the
slowest kept participant, capped by the deadline). Evaluation ticks fall on a
fixed time grid shared by all methods, so their curves are comparable.

Between rounds the loop may save a checkpoint (``simulator.checkpoint``), and
stops there when the user asked it to (``simulator.stopping``); a resumed run
starts from a checkpoint's position instead of round 1.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from simulator.checkpoint import (
    Checkpoint,
    Checkpointer,
    LoopPosition,
    encode_arrays,
    save_checkpoint,
)
from simulator.control import (
    FleetStateError,
    collect_states,
    register_devices,
    restore_states,
)
from simulator.fleet import is_online
from simulator.network import bandwidth_factor
from simulator.outcome import RoundOutcome, classify_replies, round_duration
from simulator.results import MetricsLog
from simulator.seeding import rng_for
from simulator.stopping import StopRequested, StopSwitch
from simulator.world import World
from strategies import wire
from strategies.base import CloudSetup

RoundCallback = Callable[[int, float, float | None], None]
GRID_TIMEOUT_S = 3600.0


class RoundDriver:
    """Runs one method for one seed: rounds, clock, evaluation ticks, metrics rows."""

    def __init__(
        self,
        world: World,
        strategy_factory: Callable[[CloudSetup], Strategy],
        initial_arrays: ArrayRecord,
        log: MetricsLog,
        on_progress: RoundCallback | None = None,
        checkpointer: Checkpointer | None = None,
        stop: StopSwitch | None = None,
    ):
        self.world = world
        self.scenario = world.scenario
        self.seed = world.seed
        self.log = log
        self.on_progress = on_progress or (lambda r, t, acc: None)
        self.initial_arrays = initial_arrays
        self.strategy_factory = strategy_factory
        self.node_of: dict[int, int] = {}
        self.device_of: dict[int, int] = {}
        self.last_accuracy: float | None = None
        self.last_round_duration = 0.0
        self.round_start_s = 0.0
        self.checkpointer = checkpointer
        self.stop = stop or StopSwitch()
        self._touched: set[int] = set()  # devices sent a round message since the last checkpoint

    # -- sampling -------------------------------------------------------------
    def target_per_round(self) -> int:
        rounds = self.scenario.rounds
        return max(1, round(rounds.participation * len(self.world.fleet)))

    def sample_nodes(self, round_index: int) -> list[int]:
        """Uniform sample of the devices reachable this round (with optional overcommit).

        Reachable: online this round (availability) and with its link up at the
        round's start (not in an outage slot): a device the cloud cannot reach
        cannot be given a task.
        """
        start_s = self.round_start_s
        trace = self.scenario.fleet.network
        online = [
            p.index
            for p in self.world.fleet
            if is_online(p, round_index, self.seed)
            and bandwidth_factor(trace, p.index, start_s, self.seed) > 0.0
        ]
        wanted = math.ceil(self.target_per_round() * self.scenario.rounds.overcommit)
        count = min(wanted, len(online))
        chosen = rng_for(self.seed, "sample", round_index).choice(online, count, replace=False)
        return [self.node_of[int(d)] for d in sorted(chosen.tolist())]

    def eval_devices(self) -> list[int]:
        fleet = len(self.world.fleet)
        count = min(self.scenario.rounds.eval_devices, fleet)
        chosen = rng_for(self.seed, "eval-devices").choice(fleet, count, replace=False)
        return sorted(int(d) for d in chosen)

    # -- one round ------------------------------------------------------------
    def _sort_replies(self, replies: list[Message]) -> list[Message]:
        return sorted(replies, key=lambda m: self.device_of[int(m.metadata.src_node_id)])

    def classify(self, replies: list[Message], strategy: Strategy | None = None) -> RoundOutcome:
        """Replies in device order, split into kept, late and failed (see ``outcome``)."""
        validate = getattr(strategy, "validate_reply", None)
        return classify_replies(self._sort_replies(replies), self.target_per_round(), validate)

    def round_duration(self, outcome: RoundOutcome) -> float:
        return round_duration(outcome, self.scenario.rounds, self.target_per_round())

    # -- evaluation -------------------------------------------------------------
    def evaluate(self, grid: Grid, time_s: float, devices: list[int]) -> None:
        config = ConfigRecord({wire.ROUND: 0, wire.START_S: time_s})
        content = RecordDict({wire.SIM_CONFIG: config})
        messages = [
            Message(content, dst_node_id=self.node_of[d], message_type=MessageType.EVALUATE)
            for d in devices
        ]
        scores: dict[int, float] = {}
        for reply in grid.send_and_receive(messages, timeout=GRID_TIMEOUT_S):
            if not reply.has_error():
                meter = reply.content[wire.SIM_METER]
                scores[int(meter[wire.DEVICE])] = float(meter[wire.ACCURACY])
        ordered = sorted(scores)
        accuracies = [scores[d] for d in ordered]
        mean = sum(accuracies) / len(accuracies) if accuracies else float("nan")
        self.last_accuracy = mean
        self.log.append(
            {
                "kind": "eval",
                "time_s": time_s,
                "acc_mean": mean,
                "failed": len(messages) - len(scores),
                "devices": ordered,
                "accs": accuracies,
            }
        )

    # -- the run ----------------------------------------------------------------
    def run(self, grid: Grid) -> None:
        """The ServerApp body: register, then rounds and evaluation ticks to the horizon."""
        started = time.perf_counter()
        fleet_size = len(self.world.fleet)
        self.node_of = register_devices(grid, fleet_size)
        registration_s = time.perf_counter() - started
        self.device_of = {node: device for device, node in self.node_of.items()}
        params = self.world.params
        strategy = self.strategy_factory(
            CloudSetup(
                params,
                self.initial_arrays,
                self.sample_nodes,
                self.seed,
                resources=self.world.cloud_resources(),
                device_of=self.device_of.__getitem__,
                fleet_size=fleet_size,
            )
        )
        rounds = self.scenario.rounds
        eval_devices = self.eval_devices()
        arrays, at = self.initial_arrays, LoopPosition()
        resume = self.checkpointer.resume_from if self.checkpointer else None
        if resume is not None:
            arrays, at = self._resume(grid, strategy, resume)
            started -= resume.wall_s
        self.stop.in_loop = True
        try:
            arrays = self._rounds(grid, strategy, arrays, at, eval_devices, started)
        finally:
            self.stop.in_loop = False
        while at.next_eval_s <= rounds.horizon_s:
            self.evaluate(grid, at.next_eval_s, eval_devices)
            at.next_eval_s += rounds.eval_every_s
        sim_duration_s = max(at.clock_s, rounds.horizon_s)
        self.on_progress(at.rounds_run, sim_duration_s, self.last_accuracy)
        self.log.append(
            {
                "kind": "end",
                "rounds": at.rounds_run,
                "sim_duration_s": sim_duration_s,
                "wall_s": time.perf_counter() - started,
                "registration_wall_s": registration_s,
                "devices": fleet_size,
            }
        )

    def _rounds(
        self,
        grid: Grid,
        strategy: Strategy,
        arrays: ArrayRecord,
        at: LoopPosition,
        eval_devices: list[int],
        started: float,
    ) -> ArrayRecord:
        """Rounds (and the evaluation ticks before each) until the count or the horizon.

        Between rounds: a checkpoint when one is due, and on a stop request
        (Ctrl-C) a checkpoint and ``StopRequested``.
        """
        rounds = self.scenario.rounds
        for round_index in range(at.next_round, rounds.count + 1):
            start_s = max(at.clock_s, (round_index - 1) * rounds.period_s)
            if start_s >= rounds.horizon_s:
                break
            while at.next_eval_s <= start_s:
                self.evaluate(grid, at.next_eval_s, eval_devices)
                at.next_eval_s += rounds.eval_every_s
            self.round_start_s = start_s
            arrays = self._one_round(grid, strategy, arrays, round_index, start_s, started)
            at.clock_s = start_s + self.last_round_duration
            at.rounds_run, at.next_round = round_index, round_index + 1
            self.on_progress(round_index, at.clock_s, self.last_accuracy)
            if round_index == rounds.count:
                break
            stopping = self.stop.requested
            elapsed_s = time.perf_counter() - started
            if self.checkpointer and (stopping or self.checkpointer.due(round_index, elapsed_s)):
                self._checkpoint(grid, strategy, arrays, at, started)
            if stopping:
                raise StopRequested(f"stopped after round {round_index}")
        return arrays

    # -- checkpoints ---------------------------------------------------------------
    def _checkpoint(
        self,
        grid: Grid,
        strategy: Strategy,
        arrays: ArrayRecord,
        at: LoopPosition,
        started: float,
    ) -> None:
        """Save everything needed to continue after this round (see ``simulator.checkpoint``).

        If a device cannot report its state, this checkpoint is skipped (the
        previous one stays valid) and the run goes on.
        """
        checkpointer = self.checkpointer
        assert checkpointer is not None
        began = time.perf_counter()
        try:
            fresh = collect_states(grid, self.node_of, sorted(self._touched))
        except FleetStateError as err:
            logging.getLogger("persona_fleet").warning(
                "checkpoint after round %d skipped: %s", at.rounds_run, err
            )
            return
        checkpointer.device_states.update(fresh)
        state_of = getattr(strategy, "checkpoint_state", None)
        at.last_accuracy = self.last_accuracy
        checkpoint = Checkpoint(
            key=checkpointer.key,
            position=replace(at),
            arrays=encode_arrays(arrays),
            strategy=state_of() if state_of is not None else {},
            devices=dict(checkpointer.device_states),
            log_offset=self.log.offset(),
            wall_s=time.perf_counter() - started,
        )
        save_checkpoint(checkpointer.path, checkpoint)
        self._touched.clear()
        checkpointer.record_cost(time.perf_counter() - began)

    def _resume(
        self, grid: Grid, strategy: Strategy, checkpoint: Checkpoint
    ) -> tuple[ArrayRecord, LoopPosition]:
        """Put the devices, the method's cloud state and the loop back where they were."""
        restore_states(grid, self.node_of, checkpoint.devices)
        restore = getattr(strategy, "restore_state", None)
        if restore is not None:
            restore(checkpoint.strategy)
        elif checkpoint.strategy:
            raise RuntimeError(f"{type(strategy).__name__} cannot restore its checkpointed state")
        self.last_accuracy = checkpoint.position.last_accuracy
        return checkpoint.global_arrays(), replace(checkpoint.position)

    def _one_round(
        self,
        grid: Grid,
        strategy: Strategy,
        arrays: ArrayRecord,
        round_index: int,
        start_s: float,
        started: float,
    ) -> ArrayRecord:
        rounds = self.scenario.rounds
        config = ConfigRecord(
            {wire.ROUND: round_index, wire.START_S: start_s, wire.DEADLINE_S: rounds.deadline_s}
        )
        messages = list(strategy.configure_train(round_index, arrays, ConfigRecord(), grid))
        outcome = self._exchange(grid, messages, config, strategy)
        new_arrays, metrics = strategy.aggregate_train(round_index, outcome.kept)
        configure_apply = getattr(strategy, "configure_apply", None)
        if configure_apply is not None:  # a two-phase method: the cloud answers in-round
            second = self._exchange(
                grid, list(configure_apply(round_index, grid)), config, strategy
            )
            apply_metrics = strategy.aggregate_apply(round_index, second.kept)
            outcome = outcome.followed_by(second)
            if apply_metrics is not None:
                metrics = {**dict(metrics or {}), **dict(apply_metrics)}
        self.last_round_duration = self.round_duration(outcome)
        self.log.append(
            self._round_row(round_index, start_s, len(messages), outcome, metrics, started)
        )
        return new_arrays if new_arrays is not None else arrays

    def _exchange(
        self, grid: Grid, messages: list[Message], config: ConfigRecord, strategy: Strategy
    ) -> RoundOutcome:
        """Send one phase's messages (with the round's clock attached) and classify replies."""
        for message in messages:
            message.content[wire.SIM_CONFIG] = config
            self._touched.add(self.device_of[int(message.metadata.dst_node_id)])
        replies = list(grid.send_and_receive(messages, timeout=GRID_TIMEOUT_S)) if messages else []
        return self.classify(replies, strategy)

    def _round_row(
        self,
        round_index: int,
        start_s: float,
        sent: int,
        outcome: RoundOutcome,
        metrics: Any,
        started: float,
    ) -> dict[str, Any]:
        def total(key: str) -> float:
            return sum(float(m[key]) for m in outcome.meters)

        return {
            "kind": "round",
            "round": round_index,
            "start_s": start_s,
            "duration_s": self.last_round_duration,
            "sampled": sent,
            "kept": len(outcome.kept),
            "late": outcome.late,
            "failed": outcome.failed,
            "discarded": outcome.discarded,
            "failures": outcome.failures[:5],
            "replied": outcome.replied,
            "bytes_up": total(wire.UPLOAD_BYTES),
            "bytes_down": total(wire.DOWNLOAD_BYTES),
            "flops": total(wire.FLOPS),
            "backward_passes": int(total(wire.BACKWARD_PASSES)),
            "compute_s": total(wire.COMPUTE_S),
            "train_metrics": dict(metrics) if metrics is not None else {},
            "wall_s": time.perf_counter() - started,
        }
