"""Sequence backbones for recommendation: a click history and a candidate -> features.

Inputs are ``(n, history + 1)`` item ids (float or integer; id 0 pads), the
history first and the candidate last, as ``simulator.world.interests`` and
the rating loaders produce them. Both backbones embed items, encode the
history into one vector ``h`` and combine it with the candidate's embedding
``c`` as ``[h, c, h * c]`` through a projection, so the editable head on top
scores the candidate's fit to the history (the CTR formulation the Persona
authors' backbones share).

- ``GRU4RecBackbone``: a GRU over the history; ``h`` is its last state
  (Hidasi et al. 2016).
- ``SASRecBackbone``: causal self-attention over the history with learned
  positions; ``h`` is the last position's output (Kang and McAuley 2018).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class _SequenceBackbone(nn.Module, ABC):
    """Item embeddings, a history encoder (subclass) and the ``[h, c, h*c]`` projection."""

    def __init__(self, input_shape: tuple[int, ...], items: int, dim: int, feature_dim: int):
        super().__init__()
        if len(input_shape) != 1 or input_shape[0] < 2:
            raise ValueError(
                f"a sequence backbone takes (history + 1,) item ids, not {tuple(input_shape)}"
            )
        self.history = int(input_shape[0]) - 1
        self.items = items
        self.embedding = nn.Embedding(items + 1, dim, padding_idx=0)
        self.project = nn.Sequential(nn.Linear(3 * dim, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    @abstractmethod
    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """``(n, L, dim)`` embedded history -> ``(n, dim)`` (each backbone's own encoder)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long().clamp(0, self.items)
        h = self.encode(self.embedding(ids[:, :-1]))
        c = self.embedding(ids[:, -1])
        return self.project(torch.cat([h, c, h * c], dim=1))


class GRU4RecBackbone(_SequenceBackbone):
    """A one-layer GRU over the embedded history; its last hidden state encodes it."""

    def __init__(
        self, input_shape: tuple[int, ...], items: int = 200, dim: int = 32, feature_dim: int = 64
    ):
        super().__init__(input_shape, items, dim, feature_dim)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(history)
        return last[0]


class SASRecBackbone(_SequenceBackbone):
    """One causal self-attention block over the history with learned positions."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        items: int = 200,
        dim: int = 32,
        feature_dim: int = 64,
        heads: int = 2,
    ):
        super().__init__(input_shape, items, dim, feature_dim)
        self.positions = nn.Embedding(self.history, dim)
        self.block = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True
        )
        mask = torch.triu(torch.ones(self.history, self.history, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", mask, persistent=False)

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        positions = self.positions(torch.arange(history.shape[1], device=history.device))
        out = self.block(history + positions, src_mask=self.causal, is_causal=True)
        return out[:, -1]
