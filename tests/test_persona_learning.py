"""The adapter learns: its edits lower the query loss on a context it never trained on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from basemodel.architecture import build_model
from basemodel.pretraining import PretrainConfig, train_supervised
from persona.adapter import AdapterConfig, PersonaAdapter
from persona.episodes import EpisodeSampler, context_features, split_images
from persona.pretraining import head_weights
from persona.training import (
    HeldOutEpisodes,
    PersonaTrainConfig,
    build_prototypes,
    episode_loss,
    head_as_batch,
    train_adapter,
)
from simulator.catalog.corruptions import rotate
from simulator.catalog.datasets import load_dataset


def test_edits_reduce_query_loss_on_a_held_out_context():
    torch.manual_seed(0)
    data = load_dataset("digits")
    images, labels = data.images[:1200], data.labels[:1200]
    model = build_model("mlp", data.input_shape, data.num_classes)
    train_supervised(model, images, labels, PretrainConfig(epochs=15), seed=0)
    angles = [0, 20, 40, 70, 90]  # 55 degrees is held out
    contexts = [lambda x, a=a: rotate(x, a) for a in angles + [55]]
    features = context_features(model.backbone, images, contexts)
    config = PersonaTrainConfig(
        steps=400, episodes_per_step=16, window=32, query=32, dirichlet_alpha=0.3
    )
    train = EpisodeSampler(features, labels, 10, 0.3, seed=1, contexts=list(range(len(angles))))
    held_out = EpisodeSampler(features, labels, 10, 0.3, seed=2, contexts=[len(angles)])
    adapter = PersonaAdapter(AdapterConfig(feature_dim=64, head_widths=(64, 64, 10), clip=0.1))
    base = head_weights(model.head)
    losses, _ = train_adapter(adapter, base, train, config)
    assert sum(losses[-50:]) / 50 < sum(losses[:50]) / 50  # it learned on its contexts

    support, qx, qy = held_out.sample(64, 32, 32)
    bases = head_as_batch(base, 64)
    proto = torch.zeros(64, dtype=torch.long)
    with torch.no_grad():
        edited = float(episode_loss(adapter, bases, proto, support, qx, qy))
        zero = [(torch.zeros_like(w), torch.zeros_like(b)) for w, b in bases]
        from persona.adapter import batched_head_forward, edited_heads

        logits = batched_head_forward(qx, edited_heads(bases, zero))
        unedited = float(torch.nn.functional.cross_entropy(logits.reshape(-1, 10), qy.reshape(-1)))
    assert edited < 0.9 * unedited, (edited, unedited)


def test_pretraining_gives_the_same_weights_in_any_thread(tmp_path):
    """A ServerApp runs in its own thread; with fixed threads its pretraining is identical."""
    import threading

    from basemodel.resources import LabeledShare
    from basemodel.threads import fixed_threads
    from persona.pretraining import pretrain_persona

    data = load_dataset("digits")
    model = build_model("mlp", data.input_shape, data.num_classes)
    config = PersonaTrainConfig(steps=30, generator_steps=10, prototype_episodes=32, prototypes=2)
    adapter_config = AdapterConfig(feature_dim=64, head_widths=(64, 64, 10))
    contexts = [lambda x: x, lambda x: rotate(x, 30)]

    def train(folder):
        with fixed_threads():
            return pretrain_persona(
                model.backbone,
                model.head,
                LabeledShare(data.images[:300], data.labels[:300], contexts, ["clean", "r30"]),
                10,
                adapter_config,
                config,
                0,
                {"test": 1},
                cache_dir=folder,
            )

    here = train(tmp_path / "main")
    results = {}
    worker = threading.Thread(target=lambda: results.update(state=train(tmp_path / "thread")))
    worker.start()
    worker.join()
    there = results["state"]
    for key, value in here.adapter.state_dict().items():
        assert torch.equal(value, there.adapter.state_dict()[key]), key


def _digits_setup(steps: int, **config):
    data = load_dataset("digits")
    images, labels = data.images[:600], data.labels[:600]
    torch.manual_seed(0)
    model = build_model("mlp", data.input_shape, data.num_classes)
    train_supervised(model, images, labels, PretrainConfig(epochs=5), seed=0)
    contexts = [lambda x: x, lambda x: rotate(x, 40)]
    features = context_features(model.backbone, images, contexts)
    train_config = PersonaTrainConfig(steps=steps, window=16, query=16, **config)
    adapter = PersonaAdapter(AdapterConfig(feature_dim=64, head_widths=(64, 64, 10), clip=0.1))
    return model, features, labels, train_config, adapter


def test_held_out_images_never_enter_training_episodes():
    trained, held = split_images(600, 0.2, seed=3)
    assert len(held) == 120 and not set(trained) & set(held)
    assert len(trained) + len(held) == 600
    _, features, labels, _, _ = _digits_setup(0)
    sampler = EpisodeSampler(features, labels, 10, 0.5, seed=0, images=held)
    drawn = set(np.concatenate([sampler._draw(np.full(10, 0.1), 50) for _ in range(20)]).tolist())
    assert drawn <= set(held.tolist())


def test_early_stopping_keeps_the_best_scored_adapter():
    model, features, labels, config, adapter = _digits_setup(
        400, eval_every=20, patience=2, eval_episodes=64, lr=3e-2
    )
    trained, held = split_images(len(labels), 0.3, seed=0)
    sampler = EpisodeSampler(features, labels, 10, 0.5, seed=0, images=trained)
    heldout = HeldOutEpisodes.draw(
        EpisodeSampler(features, labels, 10, 0.5, 1, images=held), config
    )
    _, diagnostics = train_adapter(adapter, head_weights(model.head), sampler, config, heldout)
    assert diagnostics is not None
    best = min(loss for _, _, loss in diagnostics.curve)
    assert diagnostics.heldout_loss == pytest.approx(best, rel=1e-5)
    assert diagnostics.best_step == next(s for s, _, loss in diagnostics.curve if loss == best)
    if diagnostics.stopped_at < 400:  # stopped early: exactly `patience` scores after the best
        assert [s for s, _, _ in diagnostics.curve][-1] == diagnostics.best_step + 2 * 20
    assert set(diagnostics.per_context) == {0, 1}


def test_generated_prototype_heads_are_the_base_plus_a_clipped_edit():
    model, features, labels, config, adapter = _digits_setup(
        30, prototypes=3, prototype_episodes=64, generator_steps=0
    )
    sampler = EpisodeSampler(features, labels, 10, 0.5, seed=0)
    base = head_weights(model.head)
    train_adapter(adapter, base, sampler, config)
    bank, _ = build_prototypes(adapter, base, sampler, config, seed=0)
    for k in range(len(bank)):
        for (w, b), (w0, b0) in zip(bank.head(k), base, strict=True):
            assert (w - w0).abs().max() <= 0.1 + 1e-6 and (b - b0).abs().max() <= 0.1 + 1e-6
    codes = bank.centroids.view(len(bank), 2, -1)
    expected = adapter.generators(codes, torch.zeros(len(bank), dtype=torch.long))
    assert torch.allclose(bank.heads[0][0][1] - base[0][0], expected[0][0][1], atol=1e-6)
    finetuned = PersonaTrainConfig(**{**config.__dict__, "prototype_heads": "finetuned"})
    other, _ = build_prototypes(adapter, base, sampler, finetuned, seed=0)
    assert not torch.allclose(other.heads[0][0], bank.heads[0][0])


def test_spawn_distance_fires_on_a_far_unseen_context_and_not_on_trained_ones():
    """Calibrated spawn: windows from trained contexts never spawn; an upside-down fleet does."""
    from persona.cloud import DeployRules, PersonaCloud
    from persona.novelty import calibrate_novelty
    from persona.prototypes import RefineConfig

    torch.manual_seed(0)
    data = load_dataset("digits")
    images, labels = data.images[:1200], data.labels[:1200]
    model = build_model("mlp", data.input_shape, data.num_classes)
    train_supervised(model, images, labels, PretrainConfig(epochs=15), seed=0)
    trained = [lambda x: x, lambda x: rotate(x, 20)]
    far = [lambda x: 1.0 - torch.flip(x, dims=[-2])]  # upside down and inverted: never trained
    features = context_features(model.backbone, images, trained + far)
    config = PersonaTrainConfig(steps=200, generator_steps=20, prototype_episodes=128, prototypes=2)
    sampler = EpisodeSampler(features, labels, 10, 0.5, seed=1, contexts=[0, 1])
    adapter = PersonaAdapter(AdapterConfig(feature_dim=64, head_widths=(64, 64, 10), clip=0.1))
    train_adapter(adapter, head_weights(model.head), sampler, config)
    bank, merge = build_prototypes(adapter, head_weights(model.head), sampler, config, 0)
    novelty = calibrate_novelty(sampler, config.window, config.spawn_factor)
    refine = RefineConfig(enabled=True, merge_distance=merge)
    cloud = PersonaCloud(adapter, bank, refine, DeployRules(), novelty)

    fresh = EpisodeSampler(features, labels, 10, 0.5, seed=7, contexts=[0, 1])
    support, _, _ = fresh.sample(64, config.window, config.query)
    _, report = cloud.respond(support, round_index=1)
    assert report.spawned == 0  # sampling noise of known contexts stays inside

    unseen = EpisodeSampler(features, labels, 10, 0.5, seed=8, contexts=[2])
    support, _, _ = unseen.sample(16, config.window, config.query)
    _, report = cloud.respond(support, round_index=2)
    assert report.spawned == 1  # one new context, one prototype
