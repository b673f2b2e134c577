"""What a model costs to run, in FLOPs (a multiply-add is 2 FLOPs).

Counted per layer by forward hooks, so the figure follows the architecture
actually built. A training step costs forward plus backward, and backward is
taken as twice the forward (the usual rule of thumb): ``training_flops``.
"""

from __future__ import annotations

import torch
from torch import nn

BACKWARD_FACTOR = 2.0  # a backward pass costs about twice the forward


def training_flops(forward_per_sample: float, samples: int, epochs: int) -> float:
    """FLOPs of ``epochs`` passes of forward + backward over ``samples`` samples."""
    return forward_per_sample * (1.0 + BACKWARD_FACTOR) * samples * epochs


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
    if isinstance(module, nn.GRU):
        # Three gates per step, each a product with the input and with the state.
        steps = output[0].numel() / module.hidden_size  # batch x time
        per_step = 3 * 2.0 * (module.input_size + module.hidden_size) * module.hidden_size
        return per_step * steps * module.num_layers
    if isinstance(module, nn.MultiheadAttention):
        # Its projections run as functions, not as child modules, so no other hook sees them.
        query, key = inputs[0], inputs[1]
        width = module.embed_dim
        projections = 2.0 * width * width * (query.numel() + 2 * key.numel()) / width
        out = 2.0 * width * width * query.numel() / width
        length = key.shape[1] if module.batch_first else key.shape[0]
        attention = 2 * 2.0 * length * query.numel()  # scores, then the weighted sum
        return projections + out + attention
    return 0.0


def count_forward_flops(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward pass over ``example`` (a batch), counted per layer."""
    total = 0.0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_flops(module, inputs, output)

    counted = [
        m for m in model.modules() if not list(m.children()) or isinstance(m, nn.MultiheadAttention)
    ]
    handles = [m.register_forward_hook(hook) for m in counted]
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


def head_forward_flops(head_weights: dict[str, torch.Tensor]) -> float:
    """Forward FLOPs per sample of the head's linear layers alone (2 per weight)."""
    return sum(2.0 * v.numel() for k, v in head_weights.items() if k.endswith("weight"))
