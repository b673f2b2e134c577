"""The device: one Flower ClientApp for every method.

For a training message the device builds its data window at the round's
simulated start, runs the method's device half, and meters what that cost:
the bytes received and sent (serialized size of the records), the FLOPs it
computed and the backward passes it ran. From those and its own network and
compute profile it works out the round's simulated duration; if that misses
the deadline it keeps its old model, as a real device whose upload never
arrived would. For an evaluation message it scores the model it holds on
fresh samples from its current distribution (test-then-adapt; not billed).

Per-device state lives in the node's Flower ``Context``: only the weights the
device runs, when they differ from the factory model, and the method's
records. Between rounds the cloud may ask for that state (a checkpoint) or
replace it (a resumed run).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from basemodel.threads import fixed_threads
from simulator.engine.deployment import Deployment, DeploymentSpec
from simulator.engine.failures import DeviceCrash
from simulator.engine.faults import MessageDropped, corrupt, draw_fault
from simulator.engine.metering import wire_bytes
from simulator.world.build import World
from simulator.world.fleet import crashes
from simulator.world.network import round_timing
from simulator.world.seeding import torch_seed_for
from strategies import wire
from strategies.base import (
    DeviceKit,
    DeviceStep,
    DeviceView,
    TrainOutcome,
    TwoPhaseDevice,
    Weights,
)

HELD_KEY = "held-weights"
PHASE_KEY = "sim-phase"
RECORD_PREFIX = "method:"
PARTITION_KEY = "partition-id"


def device_threads() -> AbstractContextManager[None]:
    """Device compute runs on one thread, on every engine (keeps results identical)."""
    return fixed_threads(1)


def device_index(context: Context) -> int:
    return int(context.node_config[PARTITION_KEY])


def held_weights(context: Context) -> Weights | None:
    record = context.state.get(HELD_KEY)
    return record.to_torch_state_dict() if isinstance(record, ArrayRecord) else None


def device_view(context: Context) -> DeviceView:
    records = RecordDict(
        {
            k.removeprefix(RECORD_PREFIX): v
            for k, v in context.state.items()
            if k.startswith(RECORD_PREFIX)
        }
    )
    return DeviceView(held_weights(context), records)


def load_held(world: World, context: Context, held: Weights | None = None) -> None:
    """Put the weights the device runs into the scratch model: factory, then overrides."""
    world.model.load_state_dict(world.pretrained)
    held = held if held is not None else held_weights(context)
    if held is not None:
        world.model.load_state_dict(held, strict=False)


def _kit(world: World, device: int, round_index: int) -> DeviceKit:
    return DeviceKit(
        model=world.model,
        pretrained=world.pretrained,
        forward_flops_per_sample=world.forward_flops,
        backbone_flops_per_sample=world.backbone_flops,
        seed=torch_seed_for(world.seed, "device-train", device, round_index),
    )


def _finish(
    deployment: Deployment,
    message: Message,
    context: Context,
    outcome: TrainOutcome,
    start_s: float,
    elapsed_s: float,
    download_bytes: int,
    final: bool,
    stall_s: float = 0.0,
) -> Message:
    """Meter a phase, apply the deadline, commit state if on time, build the reply.

    ``stall_s`` is time lost to an injected hang.
    """
    world = deployment.world
    device = device_index(context)
    sim = message.content[wire.SIM_CONFIG]
    upload_bytes = wire_bytes(outcome.reply)
    timing = round_timing(
        world.fleet[device],
        world.scenario.fleet.network,
        start_s + elapsed_s,
        download_bytes,
        outcome.flops,
        upload_bytes,
        world.seed,
    )
    total_s = elapsed_s + timing.total_s + stall_s
    on_time = total_s <= float(sim[wire.DEADLINE_S])
    if on_time and final:
        if outcome.held is not None:
            context.state[HELD_KEY] = ArrayRecord(outcome.held)
        for key, record in (outcome.records or {}).items():
            context.state[RECORD_PREFIX + key] = record
    if on_time and not final:
        context.state[PHASE_KEY] = ConfigRecord(
            {wire.ROUND: int(sim[wire.ROUND]), wire.TOTAL_S: total_s}
        )
    meter = {
        wire.DEVICE: device,
        wire.STATUS: wire.STATUS_OK if on_time else wire.STATUS_LATE,
        wire.DOWNLOAD_BYTES: download_bytes,
        wire.UPLOAD_BYTES: upload_bytes,
        wire.FLOPS: float(outcome.flops),
        wire.BACKWARD_PASSES: outcome.backward_passes,
        wire.DOWNLOAD_S: timing.download_s,
        wire.COMPUTE_S: timing.compute_s,
        wire.UPLOAD_S: timing.upload_s,
        wire.LATENCY_S: timing.latency_s,
        wire.TOTAL_S: total_s,
    }
    reply = RecordDict(dict(outcome.reply.items()))
    reply[wire.SIM_METER] = ConfigRecord(meter)
    return Message(reply, reply_to=message)


def train_step(deployment: Deployment, message: Message, context: Context) -> Message:
    """A round's first device step: window, method step, metering, deadline, state commit."""
    world = deployment.world
    device = device_index(context)
    profile = world.fleet[device]
    sim = message.content[wire.SIM_CONFIG]
    round_index, start_s = int(sim[wire.ROUND]), float(sim[wire.START_S])
    if crashes(profile, round_index, world.seed):
        raise DeviceCrash(f"simulated crash of device {device} in round {round_index}")
    download_bytes = wire_bytes(message.content, exclude=wire.SIM_KEYS)
    window = world.streams.window(profile, start_s)
    with device_threads():
        load_held(world, context)
        outcome = deployment.method.device.train(
            DeviceStep(
                message.content,
                window.inputs,
                (window.labeled_x, window.labeled_y),
                device_view(context),
                _kit(world, device, round_index),
                deployment.params,
            )
        )
    final = not deployment.method.two_phase
    fault = draw_fault(world.scenario.fleet.faults, device, round_index, world.seed)
    stall_s = 0.0
    if fault == "drop":
        raise MessageDropped(
            f"injected fault: reply of device {device} lost in round {round_index}"
        )
    if fault == "hang":
        stall_s = float(sim[wire.DEADLINE_S])  # stalls until past the deadline
    if fault in ("malformed", "nonfinite"):
        corrupted = corrupt(outcome.reply, fault, device, round_index, world.seed)
        outcome = TrainOutcome(
            corrupted, outcome.held, outcome.flops, outcome.backward_passes, outcome.records
        )
    return _finish(
        deployment, message, context, outcome, start_s, 0.0, download_bytes, final, stall_s
    )


