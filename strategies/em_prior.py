"""``em-prior``: re-estimate the class prior of each batch by EM, then re-weight predictions.

Saerens, Latinne and Decaestecker (Neural Computation, 2002): a classifier
trained under prior ``pi_train`` gives ``p(y | x)``; under a new prior
``pi`` the posterior is proportional to ``p(y | x) * pi(y) / pi_train(y)``.
EM alternates between those posteriors and ``pi`` = their mean over the
batch, until ``pi`` stops moving. The cloud's data is class-balanced, so
``pi_train`` is uniform. Corrects label shift (class-prior drift); cannot
correct covariate shift. Zero bytes, zero backward passes.
"""

from __future__ import annotations

import torch
from pydantic import Field

from strategies.base import Method, MethodParams
from strategies.label_free import TestTimeDevice
from strategies.static import static_cloud


class EMPriorParams(MethodParams):
    """``max_iters`` EM steps at most; stop when the prior moves less than ``tolerance``."""

    max_iters: int = Field(default=100, ge=1, le=10_000)
    tolerance: float = Field(default=1e-6, gt=0)


def em_prior(
    probabilities: torch.Tensor, max_iters: int = 100, tolerance: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """(re-weighted posteriors ``(n, K)``, estimated prior ``(K,)``) for one batch.

    ``probabilities`` are posteriors under a uniform training prior.
    """
    classes = probabilities.shape[1]
    train_prior = torch.full((classes,), 1.0 / classes, dtype=probabilities.dtype)
    prior = train_prior.clone()
    posteriors = probabilities
    for _ in range(max_iters):
        weighted = probabilities * (prior / train_prior)
        posteriors = weighted / weighted.sum(dim=1, keepdim=True)
        updated = posteriors.mean(dim=0)
        moved = float((updated - prior).abs().max())
        prior = updated
        if moved < tolerance:
            break
    return posteriors, prior


class EMPriorDevice(TestTimeDevice):
    def adapt(self, logits, hidden, weight, bias, params):
        assert isinstance(params, EMPriorParams)
        posteriors, _ = em_prior(logits.softmax(dim=1), params.max_iters, params.tolerance)
        return posteriors.clamp_min(1e-12).log()


METHOD = Method(
    name="em-prior",
    colour="#ff7f0e",
    summary="re-estimates each batch's class prior by EM (label shift); no labels, no backprop",
    params=EMPriorParams,
    cloud=static_cloud,
    device=EMPriorDevice(),
    tasks=("classification",),
    task_note=(
        "it re-estimates a class prior, and with two click classes a prior cannot reorder "
        "a device's scores (its AUC would equal static's)"
    ),
)
