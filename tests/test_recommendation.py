"""Recommendation on the fleet: a click stream, AUC and ranking metrics, Persona's episodes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import PERSONA_QUICK

from persona.episodes import EpisodeSampler
from reports.build import build_report
from simulator.catalog import datasets
from simulator.catalog.interest_model import InterestConfig
from simulator.engine.scoring import device_score, ranking_scores
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.schema import Scenario
from simulator.world.cloud import cloud_share
from simulator.world.drift import ActiveShift
from simulator.world.fleet import build_fleet
from simulator.world.sources import CLOUD_USERS_FROM, Draw, build_source


@pytest.fixture
def click_document(tiny_document, monkeypatch):
    """The tiny fleet on a click stream, with a small cloud (seconds to pretrain)."""
    small = InterestConfig(cloud_users=60, cloud_samples=32)
    spec = dataclasses.replace(datasets.DATASETS["interests"], catalogue=small)
    monkeypatch.setitem(datasets.DATASETS, "interests", spec)
    tiny_document["data"] = {"dataset": "interests", "window": 16, "eval_samples": 48}
    tiny_document["shifts"] = [{"kind": "interest", "severity": 90, "onset_s": 240}]
    tiny_document["pretrain"] = {"epochs": 3, "family": [{"kind": "interest", "severity": 90}]}
    for cls in tiny_document["fleet"]["classes"]:
        cls["crash_rate"] = 0.0
    return tiny_document


def test_a_click_fleet_runs_every_kind_of_method_and_reports_auc(tmp_path, click_document):
    methods = ["static", "fedavg-head", "cloud-retrain", "persona"]
    click_document["methods"] = [
        {"name": "static"},
        {"name": "fedavg-head", "params": {"lr": 0.1}},
        {"name": "cloud-retrain"},
        {"name": "persona", "params": {**PERSONA_QUICK, "prototypes": 1}},
    ]
    scenario = Scenario.model_validate(click_document)
    assert scenario.task == "recommendation"
    folder = run_plan(RunPlan(scenario, methods, [0], tmp_path), show_progress=False)
    summary = {r["method"]: r for r in json.loads((folder / "summary.json").read_text())}
    for method in methods:
        row = summary[method]
        assert 0.0 <= row["acc_mean"] <= 1.0  # AUC per device, averaged
        assert 0.0 <= row["ndcg@10"] <= row["hr@10"] <= row["hr@20"] <= 1.0
    assert summary["persona"]["device_backward_passes"] == 0
    assert summary["fedavg-head"]["device_backward_passes"] > 0
    evals = [r for r in read_rows(metrics_path(folder, "static", 0)) if r["kind"] == "eval"]
    assert all(
        set(r["ranking"]) == {"hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20"}
        for r in evals
    )
    report = build_report(folder).with_suffix(".md").read_text()
    assert "| method | AUC (time-avg) |" in report


def test_an_interest_shift_changes_the_clicks_a_device_sees(click_document):
    scenario = Scenario.model_validate(click_document)
    source = build_source(scenario, seed=0, pretrain_seed=0)
    device = build_fleet(scenario, 0)[3]
    key = ("window", 3, 0)
    before = source.draw(Draw(device, [], 0.0, False, key), 64)
    again = source.draw(Draw(device, [], 0.0, False, key), 64)
    turned = source.draw(Draw(device, [ActiveShift("interest", 90.0)], 0.0, False, key), 64)
    assert torch.equal(before[0], again[0]) and torch.equal(before[1], again[1])
    assert not torch.equal(before[0], turned[0])  # histories follow the new interest


def test_the_clouds_family_share_has_its_own_clicks_per_context(click_document):
    scenario = Scenario.model_validate(click_document)
    share = cloud_share(scenario, 0, "family")
    assert share.context_names == ["clean", "interest=90"]
    (x0, y0), (x1, y1) = share.context(0), share.context(1)
    assert x0.shape == x1.shape and not torch.equal(y0, y1)  # a turned interest clicks otherwise
    assert int(share.groups.min()) >= CLOUD_USERS_FROM  # the cloud's users are not devices
    rendered_x, rendered_y = share.rendered()
    assert torch.equal(rendered_y, torch.cat([y0, y1]))


def test_a_click_episode_is_one_users_windows_without_overlap():
    groups = np.repeat(np.arange(5), 10)  # 5 users, 10 samples each
    features = torch.arange(50, dtype=torch.float32).reshape(1, 50, 1).repeat(2, 1, 1)
    labels = torch.stack([torch.zeros(50, dtype=torch.long), torch.ones(50, dtype=torch.long)])
    sampler = EpisodeSampler(features, labels, 2, 0.5, seed=0, groups=groups)
    support, query_x, query_y = sampler.sample(episodes=20, window=4, query=6)
    for s, q, y in zip(support, query_x, query_y, strict=True):
        users = {int(v) // 10 for v in torch.cat([s, q]).flatten()}
        assert len(users) == 1  # one user's samples
        assert not set(s.flatten().tolist()) & set(q.flatten().tolist())  # disjoint
        assert len(set(y.tolist())) == 1  # labels of the episode's context


def test_scores_are_auc_for_clicks_and_ranks_put_the_clicked_item_first():
    logits = torch.tensor([[0.0, 2.0], [0.0, -1.0], [0.0, 1.0], [0.0, 0.5]])
    assert device_score("recommendation", logits, torch.tensor([1, 0, 0, 1])) == 0.75
    assert device_score("classification", logits, torch.tensor([1, 0, 1, 0])) == 0.75

    class FirstWins(torch.nn.Module):
        def forward(self, rows):  # the clicked item (row 0 of each case, id 7) scores highest
            return torch.stack([torch.zeros(len(rows)), (rows[:, -1] == 7).float()], dim=1)

    case = torch.tensor([[1.0, 7.0]] + [[1.0, float(i)] for i in range(8, 108)])
    report = ranking_scores(FirstWins(), [case, case])
    assert report["hr@5"] == 1.0 and report["ndcg@5"] == 1.0


def test_a_diverged_model_gets_a_poor_score_instead_of_stopping_the_run():
    logits = torch.tensor([[0.0, float("nan")]] * 4)
    assert device_score("recommendation", logits, torch.tensor([1, 0, 1, 0])) == 0.5
    spread = torch.tensor([[0.0, float("inf")], [0.0, 1.0], [0.0, float("-inf")], [0.0, 0.0]])
    assert device_score("recommendation", spread, torch.tensor([1, 1, 0, 0])) == 1.0
