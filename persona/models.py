"""Models: a frozen feature backbone and an editable multi-layer head.

``f(x) = head_W(backbone(x))``. The head is a stack of linear layers whose
weights can be passed in explicitly (``head_forward``), so per-device weights
are plain tensors and need no module copies.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBackbone(nn.Module):
    """Two conv blocks and a projection: 28x28 images -> ``feature_dim`` features."""

    def __init__(self, feature_dim: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, feature_dim),
            nn.ReLU(),
        )
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MLPBackbone(nn.Module):
    """A small MLP for tiny images (8x8 digits) -> ``feature_dim`` features."""

    def __init__(self, image_size: int, feature_dim: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(image_size * image_size, feature_dim), nn.ReLU()
        )
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class EditableHead(nn.Module):
    """``L`` linear layers with ReLU between them; the layers Persona edits."""

    def __init__(self, widths: list[int]):
        super().__init__()
        if len(widths) < 2:
            raise ValueError("a head needs at least an input and an output width")
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    def weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.weight, layer.bias) for layer in self.layers]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return head_forward(features, self.weights())


def head_forward(
    features: torch.Tensor, weights: list[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Run a head given explicit ``(W, b)`` per layer (``W`` is ``out x in``)."""
    h = features
    for i, (w, b) in enumerate(weights):
        h = torch.nn.functional.linear(h, w, b)
        if i < len(weights) - 1:
            h = torch.relu(h)
    return h


class FleetModel(nn.Module):
    """Backbone plus editable head: the model every method starts from."""

    def __init__(self, backbone: nn.Module, head: EditableHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_model(image_size: int, num_classes: int, head_hidden: int = 64) -> FleetModel:
    """The architecture for a dataset: conv backbone for 28x28, MLP for small images."""
    backbone: nn.Module = ConvBackbone() if image_size == 28 else MLPBackbone(image_size)
    feature_dim = backbone.feature_dim
    return FleetModel(backbone, EditableHead([feature_dim, head_hidden, num_classes]))
