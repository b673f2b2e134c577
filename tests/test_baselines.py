"""Baselines that train on devices: FedProx's proximal term, fine-tuning without upload."""

from __future__ import annotations

import pytest
import torch

from basemodel.architecture import build_model
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.reader import read_rows
from simulator.run.runner import run_plan
from simulator.scenario.schema import Scenario
from strategies.local_training import LocalTrainingParams, train_locally


def _setup():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(32, 1, 8, 8)
    y = torch.randint(0, 10, (32,))
    return model, start, x, y


def _distance(model, start) -> float:
    return float(sum((p - start[n]).pow(2).sum() for n, p in model.named_parameters()).sqrt())


def test_the_proximal_term_changes_the_update_and_keeps_it_near_the_anchor():
    params = LocalTrainingParams(local_epochs=5, lr=0.5, batch_size=8)
    plain, start, x, y = _setup()
    train_locally(plain, x, y, params, seed=1)
    proximal, _, _, _ = _setup()
    train_locally(proximal, x, y, params, seed=1, proximal_mu=1.0, anchor=start)
    assert not torch.equal(
        plain.state_dict()["head.layers.1.weight"], proximal.state_dict()["head.layers.1.weight"]
    )
    assert _distance(proximal, start) < _distance(plain, start)
    zero, _, _, _ = _setup()
    train_locally(zero, x, y, params, seed=1, proximal_mu=0.0, anchor=start)
    assert torch.equal(
        zero.state_dict()["head.layers.1.weight"], plain.state_dict()["head.layers.1.weight"]
    )  # mu = 0 is FedAvg


def _run(tmp_path, document, methods):
    document = dict(document, methods=[{"name": m} for m in methods])
    plan = RunPlan(Scenario.model_validate(document), list(methods), [0], tmp_path)
    folder = run_plan(plan, show_progress=False)
    return {
        m: [r for r in read_rows(metrics_path(folder, m, 0)) if r["kind"] == "round"]
        for m in methods
    }


def test_finetune_never_uploads_and_trains_on_the_device(tmp_path, tiny_document):
    rounds = _run(tmp_path, tiny_document, ["finetune"])["finetune"]
    assert sum(r["kept"] for r in rounds) > 0
    assert all(r["bytes_up"] == 0 and r["bytes_down"] == 0 for r in rounds)
    assert sum(r["backward_passes"] for r in rounds) > 0


def test_fedprox_runs_on_the_fleet_and_moves_full_models(tmp_path, tiny_document):
    rounds = _run(tmp_path, tiny_document, ["fedprox", "fedavg"])
    for method in ("fedprox", "fedavg"):
        assert sum(r["kept"] for r in rounds[method]) > 0
    moved = [sum(r["bytes_up"] for r in rounds[m]) for m in ("fedprox", "fedavg")]
    assert moved[0] > 0 and abs(moved[0] - moved[1]) / moved[1] < 0.05


def test_fedavg_ft_runs_its_own_fine_tuned_model(tmp_path, tiny_document):
    """Same traffic as FedAvg; different models on the devices, so different accuracy."""
    training = {"lr": 0.1, "local_epochs": 3}  # large enough steps to change predictions
    document = dict(
        tiny_document,
        methods=[{"name": "fedavg", "params": training}, {"name": "fedavg-ft", "params": training}],
    )
    plan = RunPlan(Scenario.model_validate(document), ["fedavg", "fedavg-ft"], [0], tmp_path)
    folder = run_plan(plan, show_progress=False)
    rows = {m: read_rows(metrics_path(folder, m, 0)) for m in ("fedavg", "fedavg-ft")}
    rounds = {m: [r for r in rows[m] if r["kind"] == "round"] for m in rows}
    assert [r["bytes_up"] for r in rounds["fedavg"]] == [r["bytes_up"] for r in rounds["fedavg-ft"]]
    evals = {m: [e["accs"] for e in rows[m] if e["kind"] == "eval"] for m in rows}
    assert evals["fedavg"][0] == evals["fedavg-ft"][0]  # before any round: the same model
    assert evals["fedavg"][1:] != evals["fedavg-ft"][1:]


