"""The notebook API: the CLI's run from Python, its results as DataFrames that match the files."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import TINY, fresh_interpreter, write_yaml

from simulator.api import ScenarioWarning, load_run, simulate
from simulator.run.folder import metrics_path
from simulator.run.reader import RunFolderError, read_rows


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    path = write_yaml(root / "tiny.yaml", TINY)
    with pytest.warns(ScenarioWarning, match="rounds.participation"):
        return simulate(
            path,
            methods=["static", "fedavg"],
            seeds=3,
            overrides={"rounds.participation": 0.01},
            out=root / "runs",
        )


def test_summary_is_the_folders_summary(results):
    with (results.folder / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(results.summary["method"]) == [r["method"] for r in rows]
    assert set(results.summary["method"]) == {"static", "fedavg"} and len(rows) == 6
    for frame_value, row in zip(results.summary["acc_mean"], rows, strict=True):
        assert frame_value == pytest.approx(float(row["acc_mean"]))


def test_evaluations_hold_every_scored_device_of_every_tick(results):
    frame = results.evaluations
    for method in ("static", "fedavg"):
        evals = [
            r for r in read_rows(metrics_path(results.folder, method, 0)) if r["kind"] == "eval"
        ]
        mine = frame[(frame["method"] == method) & (frame["seed"] == 0)]
        assert len(mine) == sum(len(r["devices"]) for r in evals)
        for row in evals:  # each tick's mean is the mean of its devices' rows
            tick = mine[mine["time_s"] == row["time_s"]]
            assert tick["accuracy"].mean() == pytest.approx(row["acc_mean"])


def test_paired_rounds_and_a_reload_agree_with_the_files(results):
    with (results.folder / "paired.csv").open(newline="") as handle:
        assert len(results.paired) == len(list(csv.DictReader(handle)))
    assert set(results.rounds["method"]) == {"fedavg", "static"}
    assert {"fedavg"} <= set(results.paired["method"])
    again = load_run(results.folder)
    assert again.summary.equals(results.summary)
    assert json.loads((results.folder / "run.json").read_text())["methods"] == ["static", "fedavg"]
    assert results.report().name == "report.html"


def test_a_folder_that_is_no_run_is_refused_at_once(tmp_path):
    with pytest.raises(RunFolderError):
        load_run(tmp_path)


def test_the_package_itself_offers_the_api_without_loading_it_up_front():
    probe = (
        "import sys, simulator\nloaded = 'pandas' in sys.modules\n"
        "from simulator import load_run, simulate\nimport simulator.api as api\n"
        "print(loaded, simulate is api.simulate and load_run is api.load_run)"
    )
    assert fresh_interpreter(probe) == "False True"


def test_summary_parquet_is_the_summary_where_pyarrow_is_installed(results):
    pytest.importorskip("pyarrow")
    import pandas as pd

    frame = pd.read_parquet(results.folder / "summary.parquet")
    assert list(frame["method"]) == list(results.summary["method"])
    assert list(frame["acc_mean"]) == list(results.summary["acc_mean"])
