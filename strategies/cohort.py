"""Local training of a whole cohort at once, as batched tensor work on one device.

On a GPU, one device's 16-sample steps leave the hardware idle; a cohort's
steps side by side fill it. Each function here does for ``n`` devices what
the per-device path does for one, with the same samples, minibatches, seeds
and update rule, so the two agree to float rounding (``tests/test_cohort.py``
measures it on the CPU): per-device weights are stacked and one step of every
device runs as one call (``torch.func.vmap`` over ``functional_call``).
Results come back as CPU tensors, so messages, metering and device state are
exactly what the per-device path makes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from basemodel.architecture import Weights
from strategies.local_training import LocalTrainingParams, minibatches

# Devices per batched call: a 10,000-device cohort of a full-width conv model holds
# about 16 GB of activations at once; chunks of this size keep it near 2 GB.
CHUNK = 1024


def train_cohort(
    model: nn.Module,
    starts: Sequence[Weights],
    data: Sequence[tuple[torch.Tensor, torch.Tensor]],
    params: LocalTrainingParams,
    seeds: Sequence[int],
    device: torch.device,
    proximal_mu: float = 0.0,
) -> list[tuple[Weights, float, int]]:
    """Local SGD of every device from its start, as ``train_locally`` runs it for one.

    Device ``i`` trains from ``starts[i]`` on ``data[i]`` with the minibatches
    its seed draws; with ``proximal_mu`` its proximal term pulls toward its
    start (FedProx). Returns, per device, its trained weights (CPU), its mean
    task loss and its backward passes. A device with fewer minibatches than
    another idles (a zero step) while the others go on; padded samples weigh 0.
    More than ``CHUNK`` devices are trained chunk by chunk (devices never interact).
    """
    if len(data) > CHUNK:
        return [
            result
            for at in range(0, len(data), CHUNK)
            for result in train_cohort(
                model,
                starts[at : at + CHUNK],
                data[at : at + CHUNK],
                params,
                seeds[at : at + CHUNK],
                device,
                proximal_mu,
            )
        ]
    names = [name for name, _ in model.named_parameters()]
    stacked = {n: torch.stack([s[n] for s in starts]).to(device) for n in names}
    anchors = {n: t.clone() for n, t in stacked.items()}
    plans = [
        list(minibatches(len(y), params, seed)) for (_, y), seed in zip(data, seeds, strict=True)
    ]
    steps = max((len(p) for p in plans), default=0)
    width = params.batch_size
    xs = [x.to(device) for x, _ in data]
    ys = [y.to(device) for _, y in data]
    shape = next((x for x in xs if len(x)), torch.zeros(0))[:1]  # one sample's shape, for padding

    def loss_of(weights, anchor, x, y, w):
        logits = functional_call(model, weights, (x,))
        task = (w * nn.functional.cross_entropy(logits, y, reduction="none")).sum()
        if proximal_mu <= 0:
            return task, task
        proximal = sum((weights[n] - anchor[n]).pow(2).sum() for n in weights)
        return task + 0.5 * proximal_mu * proximal * (w.sum() > 0), task

    step_all = vmap(grad_and_value(loss_of, has_aux=True))
    losses: list[list[float]] = [[] for _ in data]
    model.train()
    for s in range(steps):
        batch_x, batch_y, weight = [], [], []
        for i, plan in enumerate(plans):
            index = plan[s] if s < len(plan) else torch.empty(0, dtype=torch.long)
            real = len(index)
            padded = torch.cat([index, torch.zeros(width - real, dtype=torch.long)])
            if len(xs[i]):
                batch_x.append(xs[i][padded])
                batch_y.append(ys[i][padded])
            else:  # no labeled sample: an idle device, all weights 0
                batch_x.append(torch.zeros_like(shape).expand(width, *shape.shape[1:]))
                batch_y.append(torch.zeros(width, dtype=torch.long, device=device))
            mask = torch.zeros(width, device=device)
            if real:
                mask[:real] = 1.0 / real
            weight.append(mask)
        grads, (_, task) = step_all(
            stacked, anchors, torch.stack(batch_x), torch.stack(batch_y), torch.stack(weight)
        )
        with torch.no_grad():
            for n in names:
                stacked[n] -= params.lr * grads[n]
        for i, plan in enumerate(plans):
            if s < len(plan):
                losses[i].append(float(task[i]))
    model.eval()
    return [
        (
            {n: stacked[n][i].detach().cpu() for n in names},
            sum(losses[i]) / len(losses[i]) if losses[i] else 0.0,
            len(plans[i]),
        )
        for i in range(len(data))
    ]
