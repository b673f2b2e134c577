"""Every shipped scenario validates, says what it tests, and runs end to end at a reduced size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from reports.build import build_report
from simulator.catalog import datasets
from simulator.catalog.interest_model import InterestConfig
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.loading import load_scenario

SCENARIOS = sorted(Path(__file__).parent.parent.joinpath("scenarios").glob("*.yaml"))
LIBRARY = {
    "lowbandwidth",
    "highbandwidth",
    "sudden",
    "gradual",
    "recurring",
    "labelshift",
    "unseen",
    "intermittent",
    "bigfleet",
    "rec-drift",
    "rec-lowbandwidth",
    "traced",
}


def test_the_library_is_complete_and_each_file_explains_itself():
    assert {p.stem for p in SCENARIOS} >= LIBRARY
    for path in SCENARIOS:
        lines = path.read_text().splitlines()
        assert lines[0].startswith(f"# {path.stem}:"), path
        header = " ".join(line for line in lines if line.startswith("#"))
        assert "Tests" in header and "Should win:" in header, path  # what it tests, who wins
        assert "Regime:" in header, path  # which starting model the claims are about


def test_shipped_scenarios_raise_no_warnings():
    for path in SCENARIOS:
        assert load_scenario(path).warnings() == [], path


def _reduced(path: Path) -> list[str]:
    document = yaml.safe_load(path.read_text())
    overrides = [
        "fleet.devices=16",
        "rounds.count=2",
        "rounds.period_s=1500",
        "rounds.eval_every_s=1500",
        "rounds.eval_devices=4",
        "pretrain.epochs=1",
        "engine.kind=inline",
    ]
    if not document["data"]["dataset"].startswith("interests"):
        overrides.append("data.dataset=digits")  # click streams keep theirs (a small cloud)
    for i, method in enumerate(document["methods"]):
        if method["name"].startswith("persona"):
            overrides += [
                f"methods[{i}].params.pretrain_steps=10",
                f"methods[{i}].params.generator_steps=5",
                f"methods[{i}].params.prototype_episodes=16",
                f"methods[{i}].params.prototypes=2",
            ]
    return overrides


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenario_runs_at_a_reduced_size(path, tmp_path, monkeypatch):
    small = InterestConfig(cloud_users=40, cloud_samples=32)
    for name, spec in list(datasets.DATASETS.items()):
        if spec.catalogue is not None:
            monkeypatch.setitem(datasets.DATASETS, name, replace(spec, catalogue=small))
    scenario = load_scenario(path, _reduced(path))
    methods = [m.name for m in scenario.methods]
    folder = run_plan(RunPlan(scenario, methods, [0], tmp_path), show_progress=False)
    for method in methods:
        rows = read_rows(metrics_path(folder, method, 0))
        assert rows[-1]["kind"] == "end", method
        assert [r["time_s"] for r in rows if r["kind"] == "eval"] == [0.0, 1500.0, 3000.0]
    assert build_report(folder).exists()  # what ``simulate`` does after the run
