"""The cloud's round loop in simulated time, run as the ServerApp body on any engine.

Each round: draw the devices reachable now (``sampling``), let the method's
cloud half configure the round, exchange messages through the Grid, classify
replies (``outcome``), aggregate the kept ones, run a two-phase method's
second exchange, and advance the simulated clock by the round's duration (the
slowest kept participant, capped by the deadline). Evaluation ticks fall on a
fixed time grid shared by all methods (``evaluation``). Rows go to a
``RowSink``; between rounds a ``CheckpointSession`` may save the loop's state,
and a stop request ends the loop there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from basemodel.cloud_device import resolve_cloud_device
from simulator.engine import protocol
from simulator.engine.checkpointing import CheckpointSession
from simulator.engine.control import register_devices
from simulator.engine.deployment import Deployment
from simulator.engine.evaluation import GRID_TIMEOUT_S, evaluate_devices
from simulator.engine.loop_state import CheckpointStore, LoopPosition, RowSink
from simulator.engine.outcome import RoundOutcome, classify_replies, round_duration
from simulator.engine.requests import NO_REQUESTS, Requests, poll_requests
from simulator.engine.rows import RoundFacts, end_row, eval_row, round_row
from simulator.engine.sampling import DeviceSampler
from simulator.engine.stop import StopRequested, StopSwitch
from simulator.world.cloud import cloud_resources
from simulator.world.known import context_kind
from strategies.base import CloudSetup, FleetStrategy, TwoPhaseStrategy

log = logging.getLogger("persona_fleet")
ProgressCallback = Callable[[int, float, float | None], None]  # round, clock, last accuracy


@dataclass
class RoundContext:
    """What one round's exchanges share: the strategy, the round's clock, who was messaged."""

    strategy: FleetStrategy
    config: ConfigRecord
    sent_to: list[int] = field(default_factory=list)  # device indices messaged this round


class RoundLoop:
    """Runs one method for one seed: rounds, clock, evaluation ticks, metrics rows."""

    def __init__(
        self,
        deployment: Deployment,
        initial_arrays: ArrayRecord,
        rows: RowSink,
        on_progress: ProgressCallback | None = None,
        checkpoints: CheckpointStore | None = None,
        stop: StopSwitch | None = None,
    ):
        self.deployment = deployment
        self.world = deployment.world
        self.rounds = self.world.scenario.rounds
        self.cloud_flops_per_s = self.world.scenario.cloud.flops_per_s
        self.rows = rows
        self.on_progress = on_progress or (lambda r, t, acc: None)
        self.initial_arrays = initial_arrays
        self.checkpoints = checkpoints
        self.stop = stop or StopSwitch()
        self.sampler = DeviceSampler(self.world)
        self.node_of: dict[int, int] = {}
        self.device_of: dict[int, int] = {}
        self.last_accuracy: float | None = None
        self.round_start_s = 0.0
        self.requests = NO_REQUESTS
        # On real devices a round's wall time is a measurement; rows keep it (``measured_wall_s``).
        self.real_time = self.world.scenario.engine.kind == "deployment"
        # The cloud's model after the last round (None until then), for a caller that
        # scores it directly (``benchmarks/peers.py``); a run's figures never read it.
        self.final_arrays: ArrayRecord | None = None

    # -- the cloud's view of sampling -----------------------------------------------
    def sample_nodes(self, round_index: int) -> list[int]:
        """This round's devices as Flower node ids (what a cloud half's sampler returns)."""
        devices = self.sampler.sample(round_index, self.round_start_s, self.requests.asking)
        return [self.node_of[d] for d in devices]

    def evaluate(self, grid: Grid, time_s: float, devices: list[int]) -> None:
        """One evaluation tick: score ``devices`` and write the row."""
        tick = evaluate_devices(grid, self.node_of, time_s, devices)
        contexts = {d: self._context_kind(d, time_s) for d in tick.scores}
        row = eval_row(
            time_s, tick.scores, len(devices), tick.further, len(tick.nonfinite), contexts
        )
        self.last_accuracy = row["acc_mean"]
        self.rows.append(row)

    def _context_kind(self, device: int, time_s: float) -> str | None:
        """Whether the device's context at ``time_s`` is one the cloud knows (``known``)."""
        shifts = self.world.streams.shifts_at(self.world.fleet[device], time_s)
        return context_kind(shifts, self.world.scenario.pretrain.known_contexts())

    # -- the run ----------------------------------------------------------------------
    def run(self, grid: Grid) -> None:
        """The ServerApp body: register, then rounds and evaluation ticks to the horizon."""
        started = time.perf_counter()
        fleet_size = len(self.world.fleet)
        self.node_of = register_devices(grid, fleet_size)
        registration_s = time.perf_counter() - started
        self.device_of = {node: device for device, node in self.node_of.items()}
        method = self.deployment.method
        asked = resolve_cloud_device(self.world.scenario.cloud.device)
        cloud_device = method.cloud_device_for(asked)
        if asked != cloud_device:
            log.info("%s: its cloud computes on the CPU only (cloud.device %s)", method.name, asked)
        strategy = method.build_cloud(
            CloudSetup(
                self.deployment.params,
                self.initial_arrays,
                self.sample_nodes,
                self.world.seed,
                resources=cloud_resources(self.world),
                device_of=self.device_of.__getitem__,
                fleet_size=fleet_size,
                cloud_device=cloud_device,
            )
        )
        eval_devices = self.sampler.eval_devices()
        session = None
        if self.checkpoints is not None:
            session = CheckpointSession(self.checkpoints, grid, self.node_of)
        arrays, at = self.initial_arrays, LoopPosition()
        resume = self.checkpoints.resume_from if self.checkpoints else None
        if resume is not None and session is not None:
            arrays = session.restore(strategy, resume)
            at = LoopPosition(**vars(resume.position))
            self.last_accuracy = resume.position.last_accuracy
            started -= resume.wall_s
        self.stop.in_loop = True
        try:
            arrays = self._rounds(grid, strategy, arrays, at, eval_devices, started, session)
        finally:
            self.stop.in_loop = False
        self.final_arrays = arrays
        while at.next_eval_s <= self.rounds.horizon_s:
            self.evaluate(grid, at.next_eval_s, eval_devices)
            at.next_eval_s += self.rounds.eval_every_s
        if session is not None:
            session.save_final(strategy, arrays, at, self.rows.offset())
        sim_duration_s = max(at.clock_s, self.rounds.horizon_s)
        self.on_progress(at.rounds_run, sim_duration_s, self.last_accuracy)
        wall_s = time.perf_counter() - started
        facts = strategy.run_facts()
        self.rows.append(
            end_row(
                at.rounds_run,
                sim_duration_s,
                wall_s,
                registration_s,
                fleet_size,
                facts,
                str(cloud_device),
                self.world.model_facts(),
            )
        )

    def _rounds(
        self,
        grid: Grid,
        strategy: FleetStrategy,
        arrays: ArrayRecord,
        at: LoopPosition,
        eval_devices: list[int],
        started: float,
        session: CheckpointSession | None,
    ) -> ArrayRecord:
        """Rounds (and the evaluation ticks before each) until the count or the horizon.

        Between rounds: a checkpoint when one is due, and on a stop request
        (Ctrl-C) a checkpoint and ``StopRequested``.
        """
        for round_index in range(at.next_round, self.rounds.count + 1):
            start_s = max(at.clock_s, (round_index - 1) * self.rounds.period_s)
            if start_s >= self.rounds.horizon_s:
                break
            while at.next_eval_s <= start_s:
                self.evaluate(grid, at.next_eval_s, eval_devices)
                at.next_eval_s += self.rounds.eval_every_s
            self.round_start_s = start_s
            self.requests = self._poll(grid, round_index, start_s)
            arrays, duration_s, sent_to = self.play_round(
                grid, strategy, arrays, round_index, start_s, started
            )
            if session is not None:
                session.touch(sent_to)
            at.clock_s = start_s + duration_s
            at.rounds_run, at.next_round = round_index, round_index + 1
            self.on_progress(round_index, at.clock_s, self.last_accuracy)
            if round_index == self.rounds.count:
                break
            stopping = self.stop.requested
            elapsed_s = time.perf_counter() - started
            if session is not None and (stopping or session.store.due(round_index, elapsed_s)):
                at.last_accuracy = self.last_accuracy
                session.save(strategy, arrays, at, self.rows.offset(), started)
            if stopping:
                raise StopRequested(f"stopped after round {round_index}")
        return arrays

    def _poll(self, grid: Grid, round_index: int, start_s: float) -> Requests:
        """Who asks for service at this round's start (methods whose devices may ask)."""
        if not self.deployment.method.requests_service or self.rounds.request_share == 0:
            return NO_REQUESTS
        reachable = self.sampler.reachable(round_index, start_s)
        return poll_requests(grid, self.node_of, reachable, start_s)

    def play_round(
        self,
        grid: Grid,
        strategy: FleetStrategy,
        arrays: ArrayRecord,
        round_index: int,
        start_s: float,
        started: float,
    ) -> tuple[ArrayRecord, float, list[int]]:
        """One round, both phases: the new global arrays, its duration, the devices messaged.

        Writes the round's row. (Tests wrap this to interrupt a run mid-round.)
        """
        config = ConfigRecord(
            {
                protocol.ROUND: round_index,
                protocol.START_S: start_s,
                protocol.DEADLINE_S: self.rounds.deadline_s,
            }
        )
        context = RoundContext(strategy, config)
        messages = list(strategy.configure_train(round_index, arrays, ConfigRecord(), grid))
        exchanged = time.perf_counter()
        outcome = self._exchange(grid, messages, context)
        new_arrays, metrics = strategy.aggregate_train(round_index, outcome.kept)
        cloud_flops = strategy.take_cloud_flops()
        if isinstance(strategy, TwoPhaseStrategy):  # the cloud answers within the round
            # Devices wait while the cloud computes its answers (at cloud.flops_per_s).
            context.config = ConfigRecord(
                {**dict(config), protocol.CLOUD_S: cloud_flops / self.cloud_flops_per_s}
            )
            second = self._exchange(
                grid, list(strategy.configure_apply(round_index, grid)), context
            )
            apply_metrics = strategy.aggregate_apply(round_index, second.kept)
            cloud_flops += strategy.take_cloud_flops()
            outcome = outcome.followed_by(second)
            if apply_metrics is not None:
                metrics = {**dict(metrics or {}), **dict(apply_metrics)}
        target = self.sampler.target_per_round
        duration_s = round_duration(outcome, self.rounds, target)
        wall_s = time.perf_counter() - started
        facts = RoundFacts(
            round_index,
            start_s,
            duration_s,
            len(messages),
            wall_s,
            cloud_flops,
            self.requests,
            self.world.behaviours is not None,
            time.perf_counter() - exchanged if self.real_time else None,
        )
        self.rows.append(round_row(facts, outcome, metrics))
        return (new_arrays if new_arrays is not None else arrays), duration_s, context.sent_to

    def _exchange(self, grid: Grid, messages: list[Message], context: RoundContext) -> RoundOutcome:
        """Send one phase's messages (with the round's clock attached) and classify replies."""
        for message in messages:
            message.content[protocol.SIM_CONFIG] = context.config
            context.sent_to.append(self.device_of[int(message.metadata.dst_node_id)])
        replies = list(grid.send_and_receive(messages, timeout=GRID_TIMEOUT_S)) if messages else []
        ordered = sorted(replies, key=lambda m: self.device_of[int(m.metadata.src_node_id)])
        target = self.sampler.target_per_round
        return classify_replies(ordered, target, context.strategy.validate_reply)
