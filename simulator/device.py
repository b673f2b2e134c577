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
device runs, when they differ from the factory model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from simulator.errors import DeviceCrash
from simulator.fleet import crashes
from simulator.metering import wire_bytes
from simulator.network import round_timing
from simulator.seeding import torch_seed_for
from simulator.world import World, WorldSpec
from strategies import wire
from strategies.base import DeviceKit, Weights

HELD_KEY = "held-weights"
PARTITION_KEY = "partition-id"


@contextmanager
def device_threads() -> Iterator[None]:
    """Run device compute on one thread, as every engine does (keeps results identical)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def device_index(context: Context) -> int:
    return int(context.node_config[PARTITION_KEY])


def held_weights(context: Context) -> Weights | None:
    record = context.state.get(HELD_KEY)
    return record.to_torch_state_dict() if isinstance(record, ArrayRecord) else None


def _kit(world: World, device: int, round_index: int) -> DeviceKit:
    return DeviceKit(
        model=world.model,
        pretrained=world.pretrained,
        forward_flops_per_sample=world.forward_flops,
        seed=torch_seed_for(world.seed, "device-train", device, round_index),
    )


def train_step(world: World, message: Message, context: Context) -> Message:
    """One device-round: window, method step, metering, deadline, state commit."""
    device = device_index(context)
    profile = world.fleet[device]
    sim = message.content[wire.SIM_CONFIG]
    round_index, start_s = int(sim[wire.ROUND]), float(sim[wire.START_S])
    if crashes(profile, round_index, world.seed):
        raise DeviceCrash(f"simulated crash of device {device} in round {round_index}")
    download_bytes = wire_bytes(message.content, exclude=wire.SIM_KEYS)
    window = world.streams.window(profile, start_s)
    held = held_weights(context)
    with device_threads():
        outcome = world.method.device.train(
            message.content,
            window.inputs,
            (window.labeled_x, window.labeled_y),
            held,
            _kit(world, device, round_index),
            world.params,
        )
    upload_bytes = wire_bytes(outcome.reply)
    timing = round_timing(
        profile,
        world.scenario.fleet.network,
        start_s,
        download_bytes,
        outcome.flops,
        upload_bytes,
        world.seed,
    )
    on_time = timing.total_s <= float(sim[wire.DEADLINE_S])
    if on_time and outcome.held is not None:
        context.state[HELD_KEY] = ArrayRecord(outcome.held)
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
        wire.TOTAL_S: timing.total_s,
    }
    reply = RecordDict(dict(outcome.reply.items()))
    reply[wire.SIM_METER] = ConfigRecord(meter)
    return Message(reply, reply_to=message)


def evaluate_step(world: World, message: Message, context: Context) -> Message:
    """Score the held model on fresh samples from the device's current distribution."""
    device = device_index(context)
    time_s = float(message.content[wire.SIM_CONFIG][wire.START_S])
    x, y = world.streams.eval_batch(world.fleet[device], time_s)
    weights = held_weights(context)
    model = world.model
    with device_threads(), torch.inference_mode():
        model.load_state_dict(weights if weights is not None else world.pretrained)
        correct = int((model(x).argmax(dim=1) == y).sum())
    meter = {wire.DEVICE: device, wire.ACCURACY: correct / len(y), wire.SAMPLES: len(y)}
    return Message(RecordDict({wire.SIM_METER: ConfigRecord(meter)}), reply_to=message)


def register_step(message: Message, context: Context) -> Message:
    """Tell the cloud which fleet device this node simulates (simulator control)."""
    meter = {wire.DEVICE: device_index(context)}
    return Message(RecordDict({wire.SIM_METER: ConfigRecord(meter)}), reply_to=message)


def make_device_app(spec: WorldSpec) -> ClientApp:
    """The ClientApp for one run; ``spec`` is all it carries (it is pickled per call on Ray)."""
    app = ClientApp()

    @app.train()
    def _train(message: Message, context: Context) -> Message:
        return train_step(World.get(spec), message, context)

    @app.evaluate()
    def _evaluate(message: Message, context: Context) -> Message:
        return evaluate_step(World.get(spec), message, context)

    @app.query()
    def _query(message: Message, context: Context) -> Message:
        return register_step(message, context)

    return app
