"""Injected device faults are survived: recorded with their cause, never aggregated."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PERSONA_QUICK

from simulator.engine.faults import draw_fault
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.schema import Faults, Scenario


def _run(document, faults: dict, engine: str, out, methods=("fedavg", "persona")):
    document = dict(document, engine={"kind": engine, "num_cpus": 2})
    document["fleet"] = dict(document["fleet"], faults=faults)
    document["methods"] = [{"name": "fedavg"}, {"name": "persona", "params": PERSONA_QUICK}]
    plan = RunPlan(Scenario.model_validate(document), list(methods), [0], out)
    folder = run_plan(plan, show_progress=False)
    return {m: read_rows(metrics_path(folder, m, 0)) for m in methods}


def test_fault_draws_follow_their_probabilities():
    faults = Faults(hang=0.1, drop=0.2, malformed=0.3, nonfinite=0.1)
    draws = [draw_fault(faults, d, r, 0) for d in range(50) for r in range(40)]
    for kind, p in (("hang", 0.1), ("drop", 0.2), ("malformed", 0.3), ("nonfinite", 0.1)):
        assert abs(draws.count(kind) / len(draws) - p) < 0.03
    assert abs(draws.count(None) / len(draws) - 0.3) < 0.03


@pytest.mark.parametrize("kind", ["drop", "malformed", "nonfinite"])
def test_every_faulty_reply_is_a_failed_device_round(tmp_path, tiny_document, kind):
    rows = _run(tiny_document, {kind: 1.0}, "inline", tmp_path)
    for method, method_rows in rows.items():
        rounds = [r for r in method_rows if r["kind"] == "round"]
        assert len(rounds) == tiny_document["rounds"]["count"]  # the run went on
        assert all(r["kept"] == 0 for r in rounds), method
        causes = {c for r in rounds for c in r["failures"]}
        expected = {"drop": "injected fault", "malformed": "malformed", "nonfinite": "non-finite"}[
            kind
        ]
        injected = {c for c in causes if not c.startswith("simulated crash")}
        assert injected and all(expected in c for c in injected), (method, causes)
        assert all(np.isfinite(e["acc_mean"]) for e in method_rows if e["kind"] == "eval")


def test_hung_devices_are_late_not_failed(tmp_path, tiny_document):
    rows = _run(tiny_document, {"hang": 1.0}, "inline", tmp_path, methods=("fedavg",))
    rounds = [r for r in rows["fedavg"] if r["kind"] == "round"]
    assert all(r["kept"] == 0 and r["late"] > 0 for r in rounds)
    deadline = tiny_document["rounds"]["deadline_s"]
    assert all(r["duration_s"] == deadline for r in rounds)


def test_fedavg_never_averages_a_nonfinite_update(tmp_path, tiny_document):
    """Half the updates carry NaN: the global model, and every device's model, stay finite."""
    rows = _run(tiny_document, {"nonfinite": 0.5}, "inline", tmp_path, methods=("fedavg",))
    rounds = [r for r in rows["fedavg"] if r["kind"] == "round"]
    assert sum(r["kept"] for r in rounds) > 0 and sum(r["failed"] for r in rounds) > 0
    assert all(np.isfinite(r["train_metrics"].get("train-loss", 0.0)) for r in rounds)
    evals = [e for e in rows["fedavg"] if e["kind"] == "eval"]
    assert evals[-1]["acc_mean"] > 0.05  # a NaN model would predict one class, or nothing


@pytest.mark.slow
@pytest.mark.ray
def test_faults_are_handled_the_same_on_ray(tmp_path, tiny_document):
    faults = {"hang": 0.1, "drop": 0.1, "malformed": 0.1, "nonfinite": 0.1}
    inline = _run(tiny_document, faults, "inline", tmp_path / "inline")
    on_ray = _run(tiny_document, faults, "ray", tmp_path / "ray")

    def stable(rows):
        return [{k: v for k, v in r.items() if "wall" not in k} for r in rows]

    for method in inline:
        causes = {c.split(":")[0] for r in inline[method] for c in r.get("failures", [])}
        assert len(causes) >= 2, causes
        assert stable(inline[method]) == stable(on_ray[method])
