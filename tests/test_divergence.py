"""A diverged model is named: in the eval rows, the summary, the run log and the report.

A model whose training blew up still gets a score (NaN logits pick some
class), so without a mark its numbers would read as a poor method rather
than a broken run.
"""

from __future__ import annotations

import json
import logging
import math

from conftest import write_yaml

from simulator.cli import main
from simulator.run.reader import read_rows


def test_a_method_whose_training_diverges_is_named_in_rows_summary_log_and_report(
    tmp_path, tiny_document, caplog
):
    tiny_document["methods"] = [
        {"name": "static"},
        {"name": "finetune", "params": {"local_epochs": 5, "lr": 1.0e12}},  # blows up at once
    ]
    tiny_document["rounds"]["count"] = 3
    scenario = write_yaml(tmp_path / "tiny.yaml", tiny_document)
    with caplog.at_level(logging.WARNING, logger="persona_fleet"):
        assert main([str(scenario), "--out", str(tmp_path), "--no-progress"]) == 0
    (folder,) = (tmp_path / tiny_document["name"]).iterdir()

    diverged = [
        r for r in read_rows(folder / "metrics" / "finetune__seed0.jsonl") if "nonfinite" in r
    ]
    assert diverged and all(0 < r["nonfinite"] <= len(r["devices"]) for r in diverged)
    assert not any("nonfinite" in r for r in read_rows(folder / "metrics" / "static__seed0.jsonl"))

    summary = {row["method"]: row for row in json.loads((folder / "summary.json").read_text())}
    assert summary["finetune"]["nonfinite_evals"] == sum(r["nonfinite"] for r in diverged)
    assert summary["static"]["nonfinite_evals"] == 0
    assert not math.isnan(summary["finetune"]["acc_mean"])  # still scored, but flagged

    assert any(
        "finetune seed 0" in r.message and "NaN or infinite" in r.message for r in caplog.records
    )
    report = (folder / "report.md").read_text()
    assert "Warning: finetune diverged" in report and "Warning: static" not in report
