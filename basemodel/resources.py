"""What the cloud holds before deployment: the starting model, its data, known contexts.

Built by the simulator's world, read by methods with a cloud-side learner
(Persona's adapter training, ``cloud-retrain``). A plain container, so that
neither side needs the other's code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from basemodel.architecture import FleetModel

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LabeledShare:
    """A share of the cloud's labeled data and the contexts it can be rendered under.

    ``contexts`` are input transforms (the clean source first) named by
    ``context_names``. Where a context changes the labels too (a click stream
    whose users' interests turned: their histories and their clicks both
    change), each context's transform returns its own inputs and
    ``context_labels`` holds its labels. ``groups`` names the user each sample
    belongs to, where windows are per user (click streams); ``None`` for
    images, whose windows are drawn through a class prior.
    """

    images: torch.Tensor
    labels: torch.Tensor
    contexts: list[Transform]
    context_names: list[str]
    context_labels: list[torch.Tensor] | None = None
    groups: torch.Tensor | None = None

    def context(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs and labels under context ``index``."""
        labels = self.labels if self.context_labels is None else self.context_labels[index]
        return self.contexts[index](self.images), labels

    def rendered(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every sample under every context, with its label (a training set)."""
        pairs = [self.context(i) for i in range(len(self.contexts))]
        return torch.cat([x for x, _ in pairs]), torch.cat([y for _, y in pairs])


@dataclass(frozen=True)
class CloudResources:
    """The cloud's two labeled shares and the starting model trained on the first.

    ``base``: the data the starting model was trained on (clean, plus the base
    contexts). ``family``: data held out from it, under the shift family the
    cloud knows. ``pretrained_key`` identifies the starting model (for
    caches); ``window`` is a device's window size and ``dirichlet_alpha`` its
    label skew, so that cloud episodes look like devices' windows.
    """

    model: FleetModel
    num_classes: int
    base: LabeledShare
    family: LabeledShare
    dirichlet_alpha: float
    window: int
    pretrained_key: str
    seed: int
