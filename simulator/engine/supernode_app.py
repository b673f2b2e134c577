"""The device ClientApp a real SuperNode serves: one fleet device, built from its scenario.

A SuperNode is started (``simulate supernode``) with two node-config values:
``scenario``, the file of the resolved scenario (what it simulates, written
by that command), and ``device``, the fleet device it is. Every message the
cloud sends carries ``SIM_RUN`` (the scenario's fingerprint, the method, the
seed); from it and its own scenario the device builds its world (its
profile, data stream and drift are pure functions of scenario and seed) and
answers through the same ``DeviceRuntime`` as every engine. Flower starts one
process per message, so each answer rebuilds the world (the starting model
comes from the pretraining cache, which the start command filled) and keeps
the device's state in the node's ``Context``, which lives for the Flower run.

A message of another scenario, a device outside the fleet or a method the
scenario does not name is refused with an error reply naming the fix.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from simulator.engine import protocol
from simulator.engine.clientapp import serve_every_message
from simulator.engine.deployment import Deployment, DeploymentSpec
from simulator.engine.deployment_grid import EXCHANGE_LOG_ENV
from simulator.engine.runtime import DeviceRuntime
from simulator.engine.state import ContextStore, DeviceState
from simulator.scenario.loading import parse_scenario, world_fingerprint
from simulator.scenario.schema import Scenario
from simulator.world.build import WorldSpec
from simulator.world.cloud import pretrain_for

NODE_SCENARIO, NODE_DEVICE = protocol.NODE_SCENARIO, protocol.NODE_DEVICE
RUN_KEY = "sim-run-key"  # Context record: the method-seed run the state belongs to


class WrongRun(ValueError):
    """A message this SuperNode cannot serve (another scenario, device or method)."""


@dataclass(frozen=True)
class NodeScenario:
    """The scenario one SuperNode serves, as it read it."""

    scenario: Scenario
    scenario_json: str
    fingerprint: str


@lru_cache(maxsize=4)
def read_node_scenario(path: str) -> NodeScenario:
    """The resolved scenario a SuperNode was started with."""
    document = json.loads(Path(path).read_text())
    scenario = parse_scenario(document, path)
    return NodeScenario(scenario, json.dumps(document, sort_keys=True), world_fingerprint(scenario))


def node_device(context: Context, fleet_size: int, name: str) -> int:
    """The fleet device this SuperNode serves, checked against the fleet."""
    device = context.node_config.get(NODE_DEVICE)
    if not isinstance(device, int) or not 0 <= device < fleet_size:
        raise WrongRun(
            f"this SuperNode serves device {device!r}, outside the {fleet_size}-device fleet of "
            f"scenario {name}: start it with --device 0 to {fleet_size - 1}"
        )
    return device


def device_spec(node: NodeScenario, stamp: ConfigRecord) -> DeploymentSpec:
    """The method-seed run a stamped message belongs to, as this SuperNode builds it."""
    fingerprint = str(stamp[protocol.FINGERPRINT])
    if fingerprint != node.fingerprint:
        raise WrongRun(
            f"this SuperNode serves scenario {node.scenario.name} (fingerprint "
            f"{node.fingerprint}) but the cloud runs fingerprint {fingerprint}: start the "
            "SuperNode with the cloud's scenario file and --set overrides"
        )
    method, seed = str(stamp[protocol.METHOD]), int(stamp[protocol.SEED])
    if method not in {m.name for m in node.scenario.methods}:
        raise WrongRun(f"method {method} is not in scenario {node.scenario.name}")
    pretrained, _ = pretrain_for(node.scenario, seed)
    world = WorldSpec(node.scenario_json, seed, str(pretrained), node.scenario)
    return DeploymentSpec(world, method)


class RunScopedStore(ContextStore):
    """A device's state in its node Context, for one method-seed run of a Flower run.

    One Flower run may play several method-seed runs in turn: the state left
    by an earlier one is not the next one's.
    """

    def __init__(self, context: Context, run_key: str):
        super().__init__(context)
        self.run_key = run_key

    def get(self, device: int) -> DeviceState:
        held = self.context.state.get(RUN_KEY)
        if not isinstance(held, ConfigRecord) or held.get("key") != self.run_key:
            return DeviceState()
        return super().get(device)

    def put(self, device: int, state: DeviceState) -> None:
        super().put(device, state)
        self.context.state[RUN_KEY] = ConfigRecord({"key": self.run_key})


def answer(message: Message, context: Context) -> Message:
    """One message to this SuperNode's device, answered as on every engine."""
    path = context.node_config.get(NODE_SCENARIO)
    if not isinstance(path, str) or not path:
        raise WrongRun("this SuperNode has no scenario: start it with simulate supernode")
    node = read_node_scenario(path)
    stamp = message.content.get(protocol.SIM_RUN)
    if not isinstance(stamp, ConfigRecord):
        raise WrongRun("a message without the run stamp: the cloud is not this project's")
    spec = device_spec(node, stamp)
    deployment = Deployment.get(spec)
    device = node_device(context, len(deployment.world.fleet), node.scenario.name)
    run_key = f"{stamp[protocol.FINGERPRINT]}/{spec.method}/{spec.world.seed}"
    runtime = DeviceRuntime(deployment, RunScopedStore(context, run_key), raise_errors=True)
    entered = time.time()
    (reply,) = runtime.handle([(device, message)])
    _log_answer(device, spec.method, message, entered)
    return reply


def _log_answer(device: int, method: str, message: Message, entered: float) -> None:
    """Where an exchange log is kept: when this device began and ended its answer.

    The download lies before ``entered`` and the upload after ``left``, which is
    how ``benchmarks/real_links.py`` tells them apart on the link's counters.
    """
    log = os.environ.get(EXCHANGE_LOG_ENV)
    config = message.content.get(protocol.SIM_CONFIG)
    if not log or not isinstance(config, ConfigRecord) or protocol.ROUND not in config:
        return
    line = {
        "device": device,
        "method": method,
        "round": config[protocol.ROUND],
        "type": message.metadata.message_type,
        "entered": entered,
        "left": time.time(),
    }
    with Path(log).with_suffix(".devices.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


device_app = ClientApp()
serve_every_message(device_app, answer)
