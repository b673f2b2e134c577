"""Prototypes: clusters of devices in code space, each with its own base head.

A device is assigned to a prototype by nearest centroid or by smallest edit;
its head is ``P(k) + dW^(k)``. During deployment the bank refines itself
without labels: centroids follow a running mean of their members' codes,
``P(k)`` moves toward the mean edited head of its members (rate ``eta``), a
device whose code is far from every centroid spawns a new prototype, and
prototypes whose centroids come close are merged.

Prototype ids are stable (a merge retires an id, a spawn takes a new one) so a
device can say which prototype, and which version of it, it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from basemodel.architecture import HeadWeights


@dataclass
class RefineConfig:
    """Label-free refinement rules; the merge distance is in code space.

    Spawning is judged by a ``persona.novelty.NoveltyDetector`` on window
    means, with its own calibrated distance.

    Off by default: on the flagship's tuning seed it did not raise acc_mean
    (benchmarks/tune_baselines.py, the sweep named in scenarios/lowbandwidth.yaml).
    """

    enabled: bool = False
    eta: float = 0.05
    merge_distance: float = 0.0
    max_prototypes: int = 32


@dataclass
class PrototypeBank:
    """Centroids ``(K, D)``, heads ``[(W (K,out,in), b (K,out))]``, stable ids and versions."""

    centroids: torch.Tensor
    heads: HeadWeights
    ids: list[int]
    versions: list[int]
    members: list[float] = field(default_factory=list)
    next_id: int = 0

    def __post_init__(self) -> None:
        if not self.members:
            self.members = [1.0] * len(self.ids)
        self.next_id = max(self.next_id, max(self.ids, default=-1) + 1)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device) -> PrototypeBank:
        """The bank with its centroids and heads on ``device`` (itself when already there)."""
        self.centroids = self.centroids.to(device)
        self.heads = [(w.to(device), b.to(device)) for w, b in self.heads]
        return self

    def index_of(self, proto_id: int) -> int | None:
        return self.ids.index(proto_id) if proto_id in self.ids else None

    def head(self, index: int) -> HeadWeights:
        return [(w[index], b[index]) for w, b in self.heads]

    def nearest(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index of the nearest centroid and the distance to it, for codes ``(B, D)``."""
        distances = torch.cdist(codes, self.centroids)
        best = distances.min(dim=1)
        return best.indices, best.values

    # -- refinement -----------------------------------------------------------------
    @torch.no_grad()
    def move_centroids(self, codes: torch.Tensor, assigned: torch.Tensor, eta: float) -> None:
        """Running mean of members' codes (never slower than rate ``eta``)."""
        for k in sorted(set(assigned.tolist())):
            mask = assigned == k
            count = float(mask.sum())
            self.members[k] += count
            rate = max(eta, count / self.members[k])
            self.centroids[k] += rate * (codes[mask].mean(dim=0) - self.centroids[k])

    @torch.no_grad()
    def move_head(self, index: int, mean_edit: HeadWeights, eta: float) -> None:
        """``P(k) <- P(k) + eta * mean(dW)``: toward the members' mean edited head."""
        for (w, b), (dw, db) in zip(self.heads, mean_edit, strict=True):
            w[index] += eta * dw
            b[index] += eta * db
        self.versions[index] += 1

    @torch.no_grad()
    def spawn(self, code: torch.Tensor, head: HeadWeights) -> int:
        """Add a prototype centred on ``code`` with ``head`` as its base; returns its index."""
        self.centroids = torch.cat([self.centroids, code.unsqueeze(0)])
        self.heads = [
            (torch.cat([w, hw.unsqueeze(0)]), torch.cat([b, hb.unsqueeze(0)]))
            for (w, b), (hw, hb) in zip(self.heads, head, strict=True)
        ]
        self.ids.append(self.next_id)
        self.next_id += 1
        self.versions.append(0)
        self.members.append(1.0)
        return len(self.ids) - 1

    @torch.no_grad()
    def closest_pair(self) -> tuple[int, int, float] | None:
        if len(self) < 2:
            return None
        distances = torch.cdist(self.centroids, self.centroids)
        distances.fill_diagonal_(float("inf"))
        flat = int(distances.argmin())
        i, j = divmod(flat, len(self))
        return min(i, j), max(i, j), float(distances[i, j])

    @torch.no_grad()
    def merge(self, keep: int, drop: int) -> None:
        """Fold prototype ``drop`` into ``keep`` (member-weighted); ``drop``'s id retires."""
        total = self.members[keep] + self.members[drop]
        a, b = self.members[keep] / total, self.members[drop] / total
        self.centroids[keep] = a * self.centroids[keep] + b * self.centroids[drop]
        for w, bias in self.heads:
            w[keep] = a * w[keep] + b * w[drop]
            bias[keep] = a * bias[keep] + b * bias[drop]
        self.members[keep] = total
        self.versions[keep] += 1
        rest = [k for k in range(len(self)) if k != drop]
        self.centroids = self.centroids[rest]
        self.heads = [(w[rest], bias[rest]) for w, bias in self.heads]
        self.ids = [self.ids[k] for k in rest]
        self.versions = [self.versions[k] for k in rest]
        self.members = [self.members[k] for k in rest]

    def state(self) -> dict:
        """Plain tensors and lists (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "centroids": self.centroids,
            "heads": [[w, b] for w, b in self.heads],
            "ids": list(self.ids),
            "versions": list(self.versions),
            "members": list(self.members),
            "next_id": self.next_id,
        }

    @classmethod
    def from_state(cls, state: dict) -> PrototypeBank:
        return cls(
            centroids=state["centroids"].clone(),
            heads=[(w.clone(), b.clone()) for w, b in state["heads"]],
            ids=list(state["ids"]),
            versions=list(state["versions"]),
            members=list(state["members"]),
            next_id=int(state["next_id"]),
        )
