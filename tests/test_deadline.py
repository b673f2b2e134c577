"""Deadline and failure rules: late or crashed devices contribute nothing and keep their model."""

from __future__ import annotations

import json

from flwr.app import ArrayRecord

from simulator.engine.deployment import Deployment, DeploymentSpec
from simulator.engine.inline import InlineGrid, use_cloud_identity
from simulator.engine.rounds import RoundLoop
from simulator.engine.runtime import DeviceRuntime
from simulator.engine.state import MemoryStore
from simulator.run.metrics_log import MetricsLog
from simulator.run.reader import read_rows
from simulator.scenario.schema import Scenario
from simulator.world.build import WorldSpec
from simulator.world.cloud import pretrain_for


def _run_inline(document, tmp_path, method: str = "fedavg"):
    scenario = Scenario.model_validate(document)
    pretrained, _ = pretrain_for(scenario, 0)
    world_spec = WorldSpec(json.dumps(scenario.model_dump(mode="json")), 0, str(pretrained))
    spec = DeploymentSpec(world_spec, method)
    deployment = Deployment.get(spec)
    world = deployment.world
    use_cloud_identity()
    store = MemoryStore()
    grid = InlineGrid(DeviceRuntime(deployment, store), len(world.fleet))
    path = tmp_path / "m.jsonl"
    with MetricsLog(path) as log:
        RoundLoop(deployment, ArrayRecord(world.pretrained), log).run(grid)
    return read_rows(path), store, world


def _no_failures(document):
    for cls in document["fleet"]["classes"]:
        cls["crash_rate"] = 0.0
        cls["availability"] = 1.0
    return document


def test_devices_past_the_deadline_are_dropped_and_keep_their_model(tmp_path, tiny_document):
    document = _no_failures(tiny_document)
    document["rounds"]["deadline_s"] = 0.01  # nobody can move a model in 10 ms
    rows, store, _ = _run_inline(document, tmp_path)
    rounds = [r for r in rows if r["kind"] == "round"]
    assert all(r["kept"] == 0 and r["late"] == r["sampled"] > 0 for r in rounds)
    assert all(r["duration_s"] == 0.01 for r in rounds)
    assert store.states == {}  # nobody committed anything
    assert all(r["bytes_up"] > 0 for r in rounds)  # they did send, too late


def test_on_time_devices_commit_the_global_model(tmp_path, tiny_document):
    document = _no_failures(tiny_document)
    document["rounds"]["deadline_s"] = 1e6
    rows, store, _ = _run_inline(document, tmp_path)
    rounds = [r for r in rows if r["kind"] == "round"]
    assert all(r["late"] == 0 and r["kept"] == r["sampled"] for r in rounds)
    assert any(state.held is not None for state in store.states.values())
    # The round lasts as long as its slowest device, well under the deadline.
    assert all(0 < r["duration_s"] < 1e6 for r in rounds)


def test_crashing_devices_are_recorded_as_failed_and_the_run_goes_on(tmp_path, tiny_document):
    for cls in tiny_document["fleet"]["classes"]:
        cls["crash_rate"] = 1.0
    rows, _, _ = _run_inline(tiny_document, tmp_path)
    rounds = [r for r in rows if r["kind"] == "round"]
    assert len(rounds) == tiny_document["rounds"]["count"]
    assert all(r["failed"] == r["sampled"] and r["kept"] == 0 for r in rounds)
    assert rounds[0]["failures"][0].startswith("simulated crash of device")
    assert rows[-1]["kind"] == "end"


def test_offline_devices_are_not_sampled(tmp_path, tiny_document):
    document = _no_failures(tiny_document)
    document["fleet"]["classes"][0]["availability"] = 0.0
    _, store, world = _run_inline(document, tmp_path)
    slow = {p.index for p in world.fleet if p.device_class == "slow"}
    touched = {device for device, state in store.states.items() if state.held is not None}
    assert touched and not (touched & slow)
