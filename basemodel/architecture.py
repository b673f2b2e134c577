"""The shared starting model: a frozen feature backbone and an editable multi-layer head.

``f(x) = head_W(backbone(x))``. Every method starts from this model; which
weights a method may change is its own business, but the names are fixed
here: the head's parameters live under ``HEAD_PREFIX`` as ``head.layers.<i>.weight``
and ``head.layers.<i>.bias``. The head's weights can also be passed in
explicitly (``head_forward``), so per-device heads are plain tensors, not module
copies.

Backbones are chosen by name (``BACKBONES``); a dataset's table entry names the
one it uses (``simulator.catalog.datasets``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from basemodel.sequence import GRU4RecBackbone, SASRecBackbone

HEAD_PREFIX = "head."
Weights = dict[str, torch.Tensor]  # a model's (or part of a model's) tensors by parameter name
HeadWeights = list[tuple[torch.Tensor, torch.Tensor]]  # (W, b) per head layer


class ConvBackbone(nn.Module):
    """Two conv blocks and a projection: 1x28x28 images -> ``feature_dim`` features.

    Runs in channels-last memory layout: on CPUs, oneDNN's kernels for that
    layout are 1.3x (training) to 2x (inference) faster for these small convs
    at the batch sizes devices use (``benchmarks`` measure it). The math is the
    same; only float summation order differs from the default layout.

    Each block pools before its ReLU: ``relu(maxpool(x)) == maxpool(relu(x))``
    exactly (ReLU is monotone and a max picks one of its inputs), gradients
    included, and the ReLU then touches a quarter of the values (inference
    1.8x, a training step 1.1x faster on a 2-core Xeon). Parameter names are
    those of the conv-ReLU-pool order.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        feature_dim: int = 64,
        channels: tuple[int, int] = (16, 32),
    ):
        super().__init__()
        if tuple(input_shape) != (1, 28, 28):
            raise ValueError(f"the conv backbone takes 1x28x28 inputs, not {input_shape}")
        first, second = channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, first, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(first, second, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(second * 4 * 4, feature_dim),
            nn.ReLU(),
        )
        self.feature_dim = feature_dim
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.contiguous(memory_format=torch.channels_last))


class MLPBackbone(nn.Module):
    """A small MLP for tiny inputs (8x8 digits) -> ``feature_dim`` features."""

    def __init__(self, input_shape: tuple[int, ...], feature_dim: int = 64):
        super().__init__()
        inputs = 1
        for size in input_shape:
            inputs *= int(size)
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(inputs, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


BACKBONES: dict[str, Callable[..., nn.Module]] = {  # (input_shape, **options) -> backbone
    "conv28": ConvBackbone,
    "mlp": MLPBackbone,
    "gru4rec": GRU4RecBackbone,
    "sasrec": SASRecBackbone,
}

# Each backbone's widths at ``width`` 1 (channels, features, embedding size): what
# ``width`` multiplies. SASRec's embedding must split over its two attention heads.
BASE_WIDTHS: dict[str, dict[str, int | tuple[int, ...]]] = {
    "conv28": {"channels": (16, 32), "feature_dim": 64},
    "mlp": {"feature_dim": 64},
    "gru4rec": {"dim": 32, "feature_dim": 64},
    "sasrec": {"dim": 32, "feature_dim": 64},
}
MULTIPLE_OF = {"sasrec": {"dim": 2}}


def scaled_widths(backbone: str, width: float) -> dict[str, int | tuple[int, ...]]:
    """The backbone's width options at multiplier ``width`` (each at least 1, rounded)."""

    def scale(value: int, multiple: int) -> int:
        return max(multiple, multiple * round(value * width / multiple))

    out: dict[str, int | tuple[int, ...]] = {}
    for name, value in BASE_WIDTHS[backbone].items():
        multiple = MULTIPLE_OF.get(backbone, {}).get(name, 1)
        if isinstance(value, tuple):
            out[name] = tuple(scale(v, multiple) for v in value)
        else:
            out[name] = scale(value, multiple)
    return out


class EditableHead(nn.Module):
    """``L`` linear layers with ReLU between them: the layers methods personalise or edit."""

    def __init__(self, widths: list[int]):
        super().__init__()
        if len(widths) < 2:
            raise ValueError("a head needs at least an input and an output width")
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    def weights(self) -> HeadWeights:
        return [(layer.weight, layer.bias) for layer in self.layers]

    def widths(self) -> list[int]:
        """``[in, hidden..., out]``: the head's layer widths."""
        return [self.layers[0].in_features] + [layer.out_features for layer in self.layers]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Through the modules (not ``head_forward``), so FLOP-counting hooks see every layer.
        h = features
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h


def head_forward(features: torch.Tensor, weights: HeadWeights) -> torch.Tensor:
    """Run a head given explicit ``(W, b)`` per layer (``W`` is ``out x in``)."""
    h = features
    for i, (w, b) in enumerate(weights):
        h = torch.nn.functional.linear(h, w, b)
        if i < len(weights) - 1:
            h = torch.relu(h)
    return h


def head_keys(layers: int) -> list[tuple[str, str]]:
    """State-dict names of the editable head's ``(weight, bias)`` per layer."""
    return [
        (f"{HEAD_PREFIX}layers.{i}.weight", f"{HEAD_PREFIX}layers.{i}.bias") for i in range(layers)
    ]


def is_head_key(name: str) -> bool:
    """Whether a state-dict name belongs to the editable head."""
    return name.startswith(HEAD_PREFIX)


class FleetModel(nn.Module):
    """Backbone plus editable head: the model every method starts from."""

    def __init__(self, backbone: nn.Module, head: EditableHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_model(
    backbone: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    head_hidden: int | list[int] = 64,
    options: dict[str, int] | None = None,
    width: float = 1.0,
) -> FleetModel:
    """The device's model: a named backbone at ``width`` and an editable head.

    ``width`` multiplies the backbone's channel, feature and embedding widths
    (1: the shipped sizes, the same weights for the same seed as before the
    setting existed); ``head_hidden`` lists the head's hidden layer widths (an
    int: one hidden layer), between the backbone's features and the classes.
    ``options`` go to the backbone (a sequence backbone's catalogue size, ``items``).
    """
    try:
        make = BACKBONES[backbone]
    except KeyError:
        raise ValueError(
            f"unknown backbone {backbone!r}; valid backbones: {', '.join(sorted(BACKBONES))}"
        ) from None
    body = make(tuple(input_shape), **scaled_widths(backbone, width), **(options or {}))
    feature_dim = int(body.feature_dim)
    hidden = [head_hidden] if isinstance(head_hidden, int) else list(head_hidden)
    return FleetModel(body, EditableHead([feature_dim, *hidden, num_classes]))


def parameter_count(model: nn.Module) -> int:
    """Every parameter of the model (backbone and head), as a device stores it."""
    return sum(p.numel() for p in model.parameters())
