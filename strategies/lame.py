"""``lame``: Laplacian-adjusted maximum-likelihood estimation of the batch's labels.

Boudiaf, Mueller, Ben Ayed and Bertinetto (CVPR 2022). Keeps the model's
outputs ``p`` and finds assignments ``z`` that stay close to them (in KL)
while agreeing between neighbouring samples of the batch: with ``W`` the
k-nearest-neighbour affinity of the (normalised) last-layer inputs, the
bound-optimisation step ``z_i <- softmax(log p_i + sum_j W_ij z_j)`` repeats
until ``z`` stops moving. Corrects the output only; no labels, no backprop,
zero bytes.
"""

from __future__ import annotations

import torch
from pydantic import Field

from strategies.base import Method, MethodParams
from strategies.label_free import TestTimeDevice
from strategies.static import static_cloud


class LAMEParams(MethodParams):
    """``knn`` neighbours per sample in the affinity; ``max_iters`` steps at most."""

    knn: int = Field(default=5, ge=1, le=1000)
    max_iters: int = Field(default=100, ge=1, le=10_000)
    tolerance: float = Field(default=1e-6, gt=0)


def knn_affinity(features: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetric 0/1 affinity: ``W_ij = 1`` when ``j`` is among ``i``'s ``k`` nearest (cosine)."""
    normalized = torch.nn.functional.normalize(features, dim=1)
    similarity = normalized @ normalized.T
    similarity.fill_diagonal_(-float("inf"))
    k = min(k, len(features) - 1)
    affinity = torch.zeros_like(similarity)
    if k > 0:
        affinity.scatter_(1, similarity.topk(k, dim=1).indices, 1.0)
    return ((affinity + affinity.T) > 0).to(features.dtype)


def lame(
    log_probabilities: torch.Tensor,
    affinity: torch.Tensor,
    max_iters: int = 100,
    tolerance: float = 1e-6,
) -> torch.Tensor:
    """LAME's assignments ``(n, K)`` from the model's log-probabilities and an affinity."""
    z = log_probabilities.exp()
    for _ in range(max_iters):
        updated = (log_probabilities + affinity @ z).softmax(dim=1)
        moved = float((updated - z).abs().max())
        z = updated
        if moved < tolerance:
            break
    return z


class LAMEDevice(TestTimeDevice):
    def adapt(self, logits, hidden, weight, bias, params):
        assert isinstance(params, LAMEParams)
        z = lame(logits.log_softmax(dim=1), knn_affinity(hidden, params.knn), params.max_iters)
        return z.clamp_min(1e-12).log()


METHOD = Method(
    name="lame",
    colour="#9467bd",
    summary="adjusts outputs to agree between neighbouring samples; no labels, no backprop",
    params=LAMEParams,
    cloud=static_cloud,
    device=LAMEDevice(),
    tasks=("classification",),
    task_note=(
        "its premise, that neighbouring samples share a class, does not hold for clicks "
        "(similar histories click on different candidates)"
    ),
)
