"""Every engine gives the same metrics for the same scenario and seed.

``inline`` (one batch per exchange in this process), ``ray`` (Ray actors that
own shards of the fleet) and ``flower`` (Flower's own runtime, one ClientApp
call per device) run the same device runtime; only where and how many
devices are computed together differs.
"""

from __future__ import annotations

import pytest
from conftest import PERSONA_QUICK

from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.schema import Scenario

METHODS = ["static", "fedavg", "finetune", "persona"]


def _metrics(document, engine: str, out, methods=METHODS) -> dict[str, list[dict]]:
    document = dict(document, engine={"kind": engine, "num_cpus": 2})
    document["methods"] = [
        *document["methods"],
        {"name": "finetune"},
        {"name": "persona", "params": PERSONA_QUICK},
    ]
    scenario = Scenario.model_validate(document)
    plan = RunPlan(scenario, list(methods), [0], out)
    folder = run_plan(plan, show_progress=False)
    return {
        m: [
            {k: v for k, v in row.items() if "wall" not in k}
            for row in read_rows(metrics_path(folder, m, 0))
        ]
        for m in plan.methods
    }


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    from conftest import TINY

    return _metrics(dict(TINY), "inline", tmp_path_factory.mktemp("inline"))


def test_the_comparison_covers_training_crashes_and_persona(inline):
    rounds = [r for r in inline["fedavg"] if r["kind"] == "round"]
    assert sum(r["kept"] for r in rounds) > 0  # real training
    assert sum(r["failed"] for r in rounds) > 0  # and crashed devices
    assert any(r["kept"] for r in inline["persona"] if r["kind"] == "round")
    assert all(rows[-1]["cloud_device"] == "cpu" for rows in inline.values())  # the default


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(
    ("engine", "methods"),
    # Flower starts its runtime per run (~30 s here): two methods, one of each protocol.
    [("ray", METHODS), ("flower", ["fedavg", "persona"])],
    ids=["ray", "flower"],
)
def test_every_engine_gives_the_inline_metrics(inline, tmp_path, engine, methods):
    from conftest import TINY

    assert _metrics(dict(TINY), engine, tmp_path, methods) == {m: inline[m] for m in methods}
