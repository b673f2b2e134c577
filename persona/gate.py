"""The edit gate: how much of its edit a device is served, calibrated on held-out episodes.

The adapter's held-out record can say that its edits hurt a context: on a
starting model that already covers the context, the edit only adds noise.
The gate acts on that record. For each context the cloud holds (clean
included) it keeps the share of the edit, among ``SCALES``, that scored best
on held-out episodes through the path a device is served (its nearest
prototype's head ``P(k)`` plus the scaled edit; 0 serves ``P(k)`` unedited),
and the context's mean window feature. In deployment the cloud never sees a
device's context, so a device's window is matched to the nearest context
mean and its edit is multiplied by that context's share. A window from a
context the cloud never saw gets the share of the context it looks most
like: the gate cannot know better, and says so nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from persona.adapter import PersonaAdapter, batched_head_forward, edited_heads, window_means
from persona.prototypes import PrototypeBank

SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class EditGate:
    """Per known context: its mean window feature ``(C, F)`` and its edit share ``(C,)``.

    ``accuracy`` holds the held-out accuracy of each context at each of
    ``SCALES`` ``(C, S)``, so a reader can see what the choice rests on.
    """

    means: torch.Tensor
    scales: torch.Tensor
    accuracy: torch.Tensor

    def share(self, window_mean: torch.Tensor) -> torch.Tensor:
        """The edit share of each window ``(B,)`` from its mean feature ``(B, F)``."""
        nearest = torch.cdist(window_mean, self.means.to(window_mean)).argmin(dim=1)
        return self.scales.to(window_mean)[nearest]

    def scaled(self, edits: list, summaries: torch.Tensor, kind: str) -> list:
        """``edits`` (batched per layer) with each device's row multiplied by its share."""
        share = self.share(window_means(summaries, kind))
        return [
            (dw * share.view(-1, 1, 1).to(dw), db * share.view(-1, 1).to(db)) for dw, db in edits
        ]

    def state(self) -> dict:
        return {"means": self.means, "scales": self.scales, "accuracy": self.accuracy}

    @classmethod
    def from_state(cls, state: dict) -> EditGate:
        return cls(state["means"], state["scales"], state["accuracy"])


@torch.no_grad()
def calibrate_gate(
    adapter: PersonaAdapter,
    bank: PrototypeBank,
    context: torch.Tensor,
    summaries: torch.Tensor,
    qx: torch.Tensor,
    qy: torch.Tensor,
) -> EditGate:
    """The gate from held-out episodes: ``context (E,)``, summaries, query batches.

    Ties between shares go to the larger one (closer to Persona as
    published); a context is only gated where a smaller share scored
    strictly better.
    """
    layer_codes = adapter.codes(summaries)[1]
    proto, _ = bank.nearest(layer_codes.flatten(1))
    bases = [(w[proto], b[proto]) for w, b in bank.heads]
    edits = adapter.generators(layer_codes, proto)
    per_scale = []
    for scale in SCALES:
        scaled = [(scale * dw, scale * db) for dw, db in edits]
        logits = batched_head_forward(qx, edited_heads(bases, scaled))
        per_scale.append((logits.argmax(-1) == qy).float().mean(dim=1))
    hits = torch.stack(per_scale, dim=1)  # (E, S)
    contexts = context.unique(sorted=True)
    accuracy = torch.stack([hits[context == c].mean(dim=0) for c in contexts])
    flipped = accuracy.flip(1)  # argmax takes the first maximum: the largest share
    best = len(SCALES) - 1 - flipped.argmax(dim=1)
    kind = adapter.config.summary
    means = torch.stack([window_means(summaries[context == c], kind).mean(dim=0) for c in contexts])
    return EditGate(means, torch.tensor(SCALES)[best], accuracy)
