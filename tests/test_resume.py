"""Checkpoints and resume: an interrupted run continues to exactly the uninterrupted result.

The in-process tests cut a run by raising ``KeyboardInterrupt`` inside a
round and compare, for every registered method, the resumed run with an
uninterrupted one: the metrics rows, and the whole state (global arrays, the
method's cloud state, every device's state) in the next checkpoint both runs
take. The process tests kill the ``simulate`` command with SIGINT and SIGKILL
and resume it from the command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import PERSONA_QUICK, quick_params, write_yaml

from simulator.catalog.errors import UserError
from simulator.engine.failures import EngineFailure
from simulator.engine.loop_state import LoopSnapshot
from simulator.engine.rounds import RoundLoop
from simulator.engine.stop import StopRequested
from simulator.run.checkpoints import Checkpointer, load_checkpoint
from simulator.run.folder import checkpoint_path, metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import resume_run, run_plan
from simulator.scenario.schema import Scenario
from strategies.registry import method_names

EVERY, CUT_AT, ROUNDS = 3, 8, 11


def stable_rows(path: Path) -> list[dict]:
    """Rows without wall-clock fields (those differ between any two runs)."""
    return [{k: v for k, v in row.items() if "wall" not in k} for row in read_rows(path)]


def _document(tiny_document: dict, method: str) -> dict:
    document = tiny_document
    params = (
        quick_params(method) | {"head_refresh_rounds": 2} if method.startswith("persona") else {}
    )
    document["methods"] = [{"name": method, "params": params}]
    document["pretrain"]["family"] = [{"kind": "rotation", "severity": 45}]
    document["rounds"]["count"] = ROUNDS
    document["shifts"][0]["onset_s"] = 600
    return document


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _recording_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, LoopSnapshot]]:
    """Every checkpoint written from now on, as read back from its file, with its key."""
    saved: list[tuple[str, LoopSnapshot]] = []
    original = Checkpointer.save

    def record(self: Checkpointer, snapshot: LoopSnapshot) -> None:
        original(self, snapshot)
        saved.append((self.key, load_checkpoint(self.path, self.key)))  # what the file holds

    monkeypatch.setattr(Checkpointer, "save", record)
    return saved


def _cut_at(monkeypatch: pytest.MonkeyPatch, round_index: int) -> None:
    original = RoundLoop.play_round

    def interrupted(self, grid, strategy, arrays, index, *rest):
        if index == round_index:
            raise KeyboardInterrupt
        return original(self, grid, strategy, arrays, index, *rest)

    monkeypatch.setattr(RoundLoop, "play_round", interrupted)


@pytest.mark.parametrize("method", method_names())
def test_resumed_run_equals_uninterrupted_run(tmp_path, tiny_document, monkeypatch, method):
    scenario = Scenario.model_validate(_document(tiny_document, method))
    saved = _recording_checkpoints(monkeypatch)
    full = run_plan(RunPlan(scenario, [method], [0], tmp_path / "full", EVERY, None), False)
    reference = {c.position.rounds_run: c for _, c in saved}
    assert sorted(reference) == [3, 6, 9]
    assert not checkpoint_path(full, method, 0).exists()  # removed once finished

    with monkeypatch.context() as patch:
        _cut_at(patch, CUT_AT)
        with pytest.raises(StopRequested):
            run_plan(RunPlan(scenario, [method], [0], tmp_path / "cut", EVERY, None), False)
    (cut,) = (tmp_path / "cut" / scenario.name).iterdir()
    key = saved[-1][0]
    assert load_checkpoint(checkpoint_path(cut, method, 0), key).position.rounds_run == 6
    written = [r["round"] for r in read_rows(metrics_path(cut, method, 0)) if r["kind"] == "round"]
    assert written == list(range(1, CUT_AT))  # round 7 is on disk, past the checkpoint

    saved.clear()
    resume_run(cut, show_progress=False)
    assert stable_rows(metrics_path(cut, method, 0)) == stable_rows(metrics_path(full, method, 0))
    ((_, after),) = saved  # the resumed run's own checkpoint after round 9
    before = reference[9]
    assert after.arrays == before.arrays
    assert after.devices == before.devices  # every device's state, bytewise
    messaged = any(r.get("sampled") for r in read_rows(metrics_path(full, method, 0)))
    assert bool(after.devices) == messaged  # a cloud that sends nothing leaves no device state
    assert _same(after.strategy, before.strategy)
    assert json.loads((cut / "summary.json").read_text())[0]["complete"] is True


def _engine_breaks_at(monkeypatch: pytest.MonkeyPatch, round_index: int, times: int) -> None:
    """The engine fails when round ``round_index`` starts, the first ``times`` times."""
    original = RoundLoop.play_round
    failures = []

    def breaking(self, grid, strategy, arrays, index, *rest):
        if index == round_index and len(failures) < times:
            failures.append(index)
            raise EngineFailure("a Ray worker was lost: test")
        return original(self, grid, strategy, arrays, index, *rest)

    monkeypatch.setattr(RoundLoop, "play_round", breaking)


def test_engine_failure_restarts_from_the_checkpoint(tmp_path, tiny_document, monkeypatch, caplog):
    scenario = Scenario.model_validate(_document(tiny_document, "fedavg"))
    full = run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path / "full", EVERY, None), False)
    _engine_breaks_at(monkeypatch, CUT_AT, times=2)
    healed = run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path / "healed", EVERY, None), False)
    assert stable_rows(metrics_path(healed, "fedavg", 0)) == stable_rows(
        metrics_path(full, "fedavg", 0)
    )
    restarts = [r for r in caplog.records if "restarting the engine" in r.getMessage()]
    assert len(restarts) == 2


def test_engine_that_keeps_failing_stops_resumably(tmp_path, tiny_document, monkeypatch):
    scenario = Scenario.model_validate(_document(tiny_document, "fedavg"))
    full = run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path / "full", EVERY, None), False)
    with monkeypatch.context() as patch:
        _engine_breaks_at(patch, CUT_AT, times=99)
        with pytest.raises(UserError, match="engine failed 3 times.*simulate --resume"):
            run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path / "broken", EVERY, None), False)
    (folder,) = (tmp_path / "broken" / scenario.name).iterdir()
    resume_run(folder, show_progress=False)
    assert stable_rows(metrics_path(folder, "fedavg", 0)) == stable_rows(
        metrics_path(full, "fedavg", 0)
    )


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, tiny_document, monkeypatch):
    scenario = Scenario.model_validate(_document(tiny_document, "fedavg"))
    with monkeypatch.context() as patch:
        _cut_at(patch, CUT_AT)
        with pytest.raises(StopRequested):
            run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path, EVERY, None), False)
    (folder,) = (tmp_path / scenario.name).iterdir()
    text = (folder / "scenario.yaml").read_text().replace("severity: 45", "severity: 50")
    (folder / "scenario.yaml").write_text(text)
    with pytest.raises(UserError, match="changed since this run started.*start afresh: simulate "):
        resume_run(folder, show_progress=False)
    plan = json.loads((folder / "run.json").read_text())
    del plan["scenario_sha256"]  # a folder from before fingerprints: the checkpoint key catches it
    (folder / "run.json").write_text(json.dumps(plan))
    with pytest.raises(UserError, match="belongs to another scenario"):
        resume_run(folder, show_progress=False)
    checkpoint_path(folder, "fedavg", 0).write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="checkpoint"):
        resume_run(folder, show_progress=False)


def test_metrics_shorter_than_the_checkpoint_start_that_run_over(
    tmp_path, tiny_document, monkeypatch, caplog
):
    """A power cut can lose rows the checkpoint counted; resume redoes the run, not refuse."""
    scenario = Scenario.model_validate(_document(tiny_document, "fedavg"))
    full = run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path / "full", EVERY, None), False)
    with monkeypatch.context() as patch:
        _cut_at(patch, CUT_AT)
        with pytest.raises(StopRequested):
            run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path / "cut", EVERY, None), False)
    (folder,) = (tmp_path / "cut" / scenario.name).iterdir()
    rows = metrics_path(folder, "fedavg", 0)
    rows.write_bytes(rows.read_bytes()[:40])  # most rows lost, a torn line left
    resume_run(folder, show_progress=False)
    assert "starting this method and seed over" in caplog.text
    assert stable_rows(rows) == stable_rows(metrics_path(full, "fedavg", 0))


def test_checkpoints_keep_to_their_share_of_wall_time(tmp_path):
    policy = Checkpointer(tmp_path / "c.pt", every=10, key="k", budget=0.05)
    assert not policy.due(5, elapsed_s=100.0)  # not a multiple of the interval
    assert policy.due(10, elapsed_s=100.0)  # the first is always affordable
    policy.record_cost(10.0)
    assert not policy.due(20, elapsed_s=150.0)  # 10 s spent + 10 s more > 5% of 150 s
    assert policy.due(40, elapsed_s=400.0)  # 20 s <= 5% of 400 s
    unlimited = Checkpointer(tmp_path / "c.pt", every=10, key="k", budget=None)
    unlimited.record_cost(1e6)
    assert unlimited.due(20, elapsed_s=1.0)
    assert not Checkpointer(tmp_path / "c.pt", every=0, key="k", budget=None).due(10, 1e9)


def test_resume_needs_a_run_folder(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        resume_run(tmp_path / "missing", show_progress=False)
    with pytest.raises(UserError, match="not a resumable run folder"):
        resume_run(tmp_path, show_progress=False)


# -- the command line, killed ------------------------------------------------------


def _simulate(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", *args, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,  # its own process group: SIGKILL reaches every child
    )


def _wait_for(pattern: str, root: Path, process: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
        if process.poll() is not None:
            raise AssertionError(f"simulate ended early: {process.communicate()[1][-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{pattern} never appeared")


def kill_and_resume(tmp_path: Path, document: dict, methods: list[str], how: signal.Signals):
    """Run ``simulate``, kill it after the second method's first checkpoint, resume it."""
    scenario = write_yaml(tmp_path / "scenario.yaml", document)
    common = ["--checkpoint-every", "2", "--checkpoint-budget", "1"]
    common += ["--methods", ",".join(methods)]
    reference = _simulate(str(scenario), "--out", str(tmp_path / "full"), *common)
    process = _simulate(str(scenario), "--out", str(tmp_path / "cut"), *common)
    _wait_for(f"*/*/checkpoints/{methods[1]}__seed0.pt", tmp_path / "cut", process)
    os.killpg(process.pid, how)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == (130 if how == signal.SIGINT else -signal.SIGKILL), stderr
    assert "Traceback" not in stderr
    (folder,) = (tmp_path / "cut" / document["name"]).iterdir()
    killed_rows = read_rows(metrics_path(folder, methods[1], 0))
    assert not any(r["kind"] == "end" for r in killed_rows)  # killed partway

    resumed = _simulate("--resume", str(folder))
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    assert f"{methods[0]} seed 0: finished earlier, kept" in stderr
    assert reference.wait(timeout=600) == 0
    (full,) = (tmp_path / "full" / document["name"]).iterdir()
    for method in methods:
        rows = stable_rows(metrics_path(folder, method, 0))
        assert rows == stable_rows(metrics_path(full, method, 0))
        rounds = [r["round"] for r in rows if r["kind"] == "round"]
        assert rounds == list(range(1, len(rounds) + 1))  # none missing, none twice
    summary = json.loads((folder / "summary.json").read_text())
    assert [row["complete"] for row in summary] == [True] * len(methods)
    assert list(folder.glob("checkpoints/*.pt")) == []


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_command_resumes_to_the_same_results(tmp_path, tiny_document, how):
    document = _document(tiny_document, "persona")
    document["rounds"]["count"] = 40
    document["methods"] = [{"name": "fedavg"}, {"name": "persona", "params": PERSONA_QUICK}]
    kill_and_resume(tmp_path, document, ["fedavg", "persona"], how)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_ray_run_resumes_to_the_same_results(tmp_path, tiny_document, how):
    document = _document(tiny_document, "fedavg")
    document["rounds"]["count"] = 12
    document["methods"] = [{"name": "static"}, {"name": "fedavg"}]
    document["engine"] = {"kind": "ray"}
    kill_and_resume(tmp_path, document, ["static", "fedavg"], how)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ["fedavg", "nosuchmethod"]}, r"methods: .*unknown method 'nosuchmethod'"),
        ({"seeds": [-1]}, r"seeds\[0\]: expected greater than or equal to 0"),
        ({"seeds": "zero"}, r"seeds: expected a valid list"),
        ({"checkpoint_every": None}, r"checkpoint_every: expected a valid integer"),
        ({"extra": 1}, r"extra: unknown key"),
    ],
    ids=["unknown-method", "negative-seed", "seeds-not-a-list", "no-interval", "unknown-key"],
)
def test_resume_checks_the_run_plan_like_a_scenario(tmp_path, tiny_document, change, message):
    scenario = Scenario.model_validate(_document(tiny_document, "fedavg"))
    folder = run_plan(RunPlan(scenario, ["fedavg"], [0], tmp_path, EVERY, None), False)
    plan = json.loads((folder / "run.json").read_text()) | change
    (folder / "run.json").write_text(json.dumps(plan))
    with pytest.raises(UserError, match=message) as raised:
        resume_run(folder, show_progress=False)
    assert "\n" not in str(raised.value) and str(raised.value).startswith(str(folder / "run.json"))
