"""The device model as a setting: width and head follow into every method's cost figures."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import TINY, quick_params, write_yaml

from basemodel.architecture import build_model, parameter_count, scaled_widths
from basemodel.flops import flops_per_sample
from simulator.cli import main
from strategies.registry import method_names


def test_width_one_is_the_shipped_model_and_smaller_widths_shrink_it():
    torch.manual_seed(0)
    shipped = build_model("conv28", (1, 28, 28), 10)
    layers = shipped.backbone.layers
    assert (layers[0].out_channels, layers[3].out_channels, layers[7].out_features) == (16, 32, 64)
    torch.manual_seed(0)
    same = build_model("conv28", (1, 28, 28), 10, width=1.0)
    assert all(
        torch.equal(a, b) for a, b in zip(shipped.parameters(), same.parameters(), strict=True)
    )
    quarter = build_model("conv28", (1, 28, 28), 10, width=0.25, head_hidden=[16, 16])
    assert quarter.head.widths() == [16, 16, 16, 10]
    assert scaled_widths("conv28", 0.25) == {"channels": (4, 8), "feature_dim": 16}
    assert parameter_count(quarter) < parameter_count(shipped) / 5
    assert flops_per_sample(quarter, (1, 28, 28)) < flops_per_sample(shipped, (1, 28, 28)) / 5
    assert scaled_widths("sasrec", 0.1)["dim"] % 2 == 0  # its two attention heads split it


def _run(tmp_path, width: float) -> dict[str, dict]:
    document = copy.deepcopy(TINY)
    document["model"] = {"width": width}
    document["pretrain"]["family"] = [{"kind": "rotation", "severity": 45}]
    document["methods"] = [{"name": m, "params": quick_params(m)} for m in method_names()]
    path = write_yaml(tmp_path / f"w{width}.yaml", document)
    out = tmp_path / f"out{width}"
    assert main([str(path), "--out", str(out), "--no-progress"]) == 0
    (folder,) = (out / document["name"]).iterdir()
    return {r["method"]: r for r in json.loads((folder / "summary.json").read_text())}


@pytest.mark.slow
def test_every_method_runs_a_quarter_width_model_and_its_costs_fall_with_it(tmp_path):
    small, shipped = _run(tmp_path, 0.25), _run(tmp_path, 1.0)
    assert set(small) == set(method_names())
    for method, row in small.items():
        assert row["complete"], method
        assert row["model_parameters"] < shipped[method]["model_parameters"]
        assert row["model_flops_per_sample"] < shipped[method]["model_flops_per_sample"]
        if shipped[method]["device_flops_per_round"] > 0:
            assert row["device_flops_per_round"] < shipped[method]["device_flops_per_round"], method
