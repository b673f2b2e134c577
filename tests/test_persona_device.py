"""Persona on the fleet: devices never compute a gradient; edits reach the devices."""

from __future__ import annotations

import copy

import torch
from conftest import PERSONA_QUICK
from torch.optim.optimizer import register_optimizer_step_pre_hook

from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.schema import Scenario


def _persona_document(document):
    document["methods"] = [{"name": "persona", "params": PERSONA_QUICK}]
    document["pretrain"]["family"] = [{"kind": "rotation", "severity": 45}]
    for cls in document["fleet"]["classes"]:
        cls["crash_rate"] = 0.0
    return document


def test_persona_devices_never_run_backward_or_an_optimizer(tmp_path, tiny_document, monkeypatch):
    scenario = Scenario.model_validate(_persona_document(tiny_document))
    plan = RunPlan(scenario, ["persona"], [0], tmp_path / "warm")
    run_plan(plan, show_progress=False)  # cloud pretraining (backprop in the cloud) is cached

    backward_calls: list[int] = []
    real_backward = torch.autograd.backward

    def counting_backward(*args, **kwargs):
        backward_calls.append(1)
        return real_backward(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "backward", counting_backward)
    steps: list[int] = []
    handle = register_optimizer_step_pre_hook(lambda *args: steps.append(1))
    try:
        folder = run_plan(
            RunPlan(scenario, ["persona"], [0], tmp_path / "run"), show_progress=False
        )
    finally:
        handle.remove()
    assert backward_calls == [] and steps == []
    rows = read_rows(metrics_path(folder, "persona", 0))
    rounds = [r for r in rows if r["kind"] == "round"]
    assert sum(r["backward_passes"] for r in rounds) == 0
    assert sum(r["kept"] for r in rounds) > 0  # devices did apply edits
    assert all(r["train_metrics"]["prototypes"] >= 1 for r in rounds if r["sampled"])
    (end,) = [r for r in rows if r["kind"] == "end"]
    heldout = end["facts"]["adapter_heldout"]  # the adapter's record reaches the run folder
    assert set(heldout["by_context"]) == {"clean", "rotation=45"}  # the family + the base
    assert 0.0 <= heldout["accuracy_edited"] <= 1.0


def test_the_sanity_check_would_catch_a_device_backward(monkeypatch):
    """The counter above sees a backward pass when one happens."""
    calls: list[int] = []
    real_backward = torch.autograd.backward
    monkeypatch.setattr(
        torch.autograd, "backward", lambda *a, **k: calls.append(1) or real_backward(*a, **k)
    )
    (torch.ones(2, requires_grad=True) * 3).sum().backward()
    assert calls == [1]


def test_persona_moves_fewer_bytes_than_fedavg(tmp_path, tiny_document):
    document = _persona_document(tiny_document)
    document["methods"].append({"name": "fedavg"})
    scenario = Scenario.model_validate(document)
    folder = run_plan(RunPlan(scenario, ["persona", "fedavg"], [0], tmp_path), show_progress=False)

    def bytes_per_device_round(method: str) -> float:
        rounds = [r for r in read_rows(metrics_path(folder, method, 0)) if r["kind"] == "round"]
        moved = sum(r["bytes_up"] + r["bytes_down"] for r in rounds)
        return moved / sum(r["replied"] for r in rounds)

    assert bytes_per_device_round("persona") < bytes_per_device_round("fedavg")


def test_float16_summaries_halve_the_upload_and_keep_the_edits(tmp_path, tiny_document):
    """The window summary is the largest upload; at float16 it costs half."""
    results = {}
    for precision in ("float32", "float16"):
        document = _persona_document(copy.deepcopy(tiny_document))
        document["methods"][0]["params"] = {**PERSONA_QUICK, "summary_precision": precision}
        scenario = Scenario.model_validate(document)
        folder = run_plan(
            RunPlan(scenario, ["persona"], [0], tmp_path / precision), show_progress=False
        )
        rows = read_rows(metrics_path(folder, "persona", 0))
        rounds = [r for r in rows if r["kind"] == "round"]
        accuracy = [r["acc_mean"] for r in rows if r["kind"] == "eval"]
        results[precision] = (
            sum(r["bytes_up"] for r in rounds) / sum(r["replied"] for r in rounds),
            [r["replied"] for r in rounds],
            accuracy,
        )
    (up32, replied32, acc32), (up16, replied16, acc16) = results["float32"], results["float16"]
    assert replied16 == replied32  # the same devices answered (sampling, deadlines)
    assert 0.45 < up16 / up32 < 0.65  # the features dominate; framing does not halve
    assert max(abs(a - b) for a, b in zip(acc16, acc32, strict=True)) < 0.02
