"""The peers benchmark's workload is the flagship's FedAvg with drift and losses turned off."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from simulator.scenario.loading import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def _peers():
    spec = importlib.util.spec_from_file_location("peers", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_workload_is_one_fedavg_with_every_sample_labeled_and_no_drift():
    peers = _peers()
    scenario = load_scenario(peers.SCENARIO, peers.workload(200, 20, 10, "inline"))
    (method,) = scenario.methods
    assert method.name == "fedavg" and method.params["local_epochs"] == 2
    assert scenario.schedule is None and not scenario.shifts
    assert scenario.data.labeled_fraction == 1.0 and scenario.data.label_delay_s == 0
    assert round(scenario.rounds.participation * scenario.fleet.devices) == 20
    assert scenario.model.width == 0.25 and scenario.data.dataset == "mnist"
