"""The CLI end to end under random hostile arguments: results, or one line per problem."""

from __future__ import annotations

import copy
import csv
import math
import time

from conftest import TINY, write_yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli import main

NUMBERS = ["inf", "-inf", "nan", "-1", "0", "1e-300", "1e300", "3", "0.5", "abc", "[1]"]
KEYS = [
    "rounds.period_s",
    "rounds.eval_every_s",
    "rounds.deadline_s",
    "data.cloud_fraction",
    "data.test_fraction",
    "fleet.devices",
    "seed",
    "shifts[0].onset_s",
    "shifts[0].severity",
    "rounds.eval_devices",
    "fleet.classes[0].share",
]
METHODS = ["static", "static,static", "nope", "", "em-prior", "static,em-prior", ","]
SEEDS = ["1", "2", "0", "-1", "abc"]

arguments = st.tuples(
    st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(NUMBERS)), max_size=3),
    st.sampled_from(METHODS),
    st.sampled_from(SEEDS),
)


@settings(
    max_examples=14,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(arguments)
def test_any_arguments_give_results_or_one_line(tmp_path_factory, capsys, drawn):
    overrides, methods, seeds = drawn
    folder = tmp_path_factory.mktemp("cli")
    document = copy.deepcopy(TINY)
    document["fleet"]["devices"] = 8
    document["rounds"].update(count=2, eval_devices=4)
    scenario = write_yaml(folder / "s.yaml", document)
    argv = [str(scenario), "--out", str(folder / "runs"), "--no-progress", "--seeds", seeds]
    argv += ["--methods", methods]
    for key, value in overrides:
        argv += ["--set", f"{key}={value}"]
    started = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert time.perf_counter() - started < 120, argv
    assert "Traceback" not in err, (argv, err)
    if code == 0:
        (summary,) = (folder / "runs").glob("*/*/summary.csv")
        rows = list(csv.DictReader(summary.open()))
        assert rows, argv
        for row in rows:
            accuracy = float(row["acc_mean"])
            assert math.isfinite(accuracy) and 0 <= accuracy <= 1, (argv, row)
    else:
        lines = err.strip().splitlines()
        if lines[0].startswith("usage:"):  # argparse: its usage, then one error line
            assert lines[-1].startswith("simulate: error: "), (argv, err)
        else:  # ours: one line per problem, each naming where it is
            assert lines[0].startswith("error: "), (argv, err)
            assert all(str(scenario) in line or len(lines) == 1 for line in lines), (argv, err)
