"""Persona's cloud pretraining as one cached call.

``pretrain_persona`` runs the episodic adapter training and the prototype
construction of ``persona.training`` and saves the result under a key of
everything it depends on; a later call with the same inputs loads it
(tensors only, with ``weights_only``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from basemodel.architecture import HeadWeights
from basemodel.cache import cache_key, default_cache_dir, save_atomically
from basemodel.resources import Transform
from persona.adapter import AdapterConfig, PersonaAdapter
from persona.prototypes import PrototypeBank
from persona.training import (
    EpisodeSampler,
    PersonaTrainConfig,
    build_prototypes,
    context_features,
    expiry_distance,
    train_adapter,
)


@dataclass
class PersonaCloudState:
    """A trained adapter, its prototype bank and the refinement distances."""

    adapter: PersonaAdapter
    bank: PrototypeBank
    spawn_distance: float
    merge_distance: float
    expiry_distance: float
    final_loss: float
    cache_path: Path


def head_weights(head: nn.Module) -> HeadWeights:
    """The editable head's ``(W, b)`` per layer, detached."""
    return [(layer.weight.detach().clone(), layer.bias.detach().clone()) for layer in head.layers]


def pretrain_persona(
    backbone: nn.Module,
    head: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    contexts: list[Transform],
    adapter_config: AdapterConfig,
    train_config: PersonaTrainConfig,
    seed: int,
    description: dict,
    cache_dir: Path | None = None,
) -> PersonaCloudState:
    """Train (or load) the adapter and prototypes for the given base model and contexts."""
    cache_dir = cache_dir or default_cache_dir()
    key = cache_key(
        {
            **description,
            "adapter": asdict(adapter_config),
            "train": asdict(train_config),
            "seed": seed,
            "format": 3,
        }
    )
    path = cache_dir / f"persona-{key}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        bank = PrototypeBank.from_state(saved["bank"])
        adapter = PersonaAdapter(adapter_config, prototypes=len(bank))
        adapter.load_state_dict(saved["adapter"])
        return PersonaCloudState(
            adapter.eval(),
            bank,
            saved["spawn"],
            saved["merge"],
            saved["expiry"],
            saved["loss"],
            path,
        )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        features = context_features(backbone, images, contexts)
        sampler = EpisodeSampler(features, labels, num_classes, train_config.dirichlet_alpha, seed)
        adapter = PersonaAdapter(adapter_config)
        base = head_weights(head)
        losses = train_adapter(adapter, base, sampler, train_config)
        bank, spawn, merge = build_prototypes(adapter, base, sampler, train_config, seed)
        expiry = expiry_distance(sampler, train_config)
    final_loss = float(sum(losses[-50:]) / max(1, len(losses[-50:])))
    save_atomically(
        {
            "adapter": adapter.state_dict(),
            "bank": bank.state(),
            "spawn": spawn,
            "merge": merge,
            "expiry": expiry,
            "loss": final_loss,
        },
        path,
    )
    return PersonaCloudState(adapter.eval(), bank, spawn, merge, expiry, final_loss, path)
