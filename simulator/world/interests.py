"""A synthetic sequential-recommendation stream whose interest drift is known exactly.

The generative model (every draw from a generator seeded by the caller):

- A catalogue of ``items`` items, each with a unit embedding ``e_i`` in
  ``dim`` dimensions (items cluster around ``topics`` topic directions) and a
  popularity ``b_i`` (normal, ``popularity_sigma``). Item id 0 is padding.
- Each user ``u`` has a base interest ``theta_u``: the fleet's base direction
  plus a personal deviation (``personal``), normalised.
- **Interest drift** of severity ``s`` degrees turns every user's interest
  by ``s`` degrees toward one direction orthogonal to it (the same for the
  whole fleet, drawn from the seed): ``theta(s) = cos(s) theta_u + sin(s) v_u``.
  ``s = 0`` is the base; 90 is an interest orthogonal to it; 180 its opposite.
- A sample is a user's recent history of ``history`` clicked items, drawn
  from ``softmax(focus * theta . e_i + b_i)`` (recent clicks follow the
  current interest), and a candidate item, drawn from the same distribution
  or, with probability 1/2, by popularity alone. Its label is a click with
  probability ``sigmoid(affinity * theta . e_c + b_c + offset)``.

So the history reveals the current interest only noisily (``history`` draws),
while the click depends on it exactly: a model trained before a drift leans
on the old interest as a prior, which is the headroom an adaptation method
can win back. ``click_probability`` is the ground truth of every sample, so
the best achievable AUC of any context is known (``oracle_auc`` in the tests
and the headroom benchmark).

Inputs travel as float tensors of item ids, ``(n, history + 1)``, history
first and the candidate last, so that the fleet's data path (windows,
serialization, batching) treats them like any other input.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from simulator.catalog.interest_model import InterestConfig
from simulator.catalog.seeding import rng_for


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class InterestCatalogue:
    """Items, users' base interests and the click model of one seed."""

    def __init__(self, config: InterestConfig, seed: int):
        self.config = config
        self.seed = seed
        rng = rng_for(seed, "interest-catalogue")
        topics = _unit(rng.normal(size=(config.topics, config.dim)))
        topic_of = rng.integers(0, config.topics, size=config.items)
        noise = rng.normal(scale=config.topic_spread, size=(config.items, config.dim))
        embeddings = _unit(topics[topic_of] + noise)
        self.embeddings = np.vstack([np.zeros((1, config.dim)), embeddings])  # id 0: padding
        self.popularity = np.concatenate(
            [[-np.inf], rng.normal(scale=config.popularity_sigma, size=config.items)]
        )
        self.base = _unit(rng.normal(size=config.dim))
        self.turn = rng.normal(size=config.dim)  # the drift's direction, before projection

    @property
    def num_items(self) -> int:
        """Catalogue size, padding excluded (ids run ``1..num_items``)."""
        return self.config.items

    def interest(self, user: int, severity_deg: float) -> np.ndarray:
        """User ``user``'s unit interest after a drift of ``severity_deg`` degrees."""
        rng = rng_for(self.seed, "interest-user", user)
        theta = _unit(self.base + self.config.personal * rng.normal(size=self.config.dim))
        away = self.turn - (self.turn @ theta) * theta
        away = away / np.linalg.norm(away)
        angle = math.radians(severity_deg)
        return math.cos(angle) * theta + math.sin(angle) * away

    def click_probability(self, theta: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The true click probability of each item for interest ``theta``."""
        c = self.config
        logits = c.affinity * self.embeddings[items] @ theta + self.popularity[items] + c.offset
        return 1.0 / (1.0 + np.exp(-logits))

    def _choice(self, logits: np.ndarray, size: tuple[int, ...], rng) -> np.ndarray:
        p = np.exp(logits[1:] - logits[1:].max())
        return 1 + rng.choice(self.config.items, size=size, p=p / p.sum())

    def samples(
        self, user: int, severity_deg: float, count: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """``count`` (history, candidate) inputs, click labels and true click probabilities."""
        c = self.config
        theta = self.interest(user, severity_deg)
        interested = c.focus * self.embeddings @ theta + self.popularity
        history = self._choice(interested, (count, c.history), rng)
        by_interest = self._choice(interested, (count,), rng)
        by_popularity = self._choice(self.popularity, (count,), rng)
        candidate = np.where(rng.random(count) < 0.5, by_interest, by_popularity)
        truth = self.click_probability(theta, candidate)
        labels = (rng.random(count) < truth).astype(np.int64)
        inputs = np.concatenate([history, candidate[:, None]], axis=1).astype(np.float32)
        return torch.from_numpy(inputs), torch.from_numpy(labels), truth

    def ranking_case(
        self, user: int, severity_deg: float, negatives: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, int]:
        """One HR@k/NDCG@k case: a history, then candidates, the first one the clicked item.

        The positive is the item the user clicks next (drawn from the interest
        distribution and accepted with its click probability); the negatives
        are drawn uniformly from the rest of the catalogue.
        """
        c = self.config
        theta = self.interest(user, severity_deg)
        interested = c.focus * self.embeddings @ theta + self.popularity
        history = self._choice(interested, (c.history,), rng)
        while True:
            positive = int(self._choice(interested, (1,), rng)[0])
            if rng.random() < self.click_probability(theta, np.array([positive]))[0]:
                break
        others = np.setdiff1d(np.arange(1, c.items + 1), [positive])
        candidates = np.concatenate([[positive], rng.choice(others, negatives, replace=False)])
        rows = np.concatenate([np.tile(history, (len(candidates), 1)), candidates[:, None]], 1)
        return torch.from_numpy(rows.astype(np.float32)), 0
