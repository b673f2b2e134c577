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
    ``context_names``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    contexts: list[Transform]
    context_names: list[str]

    def rendered(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image under every context, with its label (a training set)."""
        images = torch.cat([transform(self.images) for transform in self.contexts])
        return images, self.labels.repeat(len(self.contexts))


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
