"""``t3a``: test-time classifier adjustment with feature prototypes.

Iwasawa and Matsuo (NeurIPS 2021). The last layer's class weights, normalised,
are the first support of each class; each sample of the batch joins the
supports of the class the model predicts for it, and only the ``filter_k``
supports of lowest prediction entropy per class are kept (``0``: keep all).
A class's prototype is the normalised sum of its supports; the batch is then
classified by cosine similarity of its (normalised) last-layer inputs to the
prototypes. No labels, no backprop, zero bytes.
"""

from __future__ import annotations

import torch
from pydantic import Field

from strategies.base import Method, MethodParams
from strategies.label_free import TestTimeDevice
from strategies.static import static_cloud


class T3AParams(MethodParams):
    """``filter_k``: supports kept per class, lowest entropy first (0: all)."""

    filter_k: int = Field(default=20, ge=0, le=100_000)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = logits.log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def t3a_logits(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, filter_k: int
) -> torch.Tensor:
    """Cosine similarities ``(n, K)`` of the batch to T3A's adjusted class prototypes."""
    classes = weight.shape[0]
    supports = torch.cat([weight, hidden])
    scores = supports @ weight.T + bias  # the original classifier on every support
    labels, entropy = scores.argmax(dim=1), _entropy(scores)
    normalized = torch.nn.functional.normalize(supports, dim=1)
    keep = torch.zeros(len(supports), dtype=torch.bool)
    for k in range(classes):
        members = torch.nonzero(labels == k).flatten()
        if filter_k > 0 and len(members) > filter_k:
            members = members[entropy[members].argsort()[:filter_k]]
        keep[members] = True
    onehot = torch.nn.functional.one_hot(labels, classes).to(hidden.dtype) * keep.unsqueeze(1)
    prototypes = torch.nn.functional.normalize(normalized.T @ onehot, dim=0)  # (d, K)
    return torch.nn.functional.normalize(hidden, dim=1) @ prototypes


class T3ADevice(TestTimeDevice):
    def adapt(self, logits, hidden, weight, bias, params):
        assert isinstance(params, T3AParams)
        return t3a_logits(hidden, weight, bias, params.filter_k)


METHOD = Method(
    name="t3a",
    colour="#bcbd22",
    summary="test-time classifier adjustment with feature prototypes; no labels, no backprop",
    params=T3AParams,
    cloud=static_cloud,
    device=T3ADevice(),
    tasks=("classification",),
    task_note=(
        "its class prototypes of pseudo-labeled features assume classes that cluster in "
        "feature space; clicks on a candidate do not"
    ),
)
