"""Hostile inputs: each is refused in one line, survived, or warned about; never silent."""

from __future__ import annotations

import json
import math
import os
import socket
import time

import pytest
import torch
from conftest import write_yaml

from basemodel.cache import load_entry, save_atomically
from simulator.catalog.errors import ScenarioError, UserError
from simulator.cli import main
from simulator.engine.resources import check_cpus, check_reachable
from simulator.run.folder import metrics_path
from simulator.run.reader import RunFolderError, read_rows
from simulator.scenario.loading import load_scenario, parse_scenario
from simulator.scenario.schema import Engine


def _refusal(tmp_path, document, capsys, *extra: str) -> str:
    path = write_yaml(tmp_path / "hostile.yaml", document)
    code = main(["validate", str(path), *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (("rounds", "period_s"), math.inf, "rounds.period_s: expected a finite number"),
        (("shifts", 0, "severity"), math.nan, "shifts[0].severity: expected a finite number"),
        (("rounds", "eval_every_s"), 1e-300, "evaluation ticks over the horizon; at most 100,000"),
        (("rounds", "eval_every_s"), 10_000, "longer than the horizon"),
        (("rounds", "eval_devices"), 500, "the fleet has 12 (fleet.devices)"),
        (("data", "cloud_fraction"), 0.999, "devices' train pool would hold about"),
        (("seed",), 2**70, "seed: expected less than or equal to"),
    ],
)
def test_values_that_would_hang_or_mislead_are_refused(
    tmp_path, tiny_document, capsys, key, value, expected
):
    target = tiny_document
    for part in key[:-1]:
        target = target[part]
    target[key[-1]] = value
    assert expected in _refusal(tmp_path, tiny_document, capsys)


def test_class_shares_must_add_up_to_one(tmp_path, tiny_document, capsys):
    tiny_document["fleet"]["classes"][0]["share"] = 0.3
    assert "shares add up to 0.8; they are fractions of the fleet" in _refusal(
        tmp_path, tiny_document, capsys
    )


def test_a_shift_after_the_horizon_is_warned_about(tmp_path, tiny_document, capsys):
    tiny_document["shifts"][0]["onset_s"] = 5000
    path = write_yaml(tmp_path / "late.yaml", tiny_document)
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "warning: shifts[0].onset_s: 5000 s is at or after the horizon (480 s)" in err


def test_yaml_alias_bombs_are_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]" for i in range(1, 9)]
    lines += ["name: *a8"]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(ScenarioError, match="expands to more than 100,000 values"):
        load_scenario(path)
    assert time.perf_counter() - started < 5


def test_duplicate_methods_on_the_command_line_are_refused(tmp_path, tiny_document, capsys):
    path = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    assert main([str(path), "--methods", "fedavg,fedavg", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --methods: each method may appear once; repeated: fedavg"
    assert not (tmp_path / "tiny-test").exists()


def test_a_garbled_metrics_line_is_named_not_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"kind": "eval", "time_s": i, "acc_mean": 0.5, "devices": [], "accs": []} for i in range(3)
    ]
    text = [json.dumps(r) for r in rows]
    path.write_text("\n".join([text[0], "{garbled", text[2]]) + "\n")
    with pytest.raises(RunFolderError, match=r"metrics.jsonl: line 2 is not a metrics row"):
        read_rows(path)
    path.write_text("\n".join(text) + '\n{"kind": "rou')  # a torn final line: skipped
    assert read_rows(path) == rows
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(RunFolderError, match="binary content"):
        read_rows(path)


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_a_corrupt_cache_entry_is_a_miss(tmp_path, content, caplog):
    path = tmp_path / "entry.pt"
    if content is None:
        torch.save({"unexpected": 1}, path)  # readable, wrong keys
    else:
        path.write_bytes(content)
    assert load_entry(path, ("adapter",)) is None
    assert "rebuilding it" in caplog.text
    save_atomically({"adapter": torch.ones(2)}, path)
    assert torch.equal(load_entry(path, ("adapter",))["adapter"], torch.ones(2))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_cache_folder_is_a_warning_and_the_entry_still_serves(tmp_path, caplog):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    written = save_atomically({"x": torch.ones(1)}, folder / "entry.pt")
    assert written.parent != folder and written.name == "entry.pt"
    assert torch.equal(torch.load(written, weights_only=True)["x"], torch.ones(1))
    assert "going on uncached" in caplog.text and "PERSONA_FLEET_CACHE" in caplog.text


