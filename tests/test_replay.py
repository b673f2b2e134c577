"""Recorded ratings as a fleet: each device replays one user's timeline over the run.

The files are written here in MovieLens 100K's format: users whose tastes
move from one block of items to another halfway through their timelines, so
the replay's drift is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import PERSONA_QUICK, write_yaml

from simulator.catalog.errors import ScenarioError
from simulator.cli import main
from simulator.run.plan import RunPlan
from simulator.run.runner import run_plan
from simulator.scenario.loading import load_scenario
from simulator.scenario.schema import Scenario
from simulator.world.cloud import cloud_share
from simulator.world.fleet import build_fleet
from simulator.world.preflight import preflight
from simulator.world.replay import SPAN, build_replay
from simulator.world.sources import CLOUD_USERS_FROM, Draw, build_source

USERS, EARLY, LATE, PER_USER = 40, range(1, 101), range(101, 201), 60


def write_movielens(folder, users=USERS, items=200):
    """``u.data``: each user rates early items in its first half, late items in its second."""
    rng = np.random.default_rng(7)
    lines = []
    for user in range(1, users + 1):
        for t in range(PER_USER):
            block = EARLY if t < PER_USER // 2 else LATE
            block = [i for i in block if i <= items]
            item = int(rng.choice(list(block)))
            lines.append(f"{user}\t{item}\t{int(rng.integers(1, 6))}\t{1_000_000 + 3600 * t}")
    rng.shuffle(lines)  # file order is not time order
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def replay_document(tiny_document, tmp_path):
    tiny_document["data"] = {
        "dataset": "movielens-100k",
        "path": str(write_movielens(tmp_path / "ml-100k")),
        "window": 16,
        "eval_samples": 32,
    }
    tiny_document.pop("shifts")
    tiny_document["pretrain"] = {"epochs": 3}
    for cls in tiny_document["fleet"]["classes"]:
        cls["crash_rate"] = 0.0
    return tiny_document


def test_a_device_replays_its_users_timeline_past_then_future(replay_document):
    scenario = Scenario.model_validate(replay_document)
    source = build_source(scenario, seed=0, pretrain_seed=0)
    device = build_fleet(scenario, 0)[2]
    horizon = scenario.rounds.horizon_s

    def clicked_items(time_s, test):
        x, y = source.draw(Draw(device, [], time_s, test, ("window", 2, int(time_s))), 200)
        return x[y == 1, -1].long()

    early, late = clicked_items(0.1 * horizon, False), clicked_items(0.9 * horizon, False)
    assert len(early) and len(late)
    items = source.replay.interactions.sequences[int(source.replay.device_users[2])]
    first_half = set(items[: PER_USER // 2].tolist())
    second_half = set(items[PER_USER // 2 :].tolist())
    assert set(early.tolist()) <= first_half and set(late.tolist()) <= second_half
    # Test samples come from the future: what the user rates next, never what it just did.
    now = source.replay.present(int(source.replay.device_users[2]), 0.4 * horizon)
    future = clicked_items(0.4 * horizon, True)
    assert set(future.tolist()) <= set(items[now : now + SPAN].tolist())
    x, y = source.draw(Draw(device, [], 100.0, False, ("window", 2, 1)), 64)
    again = source.draw(Draw(device, [], 100.0, False, ("window", 2, 1)), 64)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])  # a pure function of the key
    (case,) = source.ranking(Draw(device, [], 0.5 * horizon, True, ("rank", 2, 0)), 1)
    assert case.shape == (101, 11) and len(set(case[:, -1].tolist())) == 101


def test_the_cloud_holds_other_users_than_the_fleet(replay_document):
    scenario = Scenario.model_validate(replay_document)
    replay = build_source(scenario, 0, 0).replay
    assert not set(replay.cloud_users.tolist()) & set(replay.device_users.tolist())
    share = cloud_share(scenario, 0, "family")
    assert share.context_names == ["recorded"] and int(share.groups.min()) >= CLOUD_USERS_FROM
    users = {int(g) - CLOUD_USERS_FROM for g in share.groups}
    assert users <= set(replay.cloud_users.tolist())


def test_a_replay_fleet_runs_methods_and_repeats_its_numbers(replay_document, tmp_path):
    replay_document["methods"] = [
        {"name": "static"},
        {"name": "fedavg-head", "params": {"lr": 0.5}},
        {"name": "persona", "params": {**PERSONA_QUICK, "prototypes": 1}},
    ]
    scenario = Scenario.model_validate(replay_document)
    methods = [m.name for m in scenario.methods]
    rows = []
    for out in ("a", "b"):
        folder = run_plan(RunPlan(scenario, methods, [0], tmp_path / out), show_progress=False)
        rows.append(json.loads((folder / "summary.json").read_text()))
    first = {r["method"]: r for r in rows[0]}
    for method in methods:
        assert 0.0 <= first[method]["acc_mean"] <= 1.0  # AUC on the users' next ratings
        assert 0.0 <= first[method]["hr@10"] <= 1.0
    strip = lambda table: [{k: v for k, v in r.items() if k != "wall_s"} for r in table]  # noqa: E731
    assert strip(rows[0]) == strip(rows[1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d, tmp: d["data"].pop("path"), "data.path: movielens-100k is read from a local"),
        (
            lambda d, tmp: d["data"].update(path=str(tmp / "nowhere")),
            "no such file or folder (expected u.data",
        ),
        (
            lambda d, tmp: d.update(shifts=[{"kind": "interest", "severity": 90, "onset_s": 60}]),
            "shifts[0].kind: movielens-100k replays recorded timelines",
        ),
        (lambda d, tmp: d["fleet"].update(devices=39), "leaves 28 for fleet.devices=39"),
        (lambda d, tmp: d["data"].update(dataset="digits"), "data.path: digits ships with"),
        (lambda d, tmp: write_movielens(tmp / "ml-100k", items=120), "ranking cases need 100"),
    ],
)
def test_a_replay_scenario_is_refused_with_a_clear_line(replay_document, tmp_path, change, message):
    change(replay_document, tmp_path)
    scenario = write_yaml(tmp_path / "s.yaml", replay_document)
    with pytest.raises(ScenarioError, match=None) as caught:
        preflight(load_scenario(scenario), str(scenario))
    assert message in str(caught.value) and "\n" not in str(caught.value).strip()


def test_a_malformed_ratings_file_is_named_with_its_line(replay_document, tmp_path, capsys):
    path = tmp_path / "broken"
    write_movielens(path)
    with (path / "u.data").open("a") as handle:
        handle.write("12\tnot-a-line\n")
    replay_document["data"]["path"] = str(path)
    scenario = write_yaml(tmp_path / "s.yaml", replay_document)
    assert main([str(scenario), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "u.data:2401: expected 4 fields" in err and err.count("\n") == 1


def test_user_split_is_seeded_and_disjoint(tmp_path):
    folder = write_movielens(tmp_path / "ml")
    a = build_replay(folder, "movielens-100k", 0.3, 20, 1000.0, seed=1)
    b = build_replay(folder, "movielens-100k", 0.3, 20, 1000.0, seed=1)
    c = build_replay(folder, "movielens-100k", 0.3, 20, 1000.0, seed=2)
    assert np.array_equal(a.device_users, b.device_users)
    assert not np.array_equal(a.device_users, c.device_users)
    assert len(a.cloud_users) == 12 and len(a.device_users) == 20


def test_a_resume_after_the_ratings_file_changed_is_refused(replay_document, tmp_path):
    from simulator.catalog.errors import UserError
    from simulator.run.plan import PLAN_FILE
    from simulator.run.runner import resume_run

    replay_document["methods"] = [{"name": "static"}]
    replay_document["rounds"]["count"] = 2
    scenario = Scenario.model_validate(replay_document)
    folder = run_plan(RunPlan(scenario, ["static"], [0], tmp_path / "run"), show_progress=False)
    plan = json.loads((folder / PLAN_FILE).read_text())
    assert set(plan["inputs_sha256"]) == {"data.path"}
    resume_run(folder, show_progress=False)  # unchanged: the finished run is kept
    ratings = tmp_path / "ml-100k" / "u.data"
    ratings.write_text(ratings.read_text().replace("\t5\t", "\t4\t"))  # same shape, new data
    with pytest.raises(UserError, match=r"data\.path changed since this run started"):
        resume_run(folder, show_progress=False)
    write_movielens(tmp_path / "ml-100k")  # restored: the resume goes on
    resume_run(folder, show_progress=False)
    plan["version"] = "0.0.0-elsewhere"
    (folder / PLAN_FILE).write_text(json.dumps(plan))
    with pytest.raises(UserError, match=r"the package version \(0\.0\.0-elsewhere then"):
        resume_run(folder, show_progress=False)


def test_a_path_that_cannot_be_resolved_is_one_line(replay_document, tmp_path):
    replay_document["data"]["path"] = "~nosuchuser-persona-fleet/ml-100k"
    path = write_yaml(tmp_path / "bad.yaml", replay_document)
    with pytest.raises(ScenarioError, match=r"data\.path: .*cannot resolve '~nosuchuser"):
        load_scenario(path)


def test_a_file_replaced_during_a_process_is_read_again(tmp_path):
    from simulator.world.replay import load_replay, ratings_digest

    folder = write_movielens(tmp_path / "ml-100k")
    first = ratings_digest(str(folder), "movielens-100k")
    users = len(load_replay(str(folder), "movielens-100k").sequences)
    write_movielens(tmp_path / "ml-100k", users=USERS - 10)  # a notebook swaps the file
    assert ratings_digest(str(folder), "movielens-100k") != first
    assert len(load_replay(str(folder), "movielens-100k").sequences) == users - 10
    assert ratings_digest(str(folder), "movielens-100k", fresh=True) == ratings_digest(
        str(folder), "movielens-100k"
    )
