"""Edits on request: devices whose edit expired ask, and the next round serves them first."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from conftest import PERSONA_QUICK

from simulator.engine.sampling import DeviceSampler
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.schema import Rounds, Scenario


def _sampler(share: float, devices: int = 20) -> DeviceSampler:
    rounds = Rounds(count=5, participation=0.25, request_share=share)
    world = SimpleNamespace(
        scenario=SimpleNamespace(rounds=rounds),
        seed=3,
        fleet=[SimpleNamespace(availability=1.0)] * devices,
        links=SimpleNamespace(up=lambda start_s: np.ones(devices, dtype=bool)),
        behaviours=None,  # no traced online windows
    )
    return DeviceSampler(world)  # type: ignore[arg-type]


def test_askers_come_first_up_to_the_share_and_nobody_asking_is_the_plain_draw():
    sampler = _sampler(share=0.6)  # 5 slots, at most 3 for askers
    plain = sampler.sample(2, 0.0)
    assert len(plain) == 5 and sampler.sample(2, 0.0, []) == plain
    chosen = sampler.sample(2, 0.0, [14])
    assert 14 in chosen and len(chosen) == 5
    many = [1, 2, 3, 4, 5, 6, 7, 8]
    assert len(set(sampler.sample(2, 0.0, many)) & set(many)) >= 3  # the quota, at least
    assert _sampler(share=0.0).sample(2, 0.0, [14]) == plain  # requests off


def _persona_rows(tiny_document, tmp_path, share: float) -> list[dict]:
    document = dict(tiny_document)
    document["methods"] = [{"name": "persona", "params": PERSONA_QUICK}]
    document["rounds"] = {**document["rounds"], "count": 6, "request_share": share}
    scenario = Scenario.model_validate(document)
    folder = run_plan(RunPlan(scenario, ["persona"], [0], tmp_path / str(share)), False)
    return [r for r in read_rows(metrics_path(folder, "persona", 0)) if r["kind"] == "round"]


def test_expired_devices_ask_after_the_shift_and_asking_is_billed(tiny_document, tmp_path):
    onset = tiny_document["shifts"][0]["onset_s"]
    rows = _persona_rows(tiny_document, tmp_path, share=0.5)
    assert all(r["requests"] == 0 for r in rows if r["start_s"] < onset)  # edits still fresh
    assert sum(r["requests"] for r in rows if r["start_s"] >= onset) > 0  # the shift expired some
    quiet = _persona_rows(tiny_document, tmp_path, share=0.0)
    assert all(r["requests"] == 0 for r in quiet)
    for row in rows:  # each request is a small upload, inside the round's bytes
        assert (row["request_bytes_up"] > 0) == (row["requests"] > 0)
        assert row["bytes_up"] >= row["request_bytes_up"]
        assert row["request_bytes_up"] <= 200 * row["requests"]
