"""A broken scenario file gets one precise message: file, key path, expectation, finding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import write_yaml

from simulator.catalog.errors import ScenarioError
from simulator.scenario.loading import load_scenario


def _error_for(tmp_path: Path, document, name: str = "bad.yaml") -> str:
    path = write_yaml(tmp_path / name, document)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return str(info.value)


def test_valid_tiny_document_loads(tmp_path, tiny_document):
    scenario = load_scenario(write_yaml(tmp_path / "ok.yaml", tiny_document))
    assert scenario.fleet.devices == 12
    assert scenario.rounds.horizon_s == 480


def test_negative_bandwidth_names_the_key_path(tmp_path, tiny_document):
    tiny_document["fleet"]["classes"][1]["uplink_kbps"]["median"] = -5
    message = _error_for(tmp_path, tiny_document)
    assert message == (
        f"{tmp_path / 'bad.yaml'}: fleet.classes[1].uplink_kbps.median: "
        "expected greater than 0; found -5"
    )


def test_unknown_key_is_an_error(tmp_path, tiny_document):
    tiny_document["rounds"]["dedline_s"] = 10
    message = _error_for(tmp_path, tiny_document)
    assert message == (
        f"{tmp_path / 'bad.yaml'}: rounds.dedline_s: unknown key (did you mean 'deadline_s'?)"
    )


def test_missing_required_key(tmp_path, tiny_document):
    del tiny_document["fleet"]["devices"]
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: fleet.devices: required key is missing"
    )


def test_unknown_method_lists_valid_methods(tmp_path, tiny_document):
    tiny_document["methods"].append({"name": "fedsgd"})
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: methods[2].name: unknown method 'fedsgd' "
        "(did you mean 'fedavg'?); "
        "valid methods: cloud-retrain, em-prior, fedavg, fedavg-ft, fedavg-head, fedprox, "
        "finetune, ifca, lame, persona, persona-nocross, persona-noedit, persona-noproto, "
        "persona-refine, persona-ungated, "
        "pfedhn, static, t3a"
    )


def test_unknown_dataset_lists_valid_datasets(tmp_path, tiny_document):
    tiny_document["data"]["dataset"] = "cifar"
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: data.dataset: expected one of 'mnist', 'digits', "
        "'interests', 'interests-sasrec', 'movielens-100k', 'movielens-1m' or "
        "'amazon-ratings'; found 'cifar'"
    )


def test_unknown_shift_kind_lists_valid_kinds(tmp_path, tiny_document):
    tiny_document["shifts"][0]["kind"] = "twirl"
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: shifts[0].kind: expected one of 'rotation', 'noise', "
        "'blur', 'contrast', 'brightness', 'occlusion', 'inversion', 'label', 'permutation' "
        "or 'interest'; found 'twirl'"
    )


def test_wrong_type_says_what_was_found(tmp_path, tiny_document):
    tiny_document["rounds"]["count"] = "many"
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: rounds.count: expected a number, found the text 'many'"
    )


def test_unknown_method_parameter(tmp_path, tiny_document):
    tiny_document["methods"][1]["params"] = {"local_epochs": 1, "learning_rate": 0.1}
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: methods[1].params: learning_rate: unknown parameter "
        "(valid parameters of 'fedavg': batch_size, local_epochs, lr)"
    )


def test_more_prototypes_than_episodes_is_refused_not_cut(tmp_path, tiny_document):
    tiny_document["methods"].append(
        {"name": "persona", "params": {"prototypes": 8, "prototype_episodes": 4}}
    )
    message = _error_for(tmp_path, tiny_document)
    assert "8 prototypes from 4 prototype episodes" in message, message


def test_shift_group_must_be_a_device_class(tmp_path, tiny_document):
    tiny_document["shifts"][0]["applies_to"] = {"group": "tablets"}
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: shifts[0].applies_to.group: unknown group 'tablets'; "
        "valid groups (device class names): fast, slow"
    )


def test_applies_to_needs_exactly_one_target(tmp_path, tiny_document):
    tiny_document["shifts"][0]["applies_to"] = {"all": True, "fraction": 0.5}
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: shifts[0].applies_to: "
        "set exactly one of 'all: true', 'fraction' or 'group'"
    )


def test_invalid_yaml_gives_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nfleet: [1, 2\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: line 3, column 1: invalid YAML")


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: scenario file not found"


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: expected a mapping of scenario keys, found list"


def test_several_problems_are_all_reported(tmp_path, tiny_document):
    tiny_document["rounds"]["count"] = 0
    tiny_document["data"]["window"] = 0
    lines = _error_for(tmp_path, tiny_document).splitlines()
    assert len(lines) == 2
    assert any(
        "rounds.count: expected greater than or equal to 1; found 0" in line for line in lines
    )
    assert any(
        "data.window: expected greater than or equal to 1; found 0" in line for line in lines
    )


def test_override_is_validated_like_the_file(tmp_path, tiny_document):
    path = write_yaml(tmp_path / "ok.yaml", tiny_document)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, ["fleet.classes[0].availability=1.5"])
    assert str(info.value) == (
        f"{path}: fleet.classes[0].availability: expected less than or equal to 1; found 1.5"
    )


def test_override_changes_nested_values(tmp_path, tiny_document):
    path = write_yaml(tmp_path / "ok.yaml", tiny_document)
    scenario = load_scenario(
        path, ["fleet.devices=30", "rounds.count=2", "methods[1].params.lr=0.1"]
    )
    assert scenario.fleet.devices == 30
    assert scenario.rounds.count == 2
    assert scenario.methods[1].params["lr"] == 0.1


def test_override_without_equals_sign(tmp_path, tiny_document):
    path = write_yaml(tmp_path / "ok.yaml", tiny_document)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, ["fleet.devices"])
    assert str(info.value) == f"{path}: --set 'fleet.devices': expected KEY.PATH=VALUE"


def test_unknown_device_class_preset_lists_the_presets(tmp_path, tiny_document):
    tiny_document["fleet"]["classes"][0] = {"preset": "5g", "share": 1}
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: fleet.classes[0]: unknown device class preset '5g'; "
        "valid presets: 2g-lowend, 3g-midrange, 4g-highend, wifi-highend, wifi-midrange"
    )


def test_a_preset_field_can_be_overridden(tmp_path, tiny_document):
    tiny_document["fleet"]["classes"][0] = {"preset": "2g-lowend", "share": 0.5, "crash_rate": 0.3}
    scenario = load_scenario(write_yaml(tmp_path / "ok.yaml", tiny_document))
    first = scenario.fleet.classes[0]
    assert (first.name, first.crash_rate, first.uplink_kbps.median) == ("2g-lowend", 0.3, 60)


def test_a_partial_preset_figure_keeps_the_presets_other_fields(tmp_path, tiny_document):
    """``--set fleet.classes[0].uplink_kbps.median=50`` changes the median only."""
    tiny_document["fleet"]["classes"][0] = {"preset": "2g-lowend", "share": 0.5}
    path = write_yaml(tmp_path / "ok.yaml", tiny_document)
    uplink = load_scenario(path, ["fleet.classes[0].uplink_kbps.median=50"]).fleet.classes[0]
    assert (uplink.uplink_kbps.median, uplink.uplink_kbps.sigma) == (50, 0.4)


def test_a_shift_must_move_the_datasets_kind_of_data(tmp_path, tiny_document):
    tiny_document["shifts"][0]["kind"] = "interest"
    assert _error_for(tmp_path, tiny_document) == (
        f"{tmp_path / 'bad.yaml'}: shifts[0].kind: interest shifts cannot move digits's data "
        "(classification); valid kinds for it: blur, brightness, contrast, inversion, label, "
        "noise, occlusion, permutation, rotation"
    )


def test_a_method_that_cannot_run_on_the_task_is_refused_with_its_reason(tmp_path, tiny_document):
    tiny_document["data"]["dataset"] = "interests"
    tiny_document["shifts"][0] = {"kind": "interest", "severity": 90, "onset_s": 240}
    tiny_document["pretrain"]["family"] = []
    tiny_document["methods"] = [{"name": "static"}, {"name": "em-prior"}]
    error = _error_for(tmp_path, tiny_document)
    assert error.startswith(
        f"{tmp_path / 'bad.yaml'}: methods[1].name: em-prior does not run on recommendation "
        "(it re-estimates a class prior"
    )
    assert "methods for recommendation: cloud-retrain, fedavg," in error
    assert "t3a" not in error.split("methods for recommendation:")[1]


def test_an_interest_turns_at_most_half_a_circle(tmp_path, tiny_document):
    tiny_document["data"]["dataset"] = "interests"
    tiny_document["shifts"][0] = {"kind": "interest", "severity": 270, "onset_s": 240}
    tiny_document["pretrain"]["family"] = []
    assert "severity of interest shifts is at most 180" in _error_for(tmp_path, tiny_document)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rounds.cont=3", "rounds.cont: unknown key (did you mean 'count'?)"),
        (
            "fleet.classes[0].uplnk_kbps=3",
            "classes[0].uplnk_kbps: unknown key (did you mean 'uplink",
        ),
        ("methods[0].name=persna", "unknown method 'persna' (did you mean 'persona'?)"),
        ("rounds.zzzzzz=3", "rounds.zzzzzz: unknown key (check its spelling and indentation)"),
    ],
)
def test_a_near_miss_names_the_key_or_method_meant(tmp_path, override, message):
    from conftest import TINY

    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(path, [override])