def test_ifca_device_picks_the_cluster_with_the_lowest_loss():
    from flwr.app import ArrayRecord, RecordDict

    from strategies import wire
    from strategies.base import DeviceStep, DeviceView
    from strategies.device_kit import ArrayCache, DeviceKit
    from strategies.ifca import IFCADevice, IFCAParams, cluster_key

    torch.manual_seed(0)
    data_model = build_model("mlp", (1, 8, 8), 10)
    x = torch.rand(40, 1, 8, 8)
    params = LocalTrainingParams(local_epochs=30, lr=0.5, batch_size=40)
    y = torch.randint(0, 10, (40,))
    train_locally(data_model, x, y, params, seed=0)  # a model that fits these samples
    good = {k: v.clone() for k, v in data_model.state_dict().items()}
    bad = {k: v + torch.randn_like(v) for k, v in good.items()}  # a much worse one
    bundle = ArrayRecord(
        {cluster_key(k, n): v for k, model in enumerate([bad, good, bad]) for n, v in model.items()}
    )
    kit = DeviceKit(build_model("mlp", (1, 8, 8), 10), good, 1.0, 1.0)
    (outcome,) = IFCADevice().train(
        [
            DeviceStep(
                RecordDict({wire.ARRAYS: bundle}),
                x,
                (x, y),
                DeviceView(None, RecordDict()),
                kit,
                IFCAParams(clusters=3, local_epochs=1),
                seed=0,
                arrays=ArrayCache(),
            )
        ]
    )
    assert int(outcome.reply[wire.METRICS]["cluster"]) == 1
    assert all(torch.equal(outcome.held[k], good[k]) for k in good)


def test_ifca_cloud_averages_within_clusters(tmp_path, tiny_document):
    rounds = _run(tmp_path, tiny_document, ["ifca"])["ifca"]
    assert sum(r["kept"] for r in rounds) > 0
    members = [
        sum(v for k, v in r["train_metrics"].items() if k.startswith("members-")) for r in rounds
    ]
    assert sum(members) > 0 and all(m <= r["kept"] for m, r in zip(members, rounds, strict=True))


def test_pfedhn_server_update_follows_the_delta():
    from strategies.pfedhn import HeadHypernetwork, PFedHNParams, PFedHNStrategy

    model = build_model("mlp", (1, 8, 8), 10)
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    network = HeadHypernetwork(head, devices=4, params=PFedHNParams(), seed=0)
    with torch.no_grad():
        start = network(2)
        assert all(torch.allclose(start[k], head[k], atol=0.05) for k in head)  # starts near
    strategy = PFedHNStrategy(lambda r: [], lambda n: n, network, server_lr=0.05)
    delta = {k: 0.1 * torch.randn(v.shape) for k, v in head.items()}
    other_before = {k: v.detach().clone() for k, v in network(3).items()}
    strategy.update(2, delta)
    with torch.no_grad():
        moved = {k: network(2)[k] - start[k] for k in head}
    along = sum(float((moved[k] * delta[k]).sum()) for k in head)
    assert along > 0  # the generated head moved toward the device's trained head
    moved_other = sum(float((network(3)[k] - other_before[k]).abs().sum()) for k in head)
    moved_self = sum(float(m.abs().sum()) for m in moved.values())
    assert moved_other < moved_self  # mostly this device's head (shared layers move a little)


def test_pfedhn_runs_on_the_fleet_and_moves_only_the_head(tmp_path, tiny_document):
    rounds = {m: r for m, r in _run(tmp_path, tiny_document, ["pfedhn", "fedavg"]).items()}
    assert sum(r["kept"] for r in rounds["pfedhn"]) > 0
    assert sum(r["train_metrics"].get("updated", 0) for r in rounds["pfedhn"]) > 0
    head_bytes = sum(r["bytes_up"] for r in rounds["pfedhn"]) / sum(
        r["replied"] for r in rounds["pfedhn"]
    )
    full_bytes = sum(r["bytes_up"] for r in rounds["fedavg"]) / sum(
        r["replied"] for r in rounds["fedavg"]
    )
    assert head_bytes < full_bytes


def test_fedavg_head_moves_only_the_head(tmp_path, tiny_document):
    rows = _run(tmp_path, tiny_document, ["fedavg", "fedavg-head"])
    head = rows["fedavg-head"]
    assert sum(r["kept"] for r in head) > 0 and sum(r["backward_passes"] for r in head) > 0
    per_round = {
        m: sum(r["bytes_up"] for r in rs) / sum(r["replied"] for r in rs) for m, rs in rows.items()
    }
    # the digits model: 64x64 backbone layer plus a 64-64-10 head; the head is under half
    assert per_round["fedavg-head"] < 0.6 * per_round["fedavg"]
    flops = {
        m: sum(r["flops"] for r in rs) / sum(r["replied"] for r in rs) for m, rs in rows.items()
    }
    assert flops["fedavg-head"] < flops["fedavg"]  # the frozen backbone runs forward only


