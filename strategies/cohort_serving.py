"""Serving a whole cohort at once: each device's logits from its own weights, batched.

The evaluation half of ``strategies.cohort``: devices that serve one model run
as one batch, devices with their own models (fine-tuned copies, Persona's
edited heads) side by side with stacked weights. The per-device path gives
the same logits to float rounding (``tests/test_cohort.py``); results come
back on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from basemodel.architecture import HeadWeights, Weights

CHUNK = 1024  # devices per batched call (memory; ``strategies.cohort`` says why)


def predict_cohort(
    model: nn.Module,
    weights: Sequence[Weights],
    inputs: Sequence[torch.Tensor],
    device: torch.device,
) -> list[torch.Tensor]:
    """Each device's logits from its own weights: devices that serve the same weights
    run as one batch, the others side by side (stacked weights); CPU results."""
    groups: dict[int, list[int]] = {}
    for i, held in enumerate(weights):
        groups.setdefault(id(held), []).append(i)
    logits: list[torch.Tensor] = [torch.empty(0)] * len(inputs)
    single = [members[0] for members in groups.values() if len(members) == 1]
    for members in groups.values():
        if len(members) == 1:
            continue
        on_device = {k: v.to(device) for k, v in weights[members[0]].items()}
        for at in range(0, len(members), CHUNK):
            chunk = members[at : at + CHUNK]
            joined = torch.cat([inputs[i] for i in chunk]).to(device)
            out = functional_call(model, on_device, (joined,)).cpu()
            for i, part in zip(chunk, out.split([len(inputs[i]) for i in chunk]), strict=True):
                logits[i] = part
    if single and len({tuple(inputs[i].shape) for i in single}) == 1:
        try:
            _side_by_side(model, weights, inputs, single, device, logits)
            return logits
        except (RuntimeError, NotImplementedError):
            # vmap has no batching rule for some layers (the channels-last conversion of
            # the conv backbone, the fused GRU of gru4rec): those devices run one by one.
            pass
    for i in single:
        on_device = {k: v.to(device) for k, v in weights[i].items()}
        logits[i] = functional_call(model, on_device, (inputs[i].to(device),)).cpu()
    return logits


def _side_by_side(
    model: nn.Module,
    weights: Sequence[Weights],
    inputs: Sequence[torch.Tensor],
    members: list[int],
    device: torch.device,
    logits: list[torch.Tensor],
) -> None:
    """The ``members``' logits from their stacked weights, in chunks (into ``logits``)."""
    names = list(weights[members[0]])
    for at in range(0, len(members), CHUNK):  # bounded memory, as in training
        part = members[at : at + CHUNK]
        stacked = {n: torch.stack([weights[i][n] for i in part]).to(device) for n in names}
        batch = torch.stack([inputs[i] for i in part]).to(device)
        out = vmap(lambda w, x: functional_call(model, w, (x,)))(stacked, batch).cpu()
        for k, i in enumerate(part):
            logits[i] = out[k]


def heads_cohort(
    features: Sequence[torch.Tensor], heads: Sequence[HeadWeights], device: torch.device
) -> list[torch.Tensor]:
    """Each device's own head on its features, all heads side by side (Persona's serving)."""
    if not features:
        return []
    if len({tuple(f.shape) for f in features}) != 1:
        return [heads_cohort([f], [h], device)[0] for f, h in zip(features, heads, strict=True)]
    stacked = [
        (
            torch.stack([h[layer][0] for h in heads]).to(device),
            torch.stack([h[layer][1] for h in heads]).to(device),
        )
        for layer in range(len(heads[0]))
    ]
    h = torch.stack(list(features)).to(device)
    for layer, (w, b) in enumerate(stacked):  # (B, m, in) @ (B, in, out) + (B, 1, out)
        h = torch.bmm(h, w.transpose(1, 2)) + b.unsqueeze(1)
        if layer < len(stacked) - 1:
            h = torch.relu(h)
    return list(h.cpu())
