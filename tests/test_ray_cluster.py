"""The ray engine joins a Ray cluster and spreads the fleet over its nodes.

A Ray head and a second Ray node start on loopback (two raylets on this
machine, one CPU each), the tiny scenario runs against the cluster's address,
and each node's shard must have answered device messages.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.run.plan import RunPlan
from simulator.run.runner import run_plan
from simulator.scenario.schema import Scenario

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ray(*args: str) -> None:
    subprocess.run([str(RAY), *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def two_node_cluster():
    if not RAY.exists() and shutil.which("ray") is None:
        pytest.skip("the ray command is not installed")
    port = _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        _ray("start", "--head", f"--port={port}", "--include-dashboard=false", *common)
        _ray("start", f"--address=127.0.0.1:{port}", *common)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.ray
def test_a_run_spreads_over_both_nodes_of_a_cluster(
    two_node_cluster, tmp_path, tiny_document, caplog
):
    tiny_document["engine"] = {"kind": "ray", "ray_address": two_node_cluster, "shards": 2}
    scenario = Scenario.model_validate(tiny_document)
    with caplog.at_level("INFO", logger="persona_fleet"):
        run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path), show_progress=False)
    (line,) = [r.getMessage() for r in caplog.records if "shards on" in r.getMessage()]
    assert "2 shards on 2 node(s)" in line, line
    answered = {node: int(n) for node, n in re.findall(r"\(node (\d)\): (\d+)", line)}
    assert sorted(answered) == ["0", "1"] and min(answered.values()) > 0, line
