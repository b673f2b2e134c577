"""The ``simulate`` command end to end on a tiny scenario."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import write_yaml

from simulator.cli import main
from simulator.run.reader import read_rows
from simulator.run.summary import SUMMARY_COLUMNS

STABLE = [
    "method",
    "seed",
    "acc_mean",
    "acc_worst10",
    "recovery_s",
    "bytes_up_per_device",
    "bytes_down_per_device",
    "device_flops_per_round",
    "device_backward_passes",
    "rounds",
    "dropped_device_rounds",
    "sim_duration_s",
    "wall_s",
]


def test_run_writes_scenario_metrics_and_summary(tmp_path, tiny_document, capsys):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    code = main(
        [str(scenario), "--out", str(tmp_path / "runs"), "--no-progress", "--set", "rounds.count=3"]
    )
    assert code == 0
    [folder] = list((tmp_path / "runs" / "tiny-test").iterdir())
    resolved = yaml.safe_load((folder / "scenario.yaml").read_text())
    assert resolved["rounds"]["count"] == 3
    assert resolved["rounds"]["deadline_s"] == 60  # defaults and file values resolved
    for method in ("static", "fedavg"):
        rows = read_rows(folder / "metrics" / f"{method}__seed0.jsonl")
        assert [r["round"] for r in rows if r["kind"] == "round"] == [1, 2, 3]
        assert rows[-1]["kind"] == "end"
        assert [r["time_s"] for r in rows if r["kind"] == "eval"] == [0, 120, 240, 360]
    with (folder / "summary.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == SUMMARY_COLUMNS
    assert SUMMARY_COLUMNS[: len(STABLE)] == STABLE
    by_method = {row["method"]: row for row in table}
    assert set(by_method) == {"static", "fedavg"}
    for row in table:
        for column in STABLE:
            assert row[column] not in ("", "nan", "None"), (row["method"], column)
    assert float(by_method["static"]["bytes_up_per_device"]) == 0.0
    assert float(by_method["fedavg"]["bytes_up_per_device"]) > 0.0
    assert float(by_method["fedavg"]["device_backward_passes"]) > 0
    assert int(by_method["static"]["device_backward_passes"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    assert {r["method"] for r in summary} == {"static", "fedavg"}
    assert str(folder) in capsys.readouterr().out


def test_same_seed_gives_the_same_numbers(tmp_path, tiny_document):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    for out in ("a", "b"):
        assert (
            main(
                [
                    str(scenario),
                    "--out",
                    str(tmp_path / out),
                    "--no-progress",
                    "--methods",
                    "fedavg",
                ]
            )
            == 0
        )
    [a] = list((tmp_path / "a" / "tiny-test").iterdir())
    [b] = list((tmp_path / "b" / "tiny-test").iterdir())

    def stable(folder):
        return [
            {k: v for k, v in r.items() if "wall" not in k}
            for r in read_rows(folder / "metrics" / "fedavg__seed0.jsonl")
        ]

    assert stable(a) == stable(b)


def test_seeds_option_runs_each_seed(tmp_path, tiny_document):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    assert (
        main(
            [
                str(scenario),
                "--out",
                str(tmp_path),
                "--no-progress",
                "--seeds",
                "2",
                "--methods",
                "static",
                "--set",
                "rounds.count=1",
            ]
        )
        == 0
    )
    [folder] = list((tmp_path / "tiny-test").iterdir())
    assert sorted(p.name for p in (folder / "metrics").iterdir()) == [
        "static__seed0.jsonl",
        "static__seed1.jsonl",
    ]


def test_validate_checks_without_running(tmp_path, tiny_document, capsys):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    assert main(["validate", str(scenario)]) == 0
    assert "valid (12 devices, 2 methods, 4 rounds)" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def test_errors_are_one_line_and_exit_nonzero(tmp_path, tiny_document, capsys):
    tiny_document["rounds"]["count"] = -1
    scenario = write_yaml(tmp_path / "bad.yaml", tiny_document)
    assert main(["validate", str(scenario)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {scenario}: rounds.count: expected greater than or equal to 1; found -1"
    assert "Traceback" not in err


def test_unknown_method_on_the_command_line(tmp_path, tiny_document, capsys):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    assert main([str(scenario), "--methods", "fedsgd", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --methods: unknown method 'fedsgd' (did you mean 'fedavg'?); ")
    assert " fedavg," in err and "\n" not in err


def test_methods_option_adds_registered_methods_at_default_parameters(tmp_path, tiny_document):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    out = tmp_path / "runs"
    assert (
        main(
            [
                str(scenario),
                "--methods",
                "static,finetune",
                "--out",
                str(out),
                "--no-progress",
                "--set",
                "rounds.count=1",
            ]
        )
        == 0
    )
    [folder] = list((out / "tiny-test").iterdir())
    resolved = yaml.safe_load((folder / "scenario.yaml").read_text())
    assert [m["name"] for m in resolved["methods"]] == ["static", "fedavg", "finetune"]
    assert (folder / "metrics" / "finetune__seed0.jsonl").exists()
    assert not (folder / "metrics" / "fedavg__seed0.jsonl").exists()


def test_missing_scenario_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / 'nope.yaml'}: scenario file not found"
    )


def test_shipped_scenarios_validate():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.joinpath("scenarios").glob("*.yaml")):
        assert main(["validate", str(path)]) == 0, path


def test_output_folder_that_cannot_be_created(tmp_path, tiny_document, capsys):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main([str(scenario), "--out", str(blocker / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot create output folder {blocker / 'runs'}")
    assert len(err.splitlines()) == 1


def test_disk_full_while_writing_is_one_line_and_keeps_earlier_rows(
    tmp_path, tiny_document, capsys, monkeypatch
):
    import errno

    from simulator.run import metrics_log

    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    real_append = metrics_log.MetricsLog.append
    written = []

    def append_until_full(self, row):
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(row)
        real_append(self, row)

    monkeypatch.setattr(metrics_log.MetricsLog, "append", append_until_full)
    code = main(
        [str(scenario), "--out", str(tmp_path / "runs"), "--no-progress", "--methods", "fedavg"]
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == "error: No space left on device"
    assert "Traceback" not in err
    [folder] = list((tmp_path / "runs" / "tiny-test").iterdir())
    assert len(read_rows(folder / "metrics" / "fedavg__seed0.jsonl")) == 3


def test_bad_command_line_arguments_exit_nonzero(tmp_path, tiny_document, capsys):
    import pytest

    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    with pytest.raises(SystemExit) as exit_info:
        main([str(scenario), "--engine", "spark"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'spark'" in capsys.readouterr().err
    assert main([str(scenario), "--seeds", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --seeds must be at least 1"


def test_resume_arguments_are_checked(tmp_path, tiny_document, capsys):
    import pytest

    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    with pytest.raises(SystemExit) as exit_info:
        main(["--resume", str(tmp_path), str(scenario)])
    assert exit_info.value.code == 2
    assert "--resume takes no scenario file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])
    assert "scenario (or --resume RUN_DIR)" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "gone")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'gone'}: no such run folder"
    assert main([str(scenario), "--checkpoint-every", "-1"]) == 2
    assert "--checkpoint-every" in capsys.readouterr().err


def test_a_misspelt_command_gets_a_suggestion_and_help_lists_the_commands(capsys):
    from simulator.cli import main as simulate

    assert simulate(["valdate", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'simulate validate'?" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        simulate(["--help"])
    out = capsys.readouterr().out
    assert all(f"simulate {c}" in out for c in ("validate", "report", "compare", "sweep", "traces"))


def test_a_run_folder_records_the_code_packages_and_machine(tmp_path, tiny_document, capsys):
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    args = [str(scenario), "--methods", "static,fedavg", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    (folder,) = (tmp_path / "tiny-test").iterdir()
    (entry,) = json.loads((folder / "provenance.json").read_text())
    assert entry["role"] == "start" and entry["packages"]["torch"]
    assert entry["machine"]["cpus"] >= 1 and entry["machine"]["processor"]
    assert entry["machine"]["torch_kernels"] and entry["threads"]["torch"] >= 1
    if (Path(__file__).parent.parent / ".git").exists():
        assert len(entry["source"]["commit"]) == 40
    # What the terminal showed is kept, and the end-of-run table is a short one.
    shown = capsys.readouterr().out
    log = (folder / "run.log").read_text()
    assert "device model:" in log and "starting model (seed 0" in log
    table = [line for line in shown.splitlines() if line.startswith(("method", "static", "fedavg"))]
    assert [line.split()[0] for line in table] == ["method", "static", "fedavg"]
    assert all(line.split(maxsplit=1)[1] in log for line in table)
    assert "acc_worst10" not in shown  # not the 36-column CSV
    assert f"report: {folder / 'report.html'}" in shown


def test_summary_json_is_strict_json_with_null_for_missing_figures(tmp_path, tiny_document):
    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    tiny_document["shifts"] = []  # no onset: the pre- and post-shift figures cannot exist
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    args = [str(scenario), "--methods", "static", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    (folder,) = (tmp_path / "tiny-test").iterdir()
    (row,) = json.loads((folder / "summary.json").read_text(), parse_constant=refuse)
    assert row["acc_post_shift"] is None and row["acc_mean"] > 0
    from simulator.run.reader import load_run

    (read,) = load_run(folder).summary  # in memory a missing figure is NaN, as in the CSV
    assert math.isnan(read["acc_post_shift"]) and read["prototypes_final"] is None


def test_compare_warns_where_runs_were_made_with_different_code_or_machines(tmp_path):
    from simulator.run.provenance import describe_process, provenance_differences

    entry = describe_process()
    folders = []
    for name, threads in (("a", 2), ("b", 1)):
        folder = tmp_path / name
        folder.mkdir()
        changed = {**entry, "threads": {**entry["threads"], "torch": threads}}
        (folder / "provenance.json").write_text(json.dumps([{"role": "start", **changed}]))
        folders.append(folder)
    (line,) = provenance_differences(folders)
    assert line.startswith("torch threads differs") and f"{folders[1]}: 1" in line
    (tmp_path / "c").mkdir()  # an older folder without the file: nothing to compare
    assert provenance_differences([folders[0], tmp_path / "c"]) == []


def test_help_answers_without_loading_torch_or_flower():
    from conftest import fresh_interpreter

    probe = (
        "import sys\nfrom simulator.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, 'flwr' in sys.modules)"
    )
    assert fresh_interpreter(probe, timeout=60) == "False False"
