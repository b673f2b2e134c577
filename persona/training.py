"""Cloud pretraining of Persona: episodic adapter training, then prototypes.

1. Features of the cloud's data under every known context (the clean source
   and the shifts the cloud knows) are computed once with the frozen backbone.
2. Episodes: pick a context and a class prior (Dirichlet, like a device's),
   draw an unlabeled support window and a labeled query batch from it; the
   adapter maps the support window to an edit; the loss is the task loss of the
   edited head on the query batch. Only the adapter learns.
3. Prototypes: codes of many episodes are clustered with k-means; each
   cluster's head ``P(k)`` is the base head fine-tuned on its episodes' data,
   and each cluster's copy of the generators is fine-tuned with ``P(k)`` as the
   base (the encoder and cross-layer GRU stay shared and frozen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from basemodel.architecture import HeadWeights
from basemodel.resources import Transform
from persona.adapter import (
    PersonaAdapter,
    batched_head_forward,
    edited_heads,
    summarize_window,
)
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


@torch.no_grad()
def context_features(
    backbone: nn.Module, images: torch.Tensor, contexts: list[Transform], chunk: int = 512
) -> torch.Tensor:
    """Backbone features of every image under every context: ``(contexts, N, F)``."""
    backbone.eval()
    out = []
    for transform in contexts:
        shifted = transform(images)
        out.append(
            torch.cat([backbone(shifted[i : i + chunk]) for i in range(0, len(images), chunk)])
        )
    return torch.stack(out)


class EpisodeSampler:
    """Draws episodes: a context, a class prior, a support window and a labeled query."""

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        alpha: float,
        seed: int,
        contexts: list[int] | None = None,
    ):
        self.features = features
        self.labels = labels
        self.num_classes = num_classes
        self.alpha = alpha
        self.rng = np.random.default_rng(seed)
        self.contexts = contexts if contexts is not None else list(range(features.shape[0]))
        labels_np = labels.numpy()
        self.by_class = [np.flatnonzero(labels_np == c) for c in range(num_classes)]

    def _draw(self, prior: np.ndarray, count: int) -> np.ndarray:
        classes = self.rng.choice(self.num_classes, size=count, p=prior)
        return np.array(
            [self.by_class[c][self.rng.integers(len(self.by_class[c]))] for c in classes]
        )

    def _context_and_prior(self) -> tuple[int, np.ndarray]:
        present = np.array([len(p) > 0 for p in self.by_class], dtype=float)
        context = self.contexts[self.rng.integers(len(self.contexts))]
        prior = self.rng.dirichlet(np.full(self.num_classes, self.alpha)) * present
        return context, prior / prior.sum()

    def sample(self, episodes: int, window: int, query: int):
        """``(support (E,n,F), query_x (E,q,F), query_y (E,q))``."""
        support, qx, qy = [], [], []
        for _ in range(episodes):
            context, prior = self._context_and_prior()
            s_idx, q_idx = self._draw(prior, window), self._draw(prior, query)
            support.append(self.features[context, s_idx])
            qx.append(self.features[context, q_idx])
            qy.append(self.labels[q_idx])
        return torch.stack(support), torch.stack(qx), torch.stack(qy)

    def sample_pair(self, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent windows from one context and one class prior."""
        context, prior = self._context_and_prior()
        return (
            self.features[context, self._draw(prior, window)],
            self.features[context, self._draw(prior, window)],
        )


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


def train_adapter(
    adapter: PersonaAdapter,
    head: HeadWeights,
    sampler: EpisodeSampler,
    config: PersonaTrainConfig,
    parameters=None,
    steps: int | None = None,
) -> list[float]:
    """Episodic training of the adapter on a single base head; returns the loss curve."""
    optimizer = torch.optim.Adam(parameters or adapter.parameters(), lr=config.lr)
    proto = torch.zeros(config.episodes_per_step, dtype=torch.long)
    bases = head_as_batch(head, config.episodes_per_step)
    losses = []
    for _ in range(steps if steps is not None else config.steps):
        support, qx, qy = sampler.sample(config.episodes_per_step, config.window, config.query)
        optimizer.zero_grad()
        loss = episode_loss(adapter, bases, proto, support, qx, qy)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


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
) -> tuple[PrototypeBank, float, float]:
    """k-means on episode codes, per-cluster heads and generator copies.

    Returns the bank and the spawn and merge distances: multiples
    (``spawn_factor``, ``merge_factor``) of the 99th percentile of the codes'
    distance to their own centroid.
    """
    support, qx, qy = sampler.sample(config.prototype_episodes, config.window, config.query)
    with torch.no_grad():
        codes = adapter.codes(summaries_of(support, adapter.config.summary))[1].flatten(1)
    k = max(1, min(config.prototypes, len(codes)))
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(codes.numpy())
    labels = torch.as_tensor(kmeans.labels_, dtype=torch.long)
    heads = []
    for cluster in range(k):
        mask = labels == cluster
        x, y = qx[mask].reshape(-1, qx.shape[-1]), qy[mask].reshape(-1)
        heads.append(_finetune_head(head, x, y, config.head_epochs, seed + cluster))
    stacked = [
        (torch.stack([h[layer][0] for h in heads]), torch.stack([h[layer][1] for h in heads]))
        for layer in range(len(head))
    ]
    centroids = torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32)
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
    return bank, config.spawn_factor * typical, config.merge_factor * typical


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
