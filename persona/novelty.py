"""Is a device's window unlike anything the cloud has seen? (When to spawn a prototype.)

The adapter's codes are a poor novelty test: the encoder was trained to
produce edits, and it maps a context it never saw into the region of the ones
it did (on 8x8 digits, an upside-down fleet lands as close to a centroid as
the trained contexts' own spread). Mean backbone features keep the distance:
the same test separates upside-down, 90-degree-rotated windows from trained
ones completely and leaves noise and small rotations alone. So novelty is the
distance from a window's mean feature to the nearest of a set of reference
windows from the cloud's own family, and the spawn distance is a multiple of
that distance's 99th percentile for fresh windows of the family.
"""

from __future__ import annotations

import torch

from persona.episodes import EpisodeSampler


class NoveltyDetector:
    """Reference window means ``(R, F)``; a spawned context's window joins them."""

    def __init__(self, references: torch.Tensor, spawn_distance: float):
        self.references = references
        self.spawn_distance = spawn_distance

    def to(self, device: torch.device) -> NoveltyDetector:
        """The detector with its references on ``device`` (itself)."""
        self.references = self.references.to(device)
        return self

    def distance(self, means: torch.Tensor) -> torch.Tensor:
        """Distance from each window mean ``(B, F)`` to its nearest reference, ``(B,)``."""
        return torch.cdist(means, self.references).min(dim=1).values

    def is_novel(self, mean: torch.Tensor) -> bool:
        return float(self.distance(mean.unsqueeze(0))[0]) > self.spawn_distance

    def remember(self, mean: torch.Tensor) -> None:
        """A spawned context becomes known: later windows like it do not spawn again."""
        self.references = torch.cat([self.references, mean.unsqueeze(0)])

    def state(self) -> dict:
        return {"references": self.references, "spawn_distance": self.spawn_distance}

    @classmethod
    def from_state(cls, state: dict) -> NoveltyDetector:
        return cls(state["references"].clone(), float(state["spawn_distance"]))


def calibrate_novelty(
    sampler: EpisodeSampler, window: int, factor: float, windows: int = 256
) -> NoveltyDetector:
    """References from ``windows`` family windows; spawn at ``factor`` x the 99th percentile.

    The percentile is of fresh family windows' distance to their nearest
    reference: how far sampling noise and label skew alone move a window.
    """
    references, _, _ = sampler.sample(windows, window, 1)
    fresh, _, _ = sampler.sample(windows, window, 1)
    detector = NoveltyDetector(references.mean(dim=1), float("inf"))
    typical = float(torch.quantile(detector.distance(fresh.mean(dim=1)), 0.99))
    detector.spawn_distance = factor * typical
    return detector
