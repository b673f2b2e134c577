"""Cloud pretraining of Persona: episodic adapter training, then prototypes.

1. Features of the cloud's data under every known context (the clean source
   and the shifts the cloud knows) are computed once with the frozen backbone
   (``persona.episodes``).
2. Episodes: pick a context and a class prior (Dirichlet, like a device's) or
   a user (click streams), draw an unlabeled support window and a labeled
   query batch from it (``persona.episodes``); the adapter maps the support
   window to an edit; the loss is the task loss of the
   edited head on the query batch. Only the adapter learns.
   A held-out share of the cloud's images never enters a training episode:
   episodes drawn from it score the adapter every ``eval_every`` steps (loss,
   and accuracy with and without the edit, per context), training stops when
   the held-out loss has not improved for ``patience`` scores, and the best
   scored adapter is kept.
3. Prototypes: codes of many episodes are clustered with k-means. By default
   (``prototype_heads="generated"``, as in the authors' public code) a
   cluster's head ``P(k)`` is the base head plus the clipped generator output
   at the cluster's centroid code: bounded, and of the same kind as the edits
   the generators learned to add. ``"finetuned"`` instead fine-tunes the base
   head on the cluster's episodes (unbounded). Each cluster's copy of the
   generators is then fine-tuned with ``P(k)`` as the base (the encoder and
   cross-layer GRU stay shared and frozen).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from basemodel.architecture import HeadWeights
from basemodel.progress import training_steps
from persona.adapter import (
    PersonaAdapter,
    batched_head_forward,
    edited_heads,
    summarize_window,
)
from persona.episodes import EpisodeSampler
from persona.prototypes import PrototypeBank


@dataclass(frozen=True)
class PersonaTrainConfig:
    """Pretraining budget and episode shape (window = support size, as on devices)."""

    steps: int = 1500
    episodes_per_step: int = 16
    window: int = 32
    query: int = 32
    lr: float = 1e-3
    prototypes: int = 4
    prototype_episodes: int = 512
    head_epochs: int = 30
    generator_steps: int = 400
    dirichlet_alpha: float = 0.5
    spawn_factor: float = 2.0
    merge_factor: float = 0.25
    expiry_factor: float = 1.0
    prototype_heads: str = "generated"
    heldout_fraction: float = 0.2
    eval_every: int = 100
    eval_episodes: int = 256
    patience: int = 4


def head_as_batch(head: HeadWeights, batch: int) -> HeadWeights:
    return [(w.expand(batch, -1, -1), b.expand(batch, -1)) for w, b in head]


def summaries_of(support: torch.Tensor, kind: str) -> torch.Tensor:
    """Batch of device summaries from support windows ``(E, n, F)``."""
    if kind == "features":
        return support
    return torch.stack([summarize_window(s, kind) for s in support])


def episode_loss(
    adapter: PersonaAdapter, bases: HeadWeights, proto: torch.Tensor, support, qx, qy
) -> torch.Tensor:
    """Task loss of the edited heads on the query batches."""
    edits = adapter(summaries_of(support, adapter.config.summary), proto)
    logits = batched_head_forward(qx, edited_heads(bases, edits))
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), qy.reshape(-1))


@dataclass(frozen=True)
class HeldOutEpisodes:
    """A fixed set of episodes from images no training episode uses, per context."""

    context: torch.Tensor  # (E,) context index of each episode
    support: torch.Tensor
    qx: torch.Tensor
    qy: torch.Tensor

    @classmethod
    def draw(cls, sampler: EpisodeSampler, config: PersonaTrainConfig) -> HeldOutEpisodes:
        per_context = max(1, config.eval_episodes // len(sampler.contexts))
        context, support, qx, qy = [], [], [], []
        for c in sampler.contexts:
            fixed = EpisodeSampler.__new__(EpisodeSampler)
            fixed.__dict__.update(sampler.__dict__, contexts=[c])
            s, x, y = fixed.sample(per_context, config.window, config.query)
            context += [c] * per_context
            support.append(s)
            qx.append(x)
            qy.append(y)
        return cls(torch.tensor(context), torch.cat(support), torch.cat(qx), torch.cat(qy))


@dataclass
class AdapterDiagnostics:
    """The adapter's held-out record: what a reader needs to trust (or not) its edits.

    ``curve`` holds ``(step, train_loss, heldout_loss)`` at every score;
    ``per_context`` the best adapter's held-out accuracy with and without the
    edit, by context index. ``stopped_at`` is the step training ended.
    """

    curve: list[tuple[int, float, float]]
    best_step: int
    stopped_at: int
    heldout_loss: float
    heldout_acc_edited: float
    heldout_acc_base: float
    per_context: dict[int, tuple[float, float]]


@torch.no_grad()
def score_heldout(
    adapter: PersonaAdapter, head: HeadWeights, episodes: HeldOutEpisodes
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Held-out loss, and per-episode accuracy with and without the edit."""
    count = len(episodes.qy)
    bases = head_as_batch(head, count)
    proto = torch.zeros(count, dtype=torch.long)
    edits = adapter(summaries_of(episodes.support, adapter.config.summary), proto)
    edited = batched_head_forward(episodes.qx, edited_heads(bases, edits))
    plain = batched_head_forward(episodes.qx, bases)
    loss = nn.functional.cross_entropy(
        edited.reshape(-1, edited.shape[-1]), episodes.qy.reshape(-1)
    )
    accuracy = lambda logits: (logits.argmax(-1) == episodes.qy).float().mean(dim=1)  # noqa: E731
    return float(loss), accuracy(edited), accuracy(plain)


