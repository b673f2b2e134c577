"""The inline engine and Flower's Ray engine give the same metrics for the same scenario."""

from __future__ import annotations

import pytest
from conftest import PERSONA_QUICK

from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.schema import Scenario


def _metrics(document, engine: str, out) -> dict[str, list[dict]]:
    document = dict(document, engine={"kind": engine, "num_cpus": 2})
    document["methods"] = [*document["methods"], {"name": "persona", "params": PERSONA_QUICK}]
    scenario = Scenario.model_validate(document)
    plan = RunPlan(scenario, ["static", "fedavg", "persona"], [0], out)
    folder = run_plan(plan, show_progress=False)
    return {
        m: [
            {k: v for k, v in row.items() if "wall" not in k}
            for row in read_rows(metrics_path(folder, m, 0))
        ]
        for m in plan.methods
    }


@pytest.mark.slow
@pytest.mark.ray
def test_inline_and_ray_engines_give_identical_metrics(tmp_path, tiny_document):
    inline = _metrics(tiny_document, "inline", tmp_path / "inline")
    on_ray = _metrics(tiny_document, "ray", tmp_path / "ray")
    assert inline["fedavg"], "no rows written"
    rounds = [r for r in inline["fedavg"] if r["kind"] == "round"]
    assert sum(r["kept"] for r in rounds) > 0  # the comparison covers real training
    assert sum(r["failed"] for r in rounds) > 0  # and crashed devices
    assert any(r["kept"] for r in inline["persona"] if r["kind"] == "round")
    assert inline == on_ray
