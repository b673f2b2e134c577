"""Label-free, backprop-free adaptation at prediction time: what em-prior, t3a and lame share.

These are Persona's real competitors for its "no labels, no backprop" claim.
Their cloud sends nothing (as ``static``'s); a device never trains and sends
no byte. Each time it predicts, it adapts its output to the batch it is about
to predict, using only those unlabeled inputs (the rule every method shares:
a device may look at the inputs it must predict, never at their labels), and
keeps nothing from one batch to the next.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch
from flwr.app import RecordDict

from strategies.base import (
    DeviceHalf,
    DeviceStep,
    MethodParams,
    ServeStep,
    TrainOutcome,
)


class TestTimeDevice(DeviceHalf):
    """Runs the factory model and adapts its last layer's output to the batch at hand."""

    def train(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        """Never asked (its cloud sends nothing); an empty answer if it is."""
        return [TrainOutcome(RecordDict(), None, 0.0, 0) for _ in cohort]

    def predict(self, cohort: Sequence[ServeStep]) -> list[torch.Tensor]:
        if not cohort:
            return []
        model = cohort[0].kit.load()
        *hidden_layers, last = model.head.layers
        logits = []
        for step in cohort:
            hidden = model.backbone(step.inputs)
            for layer in hidden_layers:
                hidden = torch.relu(layer(hidden))
            logits.append(self.adapt(last(hidden), hidden, last.weight, last.bias, step.params))
        return logits

    @abstractmethod
    def adapt(
        self,
        logits: torch.Tensor,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        params: MethodParams,
    ) -> torch.Tensor:
        """Adjusted logits for one batch: ``logits`` ``(n, K)`` = ``hidden`` ``(n, d)``
        through the last layer (``weight`` ``(K, d)``, ``bias`` ``(K,)``)."""
