"""Persona's cloud pretraining as one cached call.

``pretrain_persona`` runs the episodic adapter training and the prototype
construction of ``persona.training`` and saves the result under a key of
everything it depends on; a later call with the same inputs loads it
(tensors only, with ``weights_only``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from basemodel.architecture import HeadWeights
from basemodel.cache import cache_key, default_cache_dir, load_entry, save_atomically
from basemodel.resources import LabeledShare
from persona.adapter import AdapterConfig, PersonaAdapter
from persona.episodes import EpisodeSampler, context_features, split_groups, split_images
from persona.gate import EditGate, calibrate_gate
from persona.novelty import NoveltyDetector, calibrate_novelty
from persona.prototypes import PrototypeBank
from persona.training import (
    AdapterDiagnostics,
    HeldOutEpisodes,
    PersonaTrainConfig,
    build_prototypes,
    expiry_distance,
    summaries_of,
    train_adapter,
)


@dataclass
class PersonaCloudState:
    """A trained adapter, its prototype bank, the novelty test and the refinement distances."""

    adapter: PersonaAdapter
    bank: PrototypeBank
    novelty: NoveltyDetector
    merge_distance: float
    expiry_distance: float
    final_loss: float
    cache_path: Path
    diagnostics: AdapterDiagnostics | None = None
    gate: EditGate | None = None  # None without held-out episodes


def head_weights(head: nn.Module) -> HeadWeights:
    """The editable head's ``(W, b)`` per layer, detached."""
    return [(layer.weight.detach().clone(), layer.bias.detach().clone()) for layer in head.layers]


def pretrain_persona(
    backbone: nn.Module,
    head: nn.Module,
    share: LabeledShare,
    num_classes: int,
    adapter_config: AdapterConfig,
    train_config: PersonaTrainConfig,
    seed: int,
    description: dict,
    cache_dir: Path | None = None,
) -> PersonaCloudState:
    """Train (or load) the adapter and prototypes for the base model on the family ``share``.

    The share's contexts are the family the cloud knows; where it has
    ``groups`` (users of a click stream), episodes and the held-out split are
    per user.
    """
    cache_dir = cache_dir or default_cache_dir()
    key = cache_key(
        {
            **description,
            "adapter": asdict(adapter_config),
            "train": asdict(train_config),
            "seed": seed,
            "format": 8,  # 8: the edit gate (7: two-pass window spread)
        }
    )
    path = cache_dir / f"persona-{key}.pt"
    saved = load_entry(path, ("adapter", "bank", "novelty", "merge", "expiry", "loss"))
    cached = _from_cache(saved, adapter_config, path) if saved is not None else None
    if cached is not None and _bank_fits(cached.bank, head):
        return cached
    if saved is not None:
        logging.getLogger("persona_fleet").warning(
            "cache entry %s does not fit this model's head; rebuilding it", path
        )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        features = context_features(backbone, share.images, share.contexts)
        alpha, fraction = train_config.dirichlet_alpha, train_config.heldout_fraction
        labels = share.labels
        if share.context_labels is not None:
            labels = torch.stack(share.context_labels)
        groups = None if share.groups is None else share.groups.numpy()
        if groups is None:
            trained, held = split_images(len(share.labels), fraction, seed)
        else:
            trained, held = split_groups(groups, fraction, seed)
        sampler = EpisodeSampler(
            features, labels, num_classes, alpha, seed, images=trained, groups=groups
        )
        heldout = None
        if len(held):
            held_sampler = EpisodeSampler(
                features, labels, num_classes, alpha, seed + 1, images=held, groups=groups
            )
            heldout = HeldOutEpisodes.draw(held_sampler, train_config)
        adapter = PersonaAdapter(adapter_config)
        base = head_weights(head)
        losses, diagnostics = train_adapter(adapter, base, sampler, train_config, heldout)
        bank, merge = build_prototypes(adapter, base, sampler, train_config, seed)
        novelty = calibrate_novelty(sampler, train_config.window, train_config.spawn_factor)
        expiry = expiry_distance(sampler, train_config)
        gate = None
        if heldout is not None:
            support = summaries_of(heldout.support, adapter_config.summary)
            gate = calibrate_gate(adapter, bank, heldout.context, support, heldout.qx, heldout.qy)
    final_loss = float(sum(losses[-50:]) / max(1, len(losses[-50:])))
    path = save_atomically(
        {
            "adapter": adapter.state_dict(),
            "bank": bank.state(),
            "novelty": novelty.state(),
            "merge": merge,
            "expiry": expiry,
            "loss": final_loss,
            "diagnostics": _diagnostics_state(diagnostics) if diagnostics else {},
            "gate": gate.state() if gate is not None else {},
        },
        path,
    )
    return PersonaCloudState(
        adapter.eval(), bank, novelty, merge, expiry, final_loss, path, diagnostics, gate
    )


def _bank_fits(bank: PrototypeBank, head: nn.Module) -> bool:
    """Whether a cached bank's heads have this head's layer shapes (one per prototype).

    A file under the right key but from another model (copied by hand, or a
    format mistake) would otherwise be served to every device and saved back.
    """
    own = head_weights(head)
    k = len(bank)
    return (
        k > 0
        and bank.centroids.shape[0] == k
        and len(bank.heads) == len(own)
        and all(
            w.shape == (k, *ow.shape) and b.shape == (k, *ob.shape) and w.dtype == ow.dtype
            for (w, b), (ow, ob) in zip(bank.heads, own, strict=True)
        )
    )


def _from_cache(saved: dict, config: AdapterConfig, path: Path) -> PersonaCloudState | None:
    """The cached state, or None if the entry does not fit (then it is rebuilt)."""
    try:
        bank = PrototypeBank.from_state(saved["bank"])
        adapter = PersonaAdapter(config, prototypes=len(bank))
        adapter.load_state_dict(saved["adapter"])
        diagnostics = saved.get("diagnostics")
        gate = saved.get("gate")
        return PersonaCloudState(
            adapter.eval(),
            bank,
            NoveltyDetector.from_state(saved["novelty"]),
            float(saved["merge"]),
            float(saved["expiry"]),
            float(saved["loss"]),
            path,
            _diagnostics_from(diagnostics) if diagnostics else None,
            EditGate.from_state(gate) if gate else None,
        )
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError):
        return None


def _diagnostics_state(d: AdapterDiagnostics) -> dict:
    """Plain numbers and tensors (the cache loads with ``weights_only``)."""
    return {
        "curve": torch.tensor(d.curve, dtype=torch.float64),
        "best_step": d.best_step,
        "stopped_at": d.stopped_at,
        "heldout": torch.tensor([d.heldout_loss, d.heldout_acc_edited, d.heldout_acc_base]),
        "per_context": torch.tensor(
            [[c, edited, base] for c, (edited, base) in sorted(d.per_context.items())]
        ),
    }


def _diagnostics_from(state: dict) -> AdapterDiagnostics:
    loss, edited, base = state["heldout"].tolist()
    return AdapterDiagnostics(
        [(int(s), tl, hl) for s, tl, hl in state["curve"].tolist()],
        int(state["best_step"]),
        int(state["stopped_at"]),
        loss,
        edited,
        base,
        {int(c): (e, b) for c, e, b in state["per_context"].tolist()},
    )
