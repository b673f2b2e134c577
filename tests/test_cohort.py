"""The batched cohort path equals the per-device path on the CPU, to float rounding."""

from __future__ import annotations

import pytest
import torch

from basemodel.architecture import build_model
from strategies.cohort import train_cohort
from strategies.cohort_serving import heads_cohort, predict_cohort
from strategies.local_training import LocalTrainingParams, train_locally

CPU = torch.device("cpu")
TOLERANCE = 1e-5  # float32 rounding through a few SGD steps (summation order differs)


def _devices(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    sizes = [32, 20, 0, 7, 32][:count]  # unequal windows, one without a labeled sample
    return [
        (
            torch.rand(n, 1, 8, 8, generator=generator),
            torch.randint(0, 10, (n,), generator=generator),
        )
        for n in sizes
    ]


def _per_device(model, start, x, y, params, seed, mu):
    model.load_state_dict(start)
    anchor = {k: v.clone() for k, v in start.items()} if mu > 0 else None
    loss, passes = train_locally(model, x, y, params, seed, mu, anchor)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, loss, passes


def test_local_training_of_a_cohort_is_each_devices_own_training():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    params = LocalTrainingParams(local_epochs=2, lr=0.05, batch_size=16)
    data = _devices(5)
    seeds = [11, 12, 13, 14, 15]
    starts = []
    for i in range(5):  # devices start from different models (as fedavg-ft's may)
        torch.manual_seed(100 + i)
        starts.append({k: v + 0.01 * torch.randn_like(v) for k, v in model.state_dict().items()})
    for mu in (0.0, 0.1):  # FedAvg, and FedProx's proximal term
        batched = train_cohort(model, starts, data, params, seeds, CPU, mu)
        for i, ((x, y), seed) in enumerate(zip(data, seeds, strict=True)):
            weights, loss, passes = _per_device(model, starts[i], x, y, params, seed, mu)
            got, got_loss, got_passes = batched[i]
            assert got_passes == passes and abs(got_loss - loss) < TOLERANCE
            assert all(torch.allclose(got[k], weights[k], atol=TOLERANCE) for k in got), (i, mu)
        assert batched[2][2] == 0 and all(
            torch.equal(batched[2][0][k], starts[2][k]) for k in starts[2]
        )


def test_a_cohort_larger_than_a_chunk_is_trained_chunk_by_chunk_the_same(monkeypatch):
    import strategies.cohort as cohort

    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    params = LocalTrainingParams(local_epochs=1, lr=0.05, batch_size=16)
    data, start = _devices(5), dict(model.state_dict())
    whole = train_cohort(model, [start] * 5, data, params, [1, 2, 3, 4, 5], CPU)
    monkeypatch.setattr(cohort, "CHUNK", 2)
    chunked = train_cohort(model, [start] * 5, data, params, [1, 2, 3, 4, 5], CPU)
    for (a, _, _), (b, _, _) in zip(whole, chunked, strict=True):
        assert all(torch.allclose(a[k], b[k], atol=TOLERANCE) for k in a)


def test_a_cohorts_predictions_are_each_devices_own():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10).eval()
    shared = dict(model.state_dict())
    own = {k: v + 0.1 for k, v in shared.items()}
    weights = [shared, shared, own, {k: v - 0.1 for k, v in shared.items()}]
    inputs = [torch.rand(6, 1, 8, 8) for _ in weights]
    with torch.inference_mode():
        batched = predict_cohort(model, weights, inputs, CPU)
        for held, x, got in zip(weights, inputs, batched, strict=True):
            model.load_state_dict(held)
            assert torch.allclose(got, model(x), atol=TOLERANCE)


@pytest.mark.parametrize(
    ("backbone", "shape", "classes", "options"),
    [
        ("conv28", (1, 28, 28), 10, None),  # channels-last inside: no vmap rule
        ("gru4rec", (11,), 2, {"items": 50}),  # fused GRU: none
    ],
)
def test_models_vmap_cannot_batch_are_served_one_by_one_with_the_same_logits(
    backbone, shape, classes, options
):
    torch.manual_seed(0)
    model = build_model(backbone, shape, classes, options=options).eval()
    base = dict(model.state_dict())
    weights = [{k: v + 0.01 * i for k, v in base.items()} for i in range(3)]
    if backbone == "gru4rec":
        inputs = [torch.randint(1, 50, (4, *shape)).float() for _ in weights]
    else:
        inputs = [torch.rand(4, *shape) for _ in weights]
    with torch.inference_mode():
        batched = predict_cohort(model, weights, inputs, CPU)
        for held, x, got in zip(weights, inputs, batched, strict=True):
            model.load_state_dict(held)
            assert torch.allclose(got, model(x), atol=TOLERANCE)


def test_each_devices_own_head_serves_its_features():
    torch.manual_seed(0)
    heads = [
        [(torch.randn(5, 4), torch.randn(5)), (torch.randn(3, 5), torch.randn(3))] for _ in range(3)
    ]
    features = [torch.randn(7, 4) for _ in heads]
    for f, head, got in zip(features, heads, heads_cohort(features, heads, CPU), strict=True):
        expected = torch.relu(f @ head[0][0].T + head[0][1]) @ head[1][0].T + head[1][1]
        assert torch.allclose(got, expected, atol=TOLERANCE)


def test_a_run_with_batched_cohorts_makes_the_per_device_runs_decisions(tmp_path):
    """Same devices, same kept/late/failed, same bytes; accuracies to float rounding."""
    import json

    from conftest import TINY, write_yaml

    from simulator.cli import main
    from simulator.run.reader import load_run

    document = json.loads(json.dumps(TINY))
    document["methods"] = [
        {"name": "static"},
        {"name": "fedavg", "params": {"local_epochs": 1}},
        {"name": "fedavg-ft", "params": {"local_epochs": 1}},
        {"name": "fedprox", "params": {"local_epochs": 1, "proximal_mu": 0.1}},
        {"name": "persona"},
    ]
    scenario = write_yaml(tmp_path / "tiny.yaml", document)
    runs = {}
    for batched in ("false", "true"):
        out = tmp_path / batched
        args = [str(scenario), "--out", str(out), "--no-progress"]
        assert main([*args, "--set", f"engine.batch_devices={batched}"]) == 0
        (folder,) = (out / "tiny-test").iterdir()
        runs[batched] = load_run(folder)
    keys = ("sampled", "kept", "late", "failed", "bytes_up", "bytes_down", "flops")
    for method in ("static", "fedavg", "fedavg-ft", "fedprox", "persona"):
        (plain,), (batched,) = runs["false"].of(method), runs["true"].of(method)
        assert [{k: r[k] for k in keys} for r in plain.rounds] == [
            {k: r[k] for k in keys} for r in batched.rounds
        ], method
        for a, b in zip(plain.evals, batched.evals, strict=True):
            assert a["devices"] == b["devices"]
            # At most one of a device's 16 test samples may flip on float rounding (none did
            # when this was written).
            assert max(abs(x - y) for x, y in zip(a["accs"], b["accs"], strict=True)) <= 1 / 16
