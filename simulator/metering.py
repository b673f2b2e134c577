"""Metering: the bytes a message puts on the wire and the FLOPs a model costs.

Bytes are measured, not estimated: the serialized size of every object Flower
would ship for a record (arrays, config and metric records, with Flower's own
de-duplication of identical objects). FLOPs are counted from the model's
layers (a multiply-add is 2 FLOPs); the cost of a training step (backward =
2x forward, the usual rule of thumb) is ``strategies.base.training_flops``.
"""

from __future__ import annotations

import torch
from flwr.app import RecordDict
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from torch import nn


def wire_bytes(content: RecordDict, exclude: tuple[str, ...] = ()) -> int:
    """Serialized size in bytes of ``content`` without the records named in ``exclude``."""
    if exclude:
        content = RecordDict({k: v for k, v in content.items() if k not in exclude})
    if not content:
        return 0
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(content).values())


def _layer_flops(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
) -> float:
    if isinstance(module, nn.Linear):
        batch = output.numel() / module.out_features
        return 2.0 * module.in_features * module.out_features * batch
    if isinstance(module, nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        per_output = 2.0 * kernel * module.in_channels / module.groups
        return per_output * output.numel()
    if isinstance(module, (nn.ReLU, nn.MaxPool2d)):
        return float(inputs[0].numel())
    return 0.0


def count_forward_flops(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward pass over ``example`` (a batch), counted per layer."""
    total = 0.0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_flops(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return total


def flops_per_sample(model: nn.Module, sample_shape: tuple[int, ...]) -> float:
    """Forward FLOPs for one sample of ``sample_shape`` (e.g. ``(1, 28, 28)``)."""
    return count_forward_flops(model, torch.zeros((1, *sample_shape)))