def test_a_cache_folder_that_is_a_file_is_a_warning_and_the_run_goes_on(
    tmp_path, tiny_document, monkeypatch, caplog
):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    written = save_atomically({"x": torch.ones(1)}, blocker / "entry.pt")
    assert torch.equal(torch.load(written, weights_only=True)["x"], torch.ones(1))
    assert "point PERSONA_FLEET_CACHE at a writable folder" in caplog.text
    path = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    monkeypatch.setenv("PERSONA_FLEET_CACHE", str(blocker))
    args = [str(path), "--methods", "static,persona", "--out", str(tmp_path / "runs")]
    assert main([*args, "--no-progress"]) == 0  # a whole run, pretraining uncached
    (summary,) = (tmp_path / "runs").glob("*/*/summary.json")
    assert {row["method"] for row in json.loads(summary.read_text())} == {"static", "persona"}


@pytest.mark.parametrize("damage", ["truncate", "foreign"])
def test_a_damaged_dataset_cache_is_rebuilt(tmp_path, monkeypatch, caplog, damage):
    import numpy as np

    from simulator.catalog.datasets import load_dataset

    monkeypatch.setenv("PERSONA_FLEET_CACHE", str(tmp_path))
    load_dataset.cache_clear()
    clean = load_dataset("digits")
    (entry,) = tmp_path.glob("dataset-digits-*.npz")
    if damage == "truncate":
        with entry.open("r+b") as handle:
            handle.truncate(entry.stat().st_size // 2)
    else:  # a valid archive of the wrong arrays
        np.savez(entry.with_suffix(""), images=np.zeros((3, 2), np.float32), labels=np.zeros(5))
    load_dataset.cache_clear()
    try:
        again = load_dataset("digits")
    finally:
        load_dataset.cache_clear()
    assert "rebuilding it" in caplog.text
    assert torch.equal(again.images, clean.images) and torch.equal(again.labels, clean.labels)
    with np.load(entry, allow_pickle=False) as saved:  # replaced by a valid entry
        assert saved["images"].shape == tuple(clean.images.shape)


def test_a_persona_cache_entry_of_another_heads_shape_does_not_fit():
    from basemodel.architecture import EditableHead
    from persona.pretraining import _bank_fits, head_weights
    from persona.prototypes import PrototypeBank

    def bank_of(head: EditableHead, k: int) -> PrototypeBank:
        heads = [
            (w.expand(k, *w.shape).clone(), b.expand(k, *b.shape).clone())
            for w, b in head_weights(head)
        ]
        return PrototypeBank(torch.zeros(k, 4), heads, list(range(k)), [0] * k)

    head = EditableHead([16, 8, 10])
    assert _bank_fits(bank_of(head, 3), head)
    assert not _bank_fits(bank_of(EditableHead([16, 8, 4]), 3), head)  # another class count
    assert not _bank_fits(bank_of(EditableHead([16, 10]), 3), head)  # another depth
    mixed = bank_of(head, 3)
    mixed.centroids = torch.zeros(2, 4)  # centroids of another bank size
    assert not _bank_fits(mixed, head)


def test_a_corrupt_pretraining_cache_is_rebuilt_by_a_run(tmp_path, tiny_document, capsys):
    path = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    cache = tmp_path / "cache"
    os.environ["PERSONA_FLEET_CACHE"] = str(cache)
    args = [str(path), "--methods", "static", "--out", str(tmp_path / "runs"), "--no-progress"]
    assert main(args) == 0
    (entry,) = cache.glob("pretrained-*.pt")
    entry.write_bytes(b"\x00garbage")
    assert main(args) == 0
    assert torch.load(entry, weights_only=True)  # replaced by a valid entry


def test_a_cache_entry_of_another_models_shape_is_rebuilt_from_a_fresh_model(tmp_path, caplog):
    from basemodel.pretraining import PretrainConfig, pretrained_state

    torch.manual_seed(0)
    images, labels = torch.randn(64, 6), torch.randint(0, 3, (64,))
    config = PretrainConfig(epochs=1, batch_size=16, lr=1e-2)

    def fresh() -> torch.nn.Module:
        torch.manual_seed(1)  # the same initial weights every time
        return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    clean, path = pretrained_state(fresh(), images, labels, config, 0, {"t": 1}, tmp_path)
    foreign = {k: v.clone() for k, v in clean.items()}
    foreign["2.weight"] = torch.zeros(4, 8)  # another head: the other tensors still fit
    foreign["2.bias"] = torch.zeros(4)
    foreign["0.weight"] = torch.full_like(clean["0.weight"], 7.0)
    torch.save(foreign, path)
    rebuilt, _ = pretrained_state(fresh(), images, labels, config, 0, {"t": 1}, tmp_path)
    assert "holds another model's weights" in caplog.text
    for key in clean:  # exactly the clean build: nothing of the foreign entry leaked in
        assert torch.equal(rebuilt[key], clean[key]), key
    assert torch.equal(torch.load(path, weights_only=True)["0.weight"], clean["0.weight"])


def test_unsatisfiable_ray_requests_are_refused_before_starting():
    with pytest.raises(UserError, match="engine.cpus_per_device: 64 CPUs per device, but"):
        check_cpus(Engine(kind="flower", cpus_per_device=64), 2, "the local Ray")
    with pytest.raises(UserError, match="engine.shards: 9 shard actors need one CPU each"):
        check_cpus(Engine(kind="ray", shards=9), 2, "the local Ray")
    check_cpus(Engine(kind="ray", shards=2), 2, "the local Ray")  # fits


def test_an_unreachable_ray_address_gives_up_within_its_timeout():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(UserError, match=f"cannot reach 127.0.0.1:{port} within 1 s"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=1.0)
    assert time.perf_counter() - started < 5
    with pytest.raises(UserError, match="expected HOST:PORT"):
        check_reachable("nonsense")


def test_documents_decoded_elsewhere_meet_the_same_bound(tiny_document):
    shared = list(range(10))
    for _ in range(6):
        shared = [shared] * 10
    tiny_document["description"] = shared
    with pytest.raises(ScenarioError, match="expands to more than"):
        parse_scenario(tiny_document)


def test_a_device_file_is_not_read_forever(capsys):
    assert main(["validate", "/dev/zero"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: /dev/zero: not a regular file, expected a scenario file (.yaml)"
    )


def test_an_empty_methods_option_is_refused(tmp_path, tiny_document, capsys):
    path = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    assert main([str(path), "--methods", "", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --methods: name at least one method"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import TINY

    from simulator.run.plan import RunPlan
    from simulator.run.runner import run_plan
    from simulator.scenario.schema import Scenario

    document = {**TINY, "rounds": {**TINY["rounds"], "count": 2}}
    scenario = Scenario.model_validate(document)
    out = tmp_path_factory.mktemp("finished")
    return run_plan(RunPlan(scenario, ["static"], [0], out), show_progress=False)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda f: (f / "summary.json").write_text("[{\n"), r"summary.json: not valid JSON"),
        (lambda f: (f / "summary.json").write_text("[{}]"), r"summary.json: expected a list"),
        (lambda f: (f / "scenario.yaml").write_text("a: [\n"), r"scenario.yaml: line 2.*YAML"),
        (
            lambda f: (f / "metrics" / "zzz__seed0.jsonl").write_text('{"kind":"end"}\n'),
            r"zzz__seed0.jsonl: not a metrics file of this run",
        ),
        (
            lambda f: (f / "paired.csv").write_text("metric,method\nacc_mean,x\n"),
            r"paired.csv: not a paired table",
        ),
    ],
    ids=["truncated-summary", "summary-rows", "invalid-scenario", "stray-metrics", "paired"],
)
def test_damaged_run_folders_are_named_by_report(finished_run, tmp_path, capsys, damage, expected):
    import re
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(finished_run, folder)
    damage(folder)
    assert main(["report", str(folder)]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and re.search(expected, err), err


def test_settings_the_data_cannot_serve_stop_with_one_line_keeping_what_finished(
    tmp_path, tiny_document, monkeypatch, capsys
):
    import dataclasses

    import strategies.persona as persona_method

    real = persona_method.pretrain_persona

    def without_heldout(*args, **kwargs):  # a family share too small for held-out episodes
        return dataclasses.replace(real(*args, **kwargs), gate=None)

    monkeypatch.setattr(persona_method, "pretrain_persona", without_heldout)
    document = {
        **tiny_document,
        "methods": [{"name": "static"}, {"name": "persona", "params": {"edit_gate": "calibrated"}}],
    }
    path = write_yaml(tmp_path / "tiny.yaml", document)
    assert main([str(path), "--out", str(tmp_path / "runs"), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "error: persona seed 0: persona: edit_gate calibrated needs held-out episodes" in err
    assert "Traceback" not in err and "finished before it are kept" in err
    (folder,) = (tmp_path / "runs").glob("*/*")
    rows = [json.loads(line) for line in metrics_path(folder, "static", 0).open()]
    assert rows[-1]["kind"] == "end"  # static's finished run is on disk