def test_finetune_can_train_the_head_alone(tmp_path, tiny_document):
    document = dict(tiny_document, methods=[{"name": "finetune", "params": {"train": "head"}}])
    plan = RunPlan(Scenario.model_validate(document), ["finetune"], [0], tmp_path)
    folder = run_plan(plan, show_progress=False)
    rounds = [r for r in read_rows(metrics_path(folder, "finetune", 0)) if r["kind"] == "round"]
    assert sum(r["backward_passes"] for r in rounds) > 0


def test_cloud_retrain_bills_the_download_once_per_device(tmp_path, tiny_document):
    tiny_document["pretrain"]["family"] = [{"kind": "rotation", "severity": 45}]
    tiny_document["rounds"]["deadline_s"] = 1e6  # every delivery arrives
    rounds = _run(tmp_path, tiny_document, ["cloud-retrain"])["cloud-retrain"]
    delivered = sum(r["train_metrics"]["delivered"] for r in rounds)
    assert delivered == rounds[-1]["train_metrics"]["holders"] > 0  # nobody got it twice
    assert all(r["bytes_up"] == 0 and r["backward_passes"] == 0 for r in rounds)
    assert sum(r["bytes_down"] for r in rounds) > 10_000 * delivered  # a whole model each


def test_label_free_rivals_send_nothing_and_run_backprop_free(tmp_path, tiny_document):
    methods = ["em-prior", "t3a", "lame"]
    document = dict(tiny_document, methods=[{"name": m} for m in methods])
    plan = RunPlan(Scenario.model_validate(document), methods, [0], tmp_path)
    folder = run_plan(plan, show_progress=False)
    for method in methods:
        rows = read_rows(metrics_path(folder, method, 0))
        assert all(r["sampled"] == 0 for r in rows if r["kind"] == "round"), method
        assert any(r["kind"] == "eval" and r["accs"] for r in rows), method


def test_label_free_rivals_change_the_factory_models_predictions():
    """On a skewed batch of real digits, each rival's logits differ from the model's."""
    from flwr.app import RecordDict
    from sklearn.datasets import load_digits

    from basemodel.pretraining import PretrainConfig, train_supervised
    from strategies.base import DeviceView, ServeStep
    from strategies.device_kit import DeviceKit
    from strategies.registry import get_method

    bunch = load_digits()
    images = torch.from_numpy(bunch.images / 16.0).float().unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    model = build_model("mlp", (1, 8, 8), 10)
    train_supervised(model, images[:1000], labels[:1000], PretrainConfig(epochs=3), seed=0)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    skewed = torch.cat([images[1000:1100][labels[1000:1100] == 3], images[1100:1110]])
    kit = DeviceKit(model, weights, 1.0, 1.0)
    with torch.inference_mode():
        plain = kit.load()(skewed)
        for name in ("em-prior", "t3a", "lame"):
            method = get_method(name)
            step = ServeStep(DeviceView(None, RecordDict()), skewed, kit, method.params())
            (logits,) = method.device.predict([step])
            assert logits.shape == plain.shape
            assert not torch.allclose(logits.softmax(dim=1), plain.softmax(dim=1)), name


def test_the_scratch_model_loads_factory_then_held_weights_like_load_state_dict():
    from strategies.device_kit import DeviceKit

    torch.manual_seed(0)
    factory = {k: v.clone() for k, v in build_model("mlp", (1, 8, 8), 10).state_dict().items()}
    held = {k: torch.randn_like(v) for k, v in factory.items() if k.startswith("head.")}
    held["not.a.parameter"] = torch.zeros(3)  # ignored, as load_state_dict(strict=False) does
    kit = DeviceKit(build_model("mlp", (1, 8, 8), 10), factory, 1.0, 1.0)
    with torch.no_grad():  # a method trains the scratch model...
        kit.load(held).head.layers[0].weight.mul_(0)
    loaded = kit.load(held).state_dict()  # ...and the next device gets clean weights again
    expected = build_model("mlp", (1, 8, 8), 10)
    expected.load_state_dict(factory)
    expected.load_state_dict({k: v for k, v in held.items() if k in factory}, strict=False)
    assert all(torch.equal(loaded[k], v) for k, v in expected.state_dict().items())
    wrong = {"head.layers.0.weight": torch.zeros(2, 2)}
    with pytest.raises(RuntimeError, match="head.layers.0.weight"):
        kit.load(wrong)
    with pytest.raises(ValueError, match="missing"):
        DeviceKit(build_model("mlp", (1, 8, 8), 10), held, 1.0, 1.0)
