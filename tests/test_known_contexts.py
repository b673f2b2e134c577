"""Known and unknown contexts: derived from the scenario, split in the summary and paired table."""

from __future__ import annotations

import copy
import csv
import json
import math

import pytest
from conftest import TINY, write_yaml

from simulator.cli import main
from simulator.run.accuracy import device_means, tick_mean
from simulator.run.reader import read_rows
from simulator.scenario.drift import KnownContext
from simulator.world.drift import ActiveShift
from simulator.world.known import KNOWN, UNKNOWN, context_kind

FAMILY = [KnownContext(kind="rotation", severity=30), KnownContext(kind="noise", severity=0.3)]


def test_a_context_is_known_only_when_the_cloud_holds_data_under_exactly_it():
    assert context_kind([], FAMILY) is None  # clean data is no context
    assert context_kind([ActiveShift("rotation", 30.0)], FAMILY) == KNOWN
    assert context_kind([ActiveShift("rotation", 45.0)], FAMILY) == UNKNOWN  # other severity
    assert context_kind([ActiveShift("blur", 1.0)], FAMILY) == UNKNOWN  # other kind
    ramping = ActiveShift("rotation", 15.0, strength=0.5, full_severity=30.0)
    assert context_kind([ramping], FAMILY) == UNKNOWN  # halfway up a ramp
    both = [ActiveShift("rotation", 30.0), ActiveShift("noise", 0.3)]
    assert context_kind(both, FAMILY) == UNKNOWN  # the cloud never saw the two at once


def test_context_means_keep_only_device_ticks_of_that_kind():
    rows = [
        {"time_s": 0.0, "devices": [0, 1], "accs": [0.9, 0.5], "contexts": [KNOWN, UNKNOWN]},
        {"time_s": 10.0, "devices": [0, 1], "accs": [0.7, 0.3], "contexts": [UNKNOWN, None]},
    ]
    for row in rows:
        row["acc_mean"] = sum(row["accs"]) / 2
    assert tick_mean(rows, context=KNOWN) == pytest.approx(0.9)
    assert tick_mean(rows, context=UNKNOWN) == pytest.approx(0.6)
    assert device_means(rows, context=UNKNOWN) == pytest.approx({0: 0.7, 1: 0.5})
    assert math.isnan(tick_mean(rows[1:], context=KNOWN))


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """Two groups after 240 s: one meets a family context, the other a severity never seen."""
    root = tmp_path_factory.mktemp("known")
    document = copy.deepcopy(TINY)
    document.pop("shifts")
    document["schedule"] = {
        "groups": 2,
        "contexts": {
            "seen": [{"kind": "rotation", "severity": 30}],
            "unseen": [{"kind": "rotation", "severity": 75}],
        },
        "segments": [{"from_s": 240, "groups": ["seen", "unseen"]}],
    }
    document["pretrain"]["family"] = [{"kind": "rotation", "severity": 30}]
    path = write_yaml(root / "mixed.yaml", document)
    args = [str(path), "--methods", "static,fedavg", "--seeds", "3", "--out", str(root)]
    assert main([*args, "--no-progress"]) == 0
    (folder,) = (root / document["name"]).iterdir()
    return folder


def test_a_scenario_with_both_kinds_reports_both(mixed_run):
    summary = json.loads((mixed_run / "summary.json").read_text())
    for row in summary:
        assert 0 <= row["acc_post_known"] <= 1 and 0 <= row["acc_post_unknown"] <= 1
    evals = [
        r for r in read_rows(mixed_run / "metrics" / "static__seed0.jsonl") if r["kind"] == "eval"
    ]
    before = [r for r in evals if r["time_s"] < 240]
    after = [r for r in evals if r["time_s"] >= 240]
    assert all("contexts" not in r for r in before)  # clean: nothing to mark
    assert {k for r in after for k in r["contexts"]} == {KNOWN, UNKNOWN}
    with (mixed_run / "paired.csv").open() as handle:
        metrics = {r["metric"] for r in csv.DictReader(handle)}
    assert {"acc_post_known", "acc_post_unknown"} <= metrics
    report = (mixed_run / "report.md").read_text()
    assert "post-shift, known contexts" in report and "post-shift, unknown contexts" in report


def test_without_a_known_deployed_context_the_known_column_is_empty(tmp_path):
    document = copy.deepcopy(TINY)  # rotation 45 deployed; the cloud knows no family
    path = write_yaml(tmp_path / "t.yaml", document)
    assert main([str(path), "--methods", "static", "--out", str(tmp_path), "--no-progress"]) == 0
    (folder,) = (tmp_path / document["name"]).iterdir()
    (row,) = json.loads((folder / "summary.json").read_text())
    assert row["acc_post_known"] is None or math.isnan(row["acc_post_known"])
    assert row["acc_post_unknown"] == pytest.approx(row["acc_post_shift"])
