"""Image corruptions for covariate shift (MNIST-C / CIFAR-C style).

The shift kinds that use them, and what their severity means, are listed in
``simulator.catalog.shifts``. Each takes a batch ``(N, C, H, W)`` in [0, 1], a
severity in the kind's own unit and a seeded generator, and returns a batch
in [0, 1]. Severity 0 is the identity for every kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F

Corruption = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


def rotate(images: torch.Tensor, degrees: float, generator: torch.Generator | None = None):
    """Rotate about the centre; corners fill with 0 (background)."""
    if degrees == 0:
        return images
    grid = _rotation_grid(float(degrees), images.shape[-2], images.shape[-1], images.dtype)
    grid = grid.expand(images.shape[0], -1, -1, -1)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


@lru_cache(maxsize=256)
def _rotation_grid(degrees: float, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """The sampling grid of a rotation, the same for every image of a size (built once)."""
    theta = torch.deg2rad(torch.tensor(degrees, dtype=dtype))
    cos, sin, zero = torch.cos(theta), torch.sin(theta), torch.zeros((), dtype=dtype)
    matrix = torch.stack([torch.stack([cos, -sin, zero]), torch.stack([sin, cos, zero])])
    return F.affine_grid(matrix.unsqueeze(0), [1, 1, height, width], align_corners=False)


def add_noise(images: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian pixel noise, clipped back to [0, 1]."""
    if std == 0:
        return images
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return (images + std * noise).clamp(0.0, 1.0)


def blur(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation ``sigma`` pixels."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(
        F.pad(images, (radius, radius, 0, 0), mode="replicate"), horizontal, groups=channels
    )
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), vertical, groups=channels)
    return out.clamp(0.0, 1.0)


def contrast(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Pull every pixel toward its image's mean by ``amount`` (0..1)."""
    amount = min(max(amount, 0.0), 1.0)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (images - mean) * (1.0 - amount)


def brightness(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Add ``amount`` to every pixel, clipped to [0, 1]."""
    return (images + amount).clamp(0.0, 1.0)


def occlusion(images: torch.Tensor, side: float, generator: torch.Generator) -> torch.Tensor:
    """Blank a square of ``side`` x image side at a seeded random place in each image."""
    height, width = images.shape[-2:]
    size = int(round(min(max(side, 0.0), 1.0) * min(height, width)))
    if size == 0:
        return images
    out = images.clone()
    tops = torch.randint(0, height - size + 1, (len(images),), generator=generator)
    lefts = torch.randint(0, width - size + 1, (len(images),), generator=generator)
    for i, (top, left) in enumerate(zip(tops.tolist(), lefts.tolist(), strict=True)):
        out[i, :, top : top + size, left : left + size] = 0.0
    return out


def inversion(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Blend toward ``1 - x`` by ``amount`` (1 = white digits become black on white)."""
    amount = min(max(amount, 0.0), 1.0)
    return (1.0 - amount) * images + amount * (1.0 - images)
