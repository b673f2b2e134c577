"""On-device SGD, shared by the methods that backpropagate on devices.

Minibatch SGD over the labeled samples a device holds, optionally with
FedProx's proximal term ``mu/2 * ||w - w_anchor||^2`` that keeps the local
model near the model it started from.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from flwr.app import MetricRecord, RecordDict
from pydantic import Field

from basemodel.flops import BACKWARD_FACTOR, head_forward_flops
from strategies import wire
from strategies.base import MethodParams, Weights
from strategies.records import record_of


class LocalTrainingParams(MethodParams):
    """How a device trains: epochs over its labeled samples, SGD step, minibatch size."""

    local_epochs: int = Field(default=1, ge=1, le=100)
    lr: float = Field(default=0.01, gt=0)
    batch_size: int = Field(default=16, ge=1)


def train_locally(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: LocalTrainingParams,
    seed: int,
    proximal_mu: float = 0.0,
    anchor: Weights | None = None,
    only: str = "",
) -> tuple[float, int]:
    """Train ``model`` in place; returns the mean task loss and the backward passes run.

    ``only`` restricts training to parameters whose name starts with it (e.g. ``"head."``).
    """
    trained = [p for name, p in model.named_parameters() if name.startswith(only)]
    loss_fn = torch.nn.CrossEntropyLoss()
    anchors = None
    if proximal_mu > 0 and anchor is not None:
        anchors = [(p, anchor[name].detach()) for name, p in model.named_parameters()]
    model.train()
    losses, passes = [], 0
    for batch in minibatches(len(y), params, seed):
        task_loss = loss_fn(model(x[batch]), y[batch])
        loss = task_loss
        if anchors is not None:
            proximal = sum((p - a).pow(2).sum() for p, a in anchors)
            loss = task_loss + 0.5 * proximal_mu * proximal
        sgd_step(trained, loss, params.lr)
        losses.append(task_loss.item())
        passes += 1
    model.eval()
    return (sum(losses) / len(losses) if losses else 0.0), passes


def sgd_step(trained: list[torch.Tensor], loss: torch.Tensor, lr: float) -> None:
    """One plain SGD step on ``loss``: ``p -= lr * grad``, gradients cleared first.

    The update ``torch.optim.SGD`` makes without momentum or weight decay
    (``param.add_(grad, alpha=-lr)``), bit for bit, without building an
    optimizer per device-round (that was 5% of a head-only FedAvg run).
    """
    for p in trained:
        p.grad = None
    loss.backward()
    with torch.no_grad():
        for p in trained:
            if p.grad is not None:
                p.add_(p.grad, alpha=-lr)


def minibatches(count: int, params: LocalTrainingParams, seed: int) -> Iterator[torch.Tensor]:
    """Index batches for ``params.local_epochs`` seeded shuffles of ``count`` samples.

    Both training loops draw from here, so head-only and whole-model training
    see the same batches in the same order for the same seed.
    """
    generator = torch.Generator().manual_seed(seed)
    for _ in range(params.local_epochs):
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, params.batch_size):
            yield order[start : start + params.batch_size]


def update_reply(weights: Weights, examples: int, loss: float, **extra: int | float) -> RecordDict:
    """A device's training reply: its weights (or delta) and the metrics the cloud weighs by."""
    metrics: dict[str, int | float] = {wire.NUM_EXAMPLES: examples, wire.TRAIN_LOSS: loss}
    metrics.update(extra)
    return RecordDict({wire.ARRAYS: record_of(weights), wire.METRICS: MetricRecord(metrics)})


def train_head(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: LocalTrainingParams,
    seed: int,
) -> tuple[Weights, float, int]:
    """SGD on the editable head alone, the backbone frozen; returns the trained head.

    The same minibatches in the same order as ``train_locally(..., only="head.")``
    and so the same result, but the frozen backbone runs once, not once per
    step: its features do not change while the head trains.
    """
    head = model.head  # type: ignore[attr-defined]
    with torch.no_grad():
        features = model.backbone(x)  # type: ignore[attr-defined]
    head_params = list(head.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    losses, passes = [], 0
    for batch in minibatches(len(y), params, seed):
        loss = loss_fn(head(features[batch]), y[batch])
        sgd_step(head_params, loss, params.lr)
        losses.append(loss.item())
        passes += 1
    trained = {f"head.{k}": v.detach().clone() for k, v in head.state_dict().items()}
    return trained, (sum(losses) / len(losses) if losses else 0.0), passes


def head_training_flops(
    forward_per_sample: float, head: Weights, samples: int, epochs: int
) -> float:
    """A frozen backbone's forward once, plus forward and backward of the head per epoch."""
    head_forward = head_forward_flops(head)
    backbone = forward_per_sample - head_forward
    return samples * (backbone + (1.0 + BACKWARD_FACTOR) * head_forward * epochs)
