"""The adapter learns: its edits lower the query loss on a context it never trained on."""

from __future__ import annotations

import torch

from basemodel.architecture import build_model
from basemodel.pretraining import PretrainConfig, train_supervised
from persona.adapter import AdapterConfig, PersonaAdapter
from persona.pretraining import head_weights
from persona.training import (
    EpisodeSampler,
    PersonaTrainConfig,
    context_features,
    episode_loss,
    head_as_batch,
    train_adapter,
)
from simulator.world.corruptions import rotate
from simulator.world.datasets import load_dataset


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
    losses = train_adapter(adapter, base, train, config)
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
                data.images[:300],
                data.labels[:300],
                10,
                contexts,
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