def train_adapter(
    adapter: PersonaAdapter,
    head: HeadWeights,
    sampler: EpisodeSampler,
    config: PersonaTrainConfig,
    heldout: HeldOutEpisodes | None = None,
) -> tuple[list[float], AdapterDiagnostics | None]:
    """Episodic training of the adapter on a single base head.

    With ``heldout`` episodes, training is scored on them every
    ``config.eval_every`` steps, stops early after ``config.patience`` scores
    without improvement, and ends with the best scored weights. Returns the
    training loss curve and the diagnostics (None without held-out episodes).
    """
    optimizer = torch.optim.Adam(adapter.parameters(), lr=config.lr)
    proto = torch.zeros(config.episodes_per_step, dtype=torch.long)
    bases = head_as_batch(head, config.episodes_per_step)
    losses: list[float] = []
    curve: list[tuple[int, float, float]] = []
    best = (float("inf"), 0, copy.deepcopy(adapter.state_dict()))
    stale, step = 0, 0
    with training_steps("Persona's adapter", config.steps) as advance:
        for step in range(1, config.steps + 1):
            support, qx, qy = sampler.sample(config.episodes_per_step, config.window, config.query)
            optimizer.zero_grad()
            loss = episode_loss(adapter, bases, proto, support, qx, qy)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            advance(1)
            if heldout is None or (step % config.eval_every and step != config.steps):
                continue
            held, _, _ = score_heldout(adapter, head, heldout)
            curve.append((step, float(np.mean(losses[-config.eval_every :])), held))
            if held < best[0]:
                best, stale = (held, step, copy.deepcopy(adapter.state_dict())), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if heldout is None:
        return losses, None
    adapter.load_state_dict(best[2])
    held, edited, plain = score_heldout(adapter, head, heldout)
    per_context = {
        int(c): (
            float(edited[heldout.context == c].mean()),
            float(plain[heldout.context == c].mean()),
        )
        for c in heldout.context.unique()
    }
    diagnostics = AdapterDiagnostics(
        curve, best[1], step, held, float(edited.mean()), float(plain.mean()), per_context
    )
    return losses, diagnostics


def _finetune_head(head: HeadWeights, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int):
    """Supervised fine-tuning of one head on features ``x`` (cloud side)."""
    params = [t.clone().requires_grad_(True) for pair in head for t in pair]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            weights = [(params[2 * i], params[2 * i + 1]) for i in range(len(head))]
            logits = batched_head_forward(x[batch].unsqueeze(0), head_as_batch(weights, 1))[0]
            optimizer.zero_grad()
            nn.functional.cross_entropy(logits, y[batch]).backward()
            optimizer.step()
    return [(params[2 * i].detach(), params[2 * i + 1].detach()) for i in range(len(head))]


