"""No setting is silently cut to fit: what cannot be honoured is refused by key, and what
must be rounded by more than a tenth is a warning in the run's log."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, write_yaml

from simulator.catalog.errors import ScenarioError
from simulator.cli import main, with_methods
from simulator.scenario.loading import load_scenario


def _schedule(groups: int) -> dict:
    return {
        "groups": groups,
        "contexts": {"tilted": [{"kind": "rotation", "severity": 30}]},
        "segments": [{"from_s": 0, "groups": ["tilted"] * groups}],
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.labeled_fraction=0.05"], "data.labeled_fraction: 0.05 of a 16-sample window is no"),
        (["fleet.devices=1"], "fleet.classes[1].share: 0.5 of 1 devices gives fast no device"),
        (
            [f"schedule={json.dumps(_schedule(20))}", "shifts=[]"],
            "schedule.groups: 20 groups for 12 devices",
        ),
        (
            ["methods=[{name: persona, params: {prototypes: 4, max_prototypes: 2, refine: true}}]"],
            "max_prototypes: 2 is below prototypes (4)",
        ),
        (
            ["methods=[{name: persona-noproto, params: {prototypes: 8}}]"],
            "prototypes: persona-noproto fixes it to 1",
        ),
        (  # checked with what the variant fixes (refine on)
            ["methods=[{name: persona-refine, params: {prototypes: 8, max_prototypes: 2}}]"],
            "methods[0].params: max_prototypes: 2 is below prototypes (8)",
        ),
    ],
)
def test_a_setting_the_run_cannot_honour_is_refused_by_key(tmp_path, overrides, message):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path, overrides)
    assert message in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rounds.participation=0.01"], "0.01 of 12 devices is 0.12 per round; each round draws 1"),
        (
            ["shifts=[{kind: permutation, severity: 0.25, onset_s: 0}]"],
            "a permutation of 0.25 of 10 classes relabels 2 classes (0.2)",
        ),
        (["pretrain.family_fraction=0"], "pretrain.family_fraction: 0 holds nothing out"),
        (["data.labeled_fraction=0.1"], "0.1 of a 16-sample window is 1.6 samples; each window"),
        (["pretrain.known_share=0.5"], "known_share: 0.5 of 1 deployed contexts is 1"),
    ],
)
def test_a_setting_rounded_by_more_than_a_tenth_is_a_warning(tmp_path, overrides, message):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    notes = load_scenario(path, overrides).warnings()
    assert any(message in note for note in notes), notes


def test_exact_settings_warn_of_nothing(tmp_path):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    assert load_scenario(path, ["rounds.participation=0.25"]).warnings() == []


def test_the_warning_is_in_the_runs_log_once(tmp_path, capsys):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    args = [str(path), "--methods", "static", "--set", "rounds.participation=0.01"]
    assert main([*args, "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: rounds.participation: 0.01 of 12 devices") == 1, err


def test_an_ablation_borrowing_its_parents_settings_keeps_what_it_fixes(tmp_path):
    document = json.loads(json.dumps(TINY))
    document["methods"] = [{"name": "persona", "params": {"edit_gate": "calibrated", "clip": 0.05}}]
    path = write_yaml(tmp_path / "tiny.yaml", document)
    scenario = with_methods(
        load_scenario(path), ["persona", "persona-ungated"], str(path), "persona"
    )
    (ungated,) = [m for m in scenario.methods if m.name == "persona-ungated"]
    assert ungated.params == {"clip": 0.05}
