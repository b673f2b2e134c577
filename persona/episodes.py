"""What Persona's cloud trains on: features of the cloud's data under known contexts, as episodes.

An episode imitates one device's round: an unlabeled support window (what a
device would summarize) and a labeled query batch from the same distribution
(what the edited head is scored on). Images are drawn through a Dirichlet
class prior, like a device's label skew; click streams per user. Held-out
splits keep whole images (or whole users) out of training episodes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from basemodel.resources import Transform


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
    """Draws episodes: a context, a class prior, a support window and a labeled query.

    ``labels`` are ``(N,)`` when every context keeps a sample's label (image
    corruptions) or ``(contexts, N)`` when a context changes labels too
    (interest drift in a click stream). With ``groups`` (the user of each
    sample), an episode is one user's window under one context, its query
    other samples of that user; without, windows are drawn through a
    Dirichlet class prior, like a device's label skew. ``images`` restricts
    the samples episodes may use (a held-out split).
    """

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        alpha: float,
        seed: int,
        contexts: list[int] | None = None,
        images: np.ndarray | None = None,
        groups: np.ndarray | None = None,
    ):
        self.features = features
        self.labels = labels
        self.num_classes = num_classes
        self.alpha = alpha
        self.rng = np.random.default_rng(seed)
        self.contexts = contexts if contexts is not None else list(range(features.shape[0]))
        count = features.shape[1]
        allowed = np.ones(count, bool) if images is None else np.isin(np.arange(count), images)
        self.by_group: list[np.ndarray] | None = None
        if groups is not None:
            owners = np.asarray(groups)
            members = [np.flatnonzero((owners == g) & allowed) for g in np.unique(owners)]
            self.by_group = [m for m in members if len(m) >= 2]
            self.by_class: list[np.ndarray] = []
        else:
            labels_np = labels.numpy()
            self.by_class = [np.flatnonzero((labels_np == c) & allowed) for c in range(num_classes)]

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

    def _user_windows(self, first: int, second: int) -> tuple[int, np.ndarray, np.ndarray]:
        """A context and two disjoint draws from one user's samples (with replacement
        once the user's samples run out)."""
        assert self.by_group is not None
        context = self.contexts[self.rng.integers(len(self.contexts))]
        mine = self.by_group[self.rng.integers(len(self.by_group))]
        order = self.rng.permutation(mine)
        cut = max(1, min(first, len(order) - 1))
        return context, self._take(order[:cut], first), self._take(order[cut:], second)

    def _take(self, pool: np.ndarray, count: int) -> np.ndarray:
        """``pool`` itself if it has ``count`` samples, else ``count`` draws from it."""
        return pool if len(pool) == count else self.rng.choice(pool, count)

    def _labels(self, context: int, indices: np.ndarray) -> torch.Tensor:
        return self.labels[context, indices] if self.labels.dim() == 2 else self.labels[indices]

    def sample(self, episodes: int, window: int, query: int):
        """``(support (E,n,F), query_x (E,q,F), query_y (E,q))``."""
        support, qx, qy = [], [], []
        for _ in range(episodes):
            if self.by_group is not None:
                context, s_idx, q_idx = self._user_windows(window, query)
            else:
                context, prior = self._context_and_prior()
                s_idx, q_idx = self._draw(prior, window), self._draw(prior, query)
            support.append(self.features[context, s_idx])
            qx.append(self.features[context, q_idx])
            qy.append(self._labels(context, q_idx))
        return torch.stack(support), torch.stack(qx), torch.stack(qy)

    def sample_pair(self, window: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent windows from one context and one class prior (or one user)."""
        if self.by_group is not None:
            context, first, second = self._user_windows(window, window)
            return self.features[context, first], self.features[context, second]
        context, prior = self._context_and_prior()
        return (
            self.features[context, self._draw(prior, window)],
            self.features[context, self._draw(prior, window)],
        )


def split_images(count: int, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Image indices for training episodes and for held-out ones (seeded, disjoint)."""
    order = np.random.default_rng([seed, 7]).permutation(count)
    cut = int(round(heldout_fraction * count))
    return np.sort(order[cut:]), np.sort(order[:cut])


def split_groups(
    groups: np.ndarray, heldout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices split by whole groups (users): held-out users are never trained on."""
    users = np.unique(groups)
    trained_users, held_users = split_images(len(users), heldout_fraction, seed)
    held = np.isin(groups, users[held_users])
    return np.flatnonzero(~held), np.flatnonzero(held)