def apply_step(deployment: Deployment, message: Message, context: Context) -> Message:
    """A two-phase method's second step: the cloud's answer to this round's reply."""
    world, half = deployment.world, deployment.method.device
    device = device_index(context)
    if not isinstance(half, TwoPhaseDevice):
        raise RuntimeError(f"{deployment.method.name} has no second phase")
    sim = message.content[wire.SIM_CONFIG]
    round_index = int(sim[wire.ROUND])
    phase = context.state.get(PHASE_KEY)
    if not isinstance(phase, ConfigRecord) or int(phase[wire.ROUND]) != round_index:
        raise RuntimeError(f"device {device}: second phase without a first in round {round_index}")
    download_bytes = wire_bytes(message.content, exclude=wire.SIM_KEYS)
    with device_threads():
        load_held(world, context)
        nothing = torch.empty(0)
        outcome = half.apply(
            DeviceStep(
                message.content,
                nothing,
                (nothing, nothing.long()),
                device_view(context),
                _kit(world, device, round_index),
                deployment.params,
            )
        )
    elapsed = float(phase[wire.TOTAL_S])
    start_s = float(sim[wire.START_S])
    return _finish(deployment, message, context, outcome, start_s, elapsed, download_bytes, True)


def evaluate_step(deployment: Deployment, message: Message, context: Context) -> Message:
    """Score what the device serves on fresh samples from its current distribution.

    The method picks the weights from the unlabeled inputs alone
    (``serving_weights``); the labels only score the prediction.
    """
    world = deployment.world
    device = device_index(context)
    time_s = float(message.content[wire.SIM_CONFIG][wire.START_S])
    x, y = world.streams.eval_batch(world.fleet[device], time_s)
    with device_threads(), torch.inference_mode():
        world.model.load_state_dict(world.pretrained)
        chosen = deployment.method.device.serving_weights(
            device_view(context), x, _kit(world, device, 0), deployment.params
        )
        if chosen is not None:
            world.model.load_state_dict(chosen, strict=False)
        correct = int((world.model(x).argmax(dim=1) == y).sum())
    meter = {wire.DEVICE: device, wire.ACCURACY: correct / len(y), wire.SAMPLES: len(y)}
    return Message(RecordDict({wire.SIM_METER: ConfigRecord(meter)}), reply_to=message)


def register_step(message: Message, context: Context) -> Message:
    """Tell the cloud which fleet device this node simulates (simulator control)."""
    meter = {wire.DEVICE: device_index(context)}
    return Message(RecordDict({wire.SIM_METER: ConfigRecord(meter)}), reply_to=message)


def snapshot_step(message: Message, context: Context) -> Message:
    """Report the device's persistent state (for a checkpoint); between rounds only."""
    state = {k: v for k, v in context.state.items() if k != PHASE_KEY}
    state[wire.SIM_METER] = ConfigRecord({wire.DEVICE: device_index(context)})
    return Message(RecordDict(state), reply_to=message)


def restore_step(message: Message, context: Context) -> Message:
    """Replace the device's persistent state with a checkpoint's (on resume)."""
    for key in list(context.state.keys()):
        del context.state[key]
    for key, record in message.content.items():
        if key not in wire.SIM_KEYS:
            context.state[key] = record
    meter = {wire.DEVICE: device_index(context)}
    return Message(RecordDict({wire.SIM_METER: ConfigRecord(meter)}), reply_to=message)


def make_device_app(spec: DeploymentSpec) -> ClientApp:
    """The ClientApp for one run; ``spec`` is all it carries (it is pickled per call on Ray)."""
    app = ClientApp()

    @app.train()
    def _train(message: Message, context: Context) -> Message:
        return train_step(Deployment.get(spec), message, context)

    @app.train(wire.APPLY_ACTION)
    def _apply(message: Message, context: Context) -> Message:
        return apply_step(Deployment.get(spec), message, context)

    @app.evaluate()
    def _evaluate(message: Message, context: Context) -> Message:
        return evaluate_step(Deployment.get(spec), message, context)

    @app.query()
    def _query(message: Message, context: Context) -> Message:
        return register_step(message, context)

    @app.query(wire.SNAPSHOT_ACTION)
    def _snapshot(message: Message, context: Context) -> Message:
        return snapshot_step(message, context)

    @app.query(wire.RESTORE_ACTION)
    def _restore(message: Message, context: Context) -> Message:
        return restore_step(message, context)

    return app
