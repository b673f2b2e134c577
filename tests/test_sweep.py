"""``simulate sweep``: cells as run folders, sweep.csv, the winner rule, resume, failures."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
from conftest import TINY, write_yaml

from simulator.cli import main
from simulator.run.paired import Comparison
from simulator.run.reader import read_rows
from simulator.sweep.table import winner

GRID = ["--grid", "data.labeled_fraction=0.1,0.5", "--grid", "rounds.participation=0.25,0.5"]
SHARED_PRETRAINING = ["--set", "pretrain.seed=0"]  # every cell loads one cached model


def _scenario(root):
    document = json.loads(json.dumps(TINY))
    document["rounds"]["count"] = 3
    return write_yaml(root / "tiny.yaml", document)


def _sweep_args(scenario, out, workers="2"):
    return [
        "sweep",
        str(scenario),
        *GRID,
        *SHARED_PRETRAINING,
        "--seeds",
        "2",
        "--workers",
        workers,
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """A 2 x 2 grid of the tiny scenario, 2 seeds, on two worker processes."""
    root = tmp_path_factory.mktemp("sweep")
    assert main(_sweep_args(_scenario(root), root / "out")) == 0
    (folder,) = (root / "out" / "tiny-test").iterdir()
    return folder


def _rows(folder):
    with (folder / "sweep.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_sweep_csv_holds_each_cells_summary_and_the_report_draws_heatmaps(sweep_folder):
    rows = _rows(sweep_folder)
    assert len(rows) == 4 * 2 and {r["status"] for r in rows} == {"done"}
    sweep = json.loads((sweep_folder / "sweep.json").read_text())
    for cell in sweep["cells"]:
        name = f"cell-{cell['index']:03d}"
        summary = json.loads((sweep_folder / "cells" / name / "summary.json").read_text())
        assert sorted({r["seed"] for r in summary}) == cell["seeds"]
        for method in ("static", "fedavg"):
            (row,) = [r for r in rows if r["cell"] == name and r["method"] == method]
            for key in ("acc_mean", "acc_post_shift"):
                values = [s[key] for s in summary if s["method"] == method]
                assert math.isclose(float(row[key]), sum(values) / len(values), rel_tol=1e-9)
            values = dict(cell["values"])
            assert float(row["data.labeled_fraction"]) == values["data.labeled_fraction"]
    seeds = [tuple(c["seeds"]) for c in sweep["cells"]]
    assert len(set(seeds)) == 4  # each cell its own seeds
    for name in ("sweep-winner-0.png", "sweep-acc-bytes.png"):
        assert (sweep_folder / "plots" / name).stat().st_size > 1000
    page = (sweep_folder / "sweep.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert main(["report", str(sweep_folder / "cells" / "cell-000")]) == 0  # a run folder
    (sweep_folder / "sweep.html").unlink()
    assert main(["report", str(sweep_folder)]) == 0  # the sweep's report, rebuilt
    assert (sweep_folder / "sweep.html").read_text() == page


def _comparison(method, other, low, high, seeds=3):
    return Comparison("acc_post_shift", method, other, seeds, 10, (low + high) / 2, low, high)


def test_a_winner_needs_an_interval_above_zero_against_every_other_method():
    methods = ["static", "fedavg", "persona"]
    clear = {
        ("persona", "static"): _comparison("persona", "static", 0.02, 0.08),
        ("persona", "fedavg"): _comparison("persona", "fedavg", 0.01, 0.05),
        ("fedavg", "static"): _comparison("fedavg", "static", -0.01, 0.03),
        ("fedavg", "persona"): _comparison("fedavg", "persona", -0.05, -0.01),
        ("static", "fedavg"): _comparison("static", "fedavg", -0.03, 0.01),
        ("static", "persona"): _comparison("static", "persona", -0.08, -0.02),
    }
    assert winner(methods, clear) == "persona"
    unclear = dict(clear)
    unclear[("persona", "fedavg")] = _comparison("persona", "fedavg", -0.01, 0.05)
    assert winner(methods, unclear) is None  # ahead of static only: no winner
    few = {key: _comparison(*key, c.low, c.high, seeds=2) for key, c in clear.items()}
    assert winner(methods, few) is None  # two seeds give no verdict, so no winner


def test_a_killed_cell_resumes_and_finished_cells_are_kept(sweep_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(sweep_folder, folder)
    before = _rows(folder)
    killed = folder / "cells" / "cell-002"
    (killed / "summary.json").unlink()
    metrics = (
        killed
        / "metrics"
        / "fedavg__seed{}.jsonl".format(
            json.loads((folder / "sweep.json").read_text())["cells"][2]["seeds"][1]
        )
    )
    rows = read_rows(metrics)
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))  # no end row
    kept = folder / "cells" / "cell-000" / "summary.json"
    stamp = kept.stat().st_mtime_ns
    assert main(["sweep", "--resume", str(folder), "--workers", "1"]) == 0
    assert kept.stat().st_mtime_ns == stamp  # a finished cell is not run again
    after = _rows(folder)
    for old, new in zip(before, after, strict=True):  # the same numbers, every cell
        assert {k: old[k] for k in ("cell", "method", "acc_mean", "acc_post_shift")} == {
            k: new[k] for k in ("cell", "method", "acc_mean", "acc_post_shift")
        }


@pytest.mark.parametrize("edit", ["base", "values", "duplicate"])
def test_a_resume_refuses_a_sweep_file_edited_after_the_start(sweep_folder, tmp_path, capsys, edit):
    folder = tmp_path / "copy"
    shutil.copytree(sweep_folder, folder)
    (folder / "cells" / "cell-003" / "summary.json").unlink()  # one cell left to run
    document = json.loads((folder / "sweep.json").read_text())
    if edit == "base":  # the unfinished cell would run under another base than the others
        document["base"]["rounds"]["count"] = 4
    elif edit == "values":
        document["cells"][3]["values"][0][1] = 0.3
    else:  # a hand-added cell sharing an index (and a folder) with another
        document["cells"].append({**document["cells"][0], "values": [["rounds.count", 5]]})
    (folder / "sweep.json").write_text(json.dumps(document))
    assert main(["sweep", "--resume", str(folder), "--workers", "1"]) != 0
    err = capsys.readouterr().err
    expected = "index 0 appears more than once" if edit == "duplicate" else "cell-00"
    assert expected in err and "Traceback" not in err, err
    if edit != "duplicate":
        assert "no longer builds the scenario it started with" in err
    assert not (folder / "cells" / "cell-003" / "summary.json").exists()  # nothing ran


def test_a_cell_folder_another_process_still_writes_is_not_deleted(tmp_path):
    from simulator.run.lock import writer_lock
    from simulator.sweep.execute import CellJob, run_cell

    folder = tmp_path / "cells" / "cell-000"
    folder.mkdir(parents=True)
    (folder / "partial.jsonl").write_text("{}\n")
    with writer_lock(folder):  # stands in for a worker orphaned by a killed sweep
        name, error = run_cell(CellJob("cell-000", str(folder), dict(TINY), ("static",), (0,)))
    assert name == "cell-000" and "still written by pid" in error
    assert (folder / "partial.jsonl").exists()


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path, monkeypatch, capsys):
    import simulator.sweep.execute as execute

    real = execute.run_plan

    def failing_for_cell_one(plan, *args, folder=None, **kwargs):
        if folder is not None and folder.name == "cell-001":
            raise RuntimeError("the device image could not be built")
        return real(plan, *args, folder=folder, **kwargs)

    monkeypatch.setattr(execute, "run_plan", failing_for_cell_one)
    args = _sweep_args(_scenario(tmp_path), tmp_path / "out", workers="1")
    one_axis = args[:4] + args[6:]  # the labeled fraction only: 2 cells
    assert main(one_axis) == 1  # the table is written, and the failure is the exit status
    assert "1 cell(s) failed (cell-001)" in capsys.readouterr().err
    (folder,) = (tmp_path / "out" / "tiny-test").iterdir()
    rows = _rows(folder)
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["cell"] for r in failed] == ["cell-001"]
    assert "RuntimeError: the device image could not be built" in failed[0]["error"]
    assert {r["cell"] for r in rows if r["status"] == "done"} == {"cell-000"}
    assert "cell-001 failed" in (folder / "sweep.md").read_text()
    monkeypatch.setattr(execute, "run_plan", real)  # fixed: resume runs the failed cell
    assert main(["sweep", "--resume", str(folder), "--workers", "1"]) == 0
    assert {r["status"] for r in _rows(folder)} == {"done"}
    assert not (folder / "cells" / "cell-001.error").exists()


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("rounds.participation=0.5,7", "cell-001 (rounds.participation=7): "),
        ("rounds.bogus=1,2", "rounds.bogus"),
        ("rounds.participation", "expected KEY.PATH=V1,V2"),
        ("rounds.participation=0.5,0.5", "each value may appear once"),
    ],
)
def test_a_bad_grid_is_refused_before_anything_runs(tmp_path, capsys, grid, message):
    out = tmp_path / "out"
    assert main(["sweep", str(_scenario(tmp_path)), "--grid", grid, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_dry_run_lists_the_cells_and_an_estimate(tmp_path, capsys):
    args = ["sweep", str(_scenario(tmp_path)), *GRID, "--seeds", "3", "--dry-run"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.count("cell-00") == 4 and "4 cells x 2 methods x 3 seeds" in out
    assert not (tmp_path / "out").exists()


def test_dry_run_names_engine_settings_a_sweep_does_not_use(tmp_path, capsys):
    args = ["sweep", str(_scenario(tmp_path)), *GRID, "--set", "engine.shards=3", "--dry-run"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "not used in a sweep" in out and "engine.shards=3" in out


def test_engine_keeps_one_meaning_and_a_sweep_refuses_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sweep", str(_scenario(tmp_path)), *GRID, "--engine", "ray", "--dry-run"])
    err = capsys.readouterr().err
    assert "cells run on the inline engine" in err and "--cells-on ray" in err


@pytest.mark.slow
def test_ray_tasks_give_the_numbers_of_worker_processes(sweep_folder, tmp_path):
    """Cells are ordinary seeded runs: where they run does not change a number."""
    assert main([*_sweep_args(_scenario(tmp_path), tmp_path / "out"), "--cells-on", "ray"]) == 0
    (folder,) = (tmp_path / "out" / "tiny-test").iterdir()
    keys = ("cell", "method", "acc_mean", "acc_post_shift", "difference", "low", "high")
    assert [{k: r[k] for k in keys} for r in _rows(folder)] == [
        {k: r[k] for k in keys} for r in _rows(sweep_folder)
    ]
