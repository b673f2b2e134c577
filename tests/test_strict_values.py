"""Values mean what they look like: YAML 1.2 scalars, no boolean as a number, sweep axes
the sweep does not own, and no cell that repeats another once validated."""

from __future__ import annotations

import re

import pytest
from conftest import TINY, write_yaml

from simulator.catalog.errors import ScenarioError
from simulator.cli import main
from simulator.scenario.loading import load_scenario
from simulator.scenario.yaml12 import load_yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("011", 11),  # YAML 1.1: octal 9
        ("1:30", "1:30"),  # YAML 1.1: sexagesimal 90
        ("on", "on"),  # YAML 1.1: true
        ("no", "no"),
        ("1e-3", 0.001),  # YAML 1.1: a string
        ("0o17", 15),
        ("0x1f", 31),
        ("2026-01-01", "2026-01-01"),  # YAML 1.1: a date
        ("true", True),
        ("~", None),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text, value):
    assert load_yaml(text) == value and type(load_yaml(text)) is type(value)


def test_python_tags_stay_refused():
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_yaml("!!python/object/apply:os.system ['true']")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rounds.count=true", "rounds.count: expected a number, found the boolean true"),
        ("rounds.count=1:30", "rounds.count: expected a number, found the text '1:30'"),
        ('rounds.count="5"', "rounds.count: expected a number, found the text '5' \\(write it"),
        ("model.head_hidden=[32, '64']", "model.head_hidden: expected numbers, found the text"),
        ('methods[1].params.lr="0.01"', "lr: expected a number, found the text '0.01'"),
        ("data.labeled_fraction=false", "data.labeled_fraction: expected a number"),
        ("model.head_hidden=[32, true]", "model.head_hidden: expected numbers, found the boolean"),
        ("methods[1].params.lr=true", r"methods\[1\].params: lr: expected a number, found the b"),
        ("methods[1].params.local_epochs=false", "local_epochs: expected a number, found the"),
    ],
)
def test_a_value_that_only_looks_like_a_number_is_refused_by_key(tmp_path, override, message):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path, [override])


def test_a_leading_zero_is_decimal(tmp_path):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    assert load_scenario(path, ["rounds.count=011"]).rounds.count == 11


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("seed=0,1", "--grid seed: not a sweep axis"),
        ("seeds=1,2", "--grid seeds: not a sweep axis"),
        ("engine.kind=inline,ray", "--grid engine.kind: not a sweep axis"),
        ("rounds.count=3,3.0", "cell-000 .* and cell-001 .* are the same scenario"),
        ("data.labeled_fraction=0.5,5e-1", "each value may appear once"),  # 5e-1 is 0.5
        ("methods[1].params.lr=0.01,1e-2", "each value may appear once"),
        ("methods[1].params.local_epochs=1,1.0", "cell-000 .* and cell-001 .* are the same"),
        ("methods[1].params.lr=0.5,1,1.0", "cell-001 .* and cell-002 .* are the same"),
    ],
)
def test_a_sweep_refuses_axes_it_owns_and_cells_that_repeat(tmp_path, capsys, grid, message):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    assert main(["sweep", str(path), "--grid", grid, "--out", str(tmp_path), "--dry-run"]) != 0
    err = capsys.readouterr().err
    assert re.search(message, err.replace("\n", " ")), err
    assert not (tmp_path / "tiny-test").exists()


def test_the_cell_limit_is_checked_before_the_product_is_built(tmp_path, capsys):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    values = ",".join(str(v) for v in range(1, 1001))
    grid = ["--grid", f"rounds.count={values}", "--grid", f"rounds.eval_devices={values}"]
    assert main(["sweep", str(path), *grid, "--dry-run"]) != 0
    assert "1,000,000 cells; at most 1000" in capsys.readouterr().err


def test_what_the_run_folder_writes_reads_back_to_the_same_values():
    from simulator.scenario.yaml12 import dump_yaml

    document = {"name": "08", "a": "1e3", "b": "0o17", "c": "true", "d": 8, "e": 1.5, "f": None}
    document["08"] = "null"
    assert load_yaml(dump_yaml(document, sort_keys=False)) == document


@pytest.mark.parametrize("text", ["!!int 0b11", "!!int 1:30", "!!bool yes", "!!float 1:30"])
def test_an_explicit_tag_cannot_smuggle_a_1_1_value_in(text):
    import yaml

    with pytest.raises(yaml.YAMLError, match="is not a YAML 1.2"):
        load_yaml(text)


def test_a_key_given_twice_and_nesting_past_reason_are_one_line(tmp_path):
    import yaml

    with pytest.raises(yaml.YAMLError, match="key 'rounds' appears twice"):
        load_yaml("rounds: {count: 3}\nseed: 1\nrounds: {count: 2}\n")
    with pytest.raises(yaml.YAMLError, match="nested too deeply"):
        load_yaml("a: " + "[" * 1000 + "]" * 1000)
    assert load_yaml("base: &b {x: 1}\nother: {<<: *b, y: 2}") == {
        "base": {"x": 1},
        "other": {"x": 1, "y": 2},
    }  # a merge key is not a repeat


def test_a_key_both_set_and_swept_is_refused(tmp_path, capsys):
    path = write_yaml(tmp_path / "tiny.yaml", TINY)
    args = ["sweep", str(path), "--grid", "rounds.count=2,3", "--set", "rounds.count=4"]
    assert main([*args, "--dry-run"]) != 0
    assert "--set rounds.count: also a --grid axis" in capsys.readouterr().err
