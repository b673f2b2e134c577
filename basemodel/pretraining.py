"""Cloud pretraining of the shared starting model, cached on disk.

Every method (Persona and the baselines) starts from this model, so a
comparison is fair. Pretraining is deterministic for a seed and is cached
under a key of everything it depends on, so a sweep does not retrain.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from basemodel.cache import cache_key, default_cache_dir, load_entry, save_atomically
from basemodel.progress import training_steps


@dataclass(frozen=True)
class PretrainConfig:
    """Supervised pretraining: ``epochs`` of Adam at ``lr`` in minibatches of ``batch_size``."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3


def train_supervised(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: PretrainConfig,
    seed: int,
    label: str = "training",
) -> nn.Module:
    """Plain minibatch Adam training (cloud side: backprop is allowed here)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    batches = -(-len(labels) // config.batch_size)
    with training_steps(label, config.epochs * batches) as advance:
        for _ in range(config.epochs):
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimizer.zero_grad()
                loss_fn(model(images[batch]), labels[batch]).backward()
                optimizer.step()
                advance(1)
    model.eval()
    return model


def fits(model: nn.Module, state: Any) -> bool:
    """Whether ``state`` holds exactly ``model``'s tensors, names, shapes and dtypes.

    Checked before anything is loaded: ``load_state_dict`` copies the matching
    tensors before it raises on a mismatch, which would leave a half-loaded
    model to be trained on and saved back under the valid key.
    """
    own = model.state_dict()
    return (
        isinstance(state, dict)
        and state.keys() == own.keys()
        and all(
            isinstance(state[k], torch.Tensor)
            and state[k].shape == own[k].shape
            and state[k].dtype == own[k].dtype
            for k in own
        )
    )


def pretrained_state(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: PretrainConfig,
    seed: int,
    description: dict,
    cache_dir: Path | None = None,
    label: str = "training",
) -> tuple[dict[str, torch.Tensor], Path]:
    """Weights after pretraining, from the cache when present; returns them and the file."""
    cache_dir = cache_dir or default_cache_dir()
    key = cache_key({**description, "config": asdict(config), "seed": seed})
    path = cache_dir / f"pretrained-{key}.pt"
    state = load_entry(path)
    if state is not None and fits(model, state):
        model.load_state_dict(state)
        return state, path
    if state is not None:
        logging.getLogger("persona_fleet").warning(
            "cache entry %s holds another model's weights; rebuilding it", path
        )
    train_supervised(model, images, labels, config, seed, label)  # from the untouched model
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, save_atomically(state, path)