def build_prototypes(
    adapter: PersonaAdapter,
    head: HeadWeights,
    sampler: EpisodeSampler,
    config: PersonaTrainConfig,
    seed: int,
) -> tuple[PrototypeBank, float]:
    """k-means on episode codes, per-cluster heads and generator copies.

    Returns the bank and the merge distance: ``merge_factor`` times the 99th
    percentile of the codes' distance to their own centroid (the spawn
    distance lives in feature space: ``persona.novelty``).
    """
    support, qx, qy = sampler.sample(config.prototype_episodes, config.window, config.query)
    with torch.no_grad():
        codes = adapter.codes(summaries_of(support, adapter.config.summary))[1].flatten(1)
    k = max(1, min(config.prototypes, len(codes)))
    from sklearn.cluster import KMeans  # 1 s to import: only where prototypes are built

    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(codes.numpy())
    labels = torch.as_tensor(kmeans.labels_, dtype=torch.long)
    centroids = torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32)
    if config.prototype_heads == "generated":
        with torch.no_grad():
            layer_codes = centroids.view(k, adapter.config.layers, adapter.config.code_dim)
            edits = adapter.generators(layer_codes, torch.zeros(k, dtype=torch.long))
        stacked = edited_heads(head_as_batch(head, k), edits)
        stacked = [(w.clone(), b.clone()) for w, b in stacked]
    elif config.prototype_heads == "finetuned":
        heads = []
        for cluster in range(k):
            mask = labels == cluster
            x, y = qx[mask].reshape(-1, qx.shape[-1]), qy[mask].reshape(-1)
            heads.append(_finetune_head(head, x, y, config.head_epochs, seed + cluster))
        stacked = [
            (torch.stack([h[layer][0] for h in heads]), torch.stack([h[layer][1] for h in heads]))
            for layer in range(len(head))
        ]
    else:
        raise ValueError(
            f"unknown prototype_heads {config.prototype_heads!r}; valid: generated, finetuned"
        )
    distances = (codes - centroids[labels]).norm(dim=1)
    typical = float(torch.quantile(distances, 0.99)) if len(distances) > 1 else 1.0
    bank = PrototypeBank(
        centroids,
        stacked,
        list(range(k)),
        [0] * k,
        members=[float((labels == c).sum()) for c in range(k)],
    )
    adapter.generators.select([0] * k)
    _finetune_generators(adapter, bank, sampler, config)
    return bank, config.merge_factor * typical


def _finetune_generators(
    adapter: PersonaAdapter,
    bank: PrototypeBank,
    sampler: EpisodeSampler,
    config: PersonaTrainConfig,
) -> None:
    """Fine-tune each prototype's generator copy with ``P(k)`` as the base."""
    optimizer = torch.optim.Adam(adapter.generators.parameters(), lr=config.lr)
    for _ in range(config.generator_steps):
        support, qx, qy = sampler.sample(config.episodes_per_step, config.window, config.query)
        with torch.no_grad():
            codes = adapter.codes(summaries_of(support, adapter.config.summary))[1]
        proto, _ = bank.nearest(codes.flatten(1))
        bases = [(w[proto], b[proto]) for w, b in bank.heads]
        optimizer.zero_grad()
        edits = adapter.generators(codes, proto)
        logits = batched_head_forward(qx, edited_heads(bases, edits))
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), qy.reshape(-1))
        loss.backward()
        optimizer.step()


def expiry_distance(sampler: EpisodeSampler, config: PersonaTrainConfig, pairs: int = 256) -> float:
    """How far a device's mean feature may wander before its edit is stale.

    Two windows from the same context and class prior differ in mean feature
    only by sampling noise; the distance is ``expiry_factor`` times the 99th
    percentile of that noise. A device whose inputs moved further than this
    from the window its edit was made for has seen its data shift.
    """
    distances = []
    for _ in range(pairs):
        first, second = sampler.sample_pair(config.window)
        distances.append(float((first.mean(dim=0) - second.mean(dim=0)).norm()))
    return config.expiry_factor * float(np.quantile(distances, 0.99))
