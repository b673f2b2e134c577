"""Ctrl-C during a run leaves valid files behind: whole metrics rows and a summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import write_yaml


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_stop_signal_leaves_valid_metrics_and_a_summary(tmp_path, tiny_document, how):
    tiny_document["rounds"]["count"] = 5000
    tiny_document["methods"] = [{"name": "fedavg"}]
    scenario = write_yaml(tmp_path / "long.yaml", tiny_document)
    out = tmp_path / "runs"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", str(scenario), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    metrics = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(out.glob("tiny-test/*/metrics/fedavg__seed0.jsonl"))
        if found and found[0].read_text().count('"kind":"round"') >= 3:
            metrics = found[0]
            break
        time.sleep(0.2)
    assert metrics is not None, "the run never wrote three rounds"
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    lines = metrics.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line is whole JSON
    rounds = [r["round"] for r in rows if r["kind"] == "round"]
    assert rounds == list(range(1, len(rounds) + 1)) and len(rounds) >= 3
    summary = json.loads((metrics.parent.parent / "summary.json").read_text())
    assert summary[0]["rounds"] == len(rounds)
    assert summary[0]["complete"] is False
