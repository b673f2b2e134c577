"""What the cloud holds before deployment: the starting model, its data, known contexts.

Built by the simulator's world, read by methods with a cloud-side learner
(Persona's adapter training). A plain container, so that neither side needs
the other's code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from basemodel.architecture import FleetModel

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CloudResources:
    """The cloud's labeled data and the contexts it can render it under.

    ``contexts`` are input transforms (the clean source first) named by
    ``context_names``; ``pretrained_key`` identifies the starting model (for
    caches); ``window`` is a device's window size and ``dirichlet_alpha`` its
    label skew, so that cloud episodes look like devices' windows.
    """

    model: FleetModel
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    contexts: list[Transform]
    context_names: list[str]
    dirichlet_alpha: float
    window: int
    pretrained_key: str
