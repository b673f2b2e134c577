"""The complete minimal method in ``strategies/README.md`` runs as written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.loading import parse_scenario
from strategies import registry

README = Path(__file__).resolve().parent.parent / "strategies" / "README.md"


def _example_module(tmp_path: Path):
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    path = tmp_path / "prior_shift.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("prior_shift", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_method_registers_and_runs(tmp_path, tiny_document, monkeypatch):
    example = _example_module(tmp_path)
    monkeypatch.setitem(registry._METHODS, example.METHOD.name, example.METHOD)
    tiny_document["methods"] = [{"name": "prior-shift", "params": {"smoothing": 0.5}}]
    scenario = parse_scenario(tiny_document)
    folder = run_plan(RunPlan(scenario, ["prior-shift"], [0], tmp_path / "runs"), False)
    rows = read_rows(metrics_path(folder, "prior-shift", 0))
    rounds = [r for r in rows if r["kind"] == "round"]
    assert rows[-1]["kind"] == "end"
    assert sum(r["train_metrics"]["corrected"] for r in rounds) > 0
    assert all(r["bytes_up"] == 0 and r["backward_passes"] == 0 for r in rounds)
