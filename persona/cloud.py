"""Persona in deployment, cloud side: summaries in, (prototype, edit) per device out.

One batched adapter pass serves every device of a round. Assignment is by
nearest centroid or by smallest edit. Refinement (label-free) then updates
the bank: centroids every round; prototype heads accumulate their members'
mean edits and move every ``head_refresh_rounds`` rounds (so devices re-download
``P(k)`` only then); far codes spawn prototypes, close prototypes merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from basemodel.architecture import HeadWeights
from persona.adapter import PersonaAdapter, edit_norms, window_means
from persona.novelty import NoveltyDetector
from persona.prototypes import PrototypeBank, RefineConfig


class Assignment(NamedTuple):
    """What the cloud sends one device: prototype id and version, its head, the edit.

    The edit is row ``row`` of the round's batched edits, sliced when it is
    read (so answering 10,000 devices makes no per-device tensors).
    """

    proto_id: int
    version: int
    base: HeadWeights
    batch: HeadWeights
    row: int

    @property
    def edit(self) -> HeadWeights:
        return [(dw[self.row], db[self.row]) for dw, db in self.batch]


@dataclass(frozen=True)
class DeployRules:
    """How the cloud answers devices: the assignment rule and how often heads move.

    ``assignment`` is ``"nearest"`` (nearest centroid) or ``"smallest-edit"``
    (the prototype whose clipped edit is smallest); prototype heads take their
    members' accumulated edits every ``head_refresh_rounds`` rounds. With
    ``edits`` off (an ablation) devices get their prototype head and a zero edit.
    """

    assignment: str = "nearest"
    head_refresh_rounds: int = 10
    edits: bool = True


@dataclass
class RoundReport:
    prototypes: int = 0
    spawned: int = 0
    merged: int = 0
    head_refresh: bool = False
    members: dict[int, int] = field(default_factory=dict)


class PersonaCloud:
    """The adapter and the prototype bank, with the deployment-time rules."""

    def __init__(
        self,
        adapter: PersonaAdapter,
        bank: PrototypeBank,
        refine: RefineConfig,
        rules: DeployRules = DeployRules(),
        novelty: NoveltyDetector | None = None,
    ):
        if rules.assignment not in ("nearest", "smallest-edit"):
            raise ValueError(
                f"unknown assignment {rules.assignment!r}; valid: nearest, smallest-edit"
            )
        self.adapter = adapter.eval()
        self.bank = bank
        self.refine_config = refine
        self.novelty = novelty  # without one, refinement never spawns
        self.assignment = rules.assignment
        self.edits = rules.edits
        self.head_refresh_rounds = max(1, rules.head_refresh_rounds)
        self._pending = [(torch.zeros_like(w), torch.zeros_like(b)) for w, b in bank.heads]
        self._pending_count = torch.zeros(len(bank))

    def state(self) -> dict:
        """Everything refinement changes (for checkpoints; ``weights_only``-loadable)."""
        return {
            "bank": self.bank.state(),
            "adapter": self.adapter.state_dict(),
            "pending": [[w, b] for w, b in self._pending],
            "pending_count": self._pending_count,
            "novelty": self.novelty.state() if self.novelty is not None else {},
        }

    def load_state(self, state: dict) -> None:
        """Back to a ``state()``; spawns and merges may have changed the prototype count."""
        self.bank = PrototypeBank.from_state(state["bank"])
        self.adapter.generators.select([0] * len(self.bank))  # resize, then overwrite
        self.adapter.load_state_dict(state["adapter"])
        self._pending = [(w.clone(), b.clone()) for w, b in state["pending"]]
        self._pending_count = state["pending_count"].clone()
        if state.get("novelty"):
            self.novelty = NoveltyDetector.from_state(state["novelty"])

    def _assign(self, layer_codes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if self.assignment == "nearest" or len(self.bank) == 1:
            return self.bank.nearest(codes)[0]
        batch = codes.shape[0]
        norms = torch.stack(
            [
                edit_norms(self.adapter.generators(layer_codes, torch.full((batch,), k)))
                for k in range(len(self.bank))
            ],
            dim=1,
        )
        return norms.argmin(dim=1)

    def _spawn(
        self, codes: torch.Tensor, means: torch.Tensor, assigned: torch.Tensor, report: RoundReport
    ) -> None:
        """A window unlike every known one gets its own prototype (one per new context).

        Novelty is judged on window means (``persona.novelty``); the spawned
        window joins the references, so its look-alikes in the same batch or
        later rounds do not spawn again.
        """
        if self.novelty is None:
            return
        far = self.novelty.distance(means) > self.novelty.spawn_distance
        for i in torch.nonzero(far).flatten().tolist():
            if len(self.bank) >= self.refine_config.max_prototypes:
                break
            if not self.novelty.is_novel(means[i]):
                continue  # an earlier spawn of this batch already covers it
            self.novelty.remember(means[i])
            source = int(assigned[i])
            self.bank.spawn(codes[i], self.bank.head(source))
            self.adapter.generators.select(list(range(len(self.bank) - 1)) + [source])
            self._pending = [
                (
                    torch.cat([pw, torch.zeros_like(pw[:1])]),
                    torch.cat([pb, torch.zeros_like(pb[:1])]),
                )
                for pw, pb in self._pending
            ]
            self._pending_count = torch.cat([self._pending_count, torch.zeros(1)])
            assigned[i] = len(self.bank) - 1
            report.spawned += 1

    def _merge(self, report: RoundReport) -> None:
        while (pair := self.bank.closest_pair()) is not None:
            keep, drop, distance = pair
            if distance >= self.refine_config.merge_distance:
                break
            self.bank.merge(keep, drop)
            rest = [k for k in range(len(self.bank) + 1) if k != drop]
            self.adapter.generators.select(rest)
            self._pending = [(pw[rest], pb[rest]) for pw, pb in self._pending]
            self._pending_count = self._pending_count[rest]
            report.merged += 1

    @torch.no_grad()
    def respond(
        self, summaries: torch.Tensor, round_index: int
    ) -> tuple[list[Assignment], RoundReport]:
        """Edits for a batch of device summaries, then label-free refinement of the bank."""
        report = RoundReport()
        layer_codes = self.adapter.codes(summaries)[1]
        codes = layer_codes.flatten(1)
        assigned = self._assign(layer_codes, codes)
        if self.refine_config.enabled:
            means = window_means(summaries, self.adapter.config.summary)
            self._spawn(codes, means, assigned, report)
        edits = self.adapter.generators(layer_codes, assigned)
        if not self.edits:
            edits = [(torch.zeros_like(dw), torch.zeros_like(db)) for dw, db in edits]
        heads = {
            k: [(w.clone(), b.clone()) for w, b in self.bank.head(k)]
            for k in set(assigned.tolist())
        }
        ids, versions = self.bank.ids, self.bank.versions
        chosen = assigned.tolist()
        answers = [
            Assignment(ids[k], versions[k], heads[k], edits, i) for i, k in enumerate(chosen)
        ]
        for k in chosen:
            report.members[ids[k]] = report.members.get(ids[k], 0) + 1
        if self.refine_config.enabled:
            self._refine(codes, assigned, edits, round_index, report)
        report.prototypes = len(self.bank)
        return answers, report

    def _refine(self, codes, assigned, edits, round_index: int, report: RoundReport) -> None:
        eta = self.refine_config.eta
        self.bank.move_centroids(codes, assigned, eta)
        for k in set(assigned.tolist()):
            mask = assigned == k
            self._pending_count[k] += float(mask.sum())
            for layer, (dw, db) in enumerate(edits):
                self._pending[layer][0][k] += dw[mask].sum(dim=0)
                self._pending[layer][1][k] += db[mask].sum(dim=0)
        if round_index % self.head_refresh_rounds == 0:
            for k in torch.nonzero(self._pending_count > 0).flatten().tolist():
                count = float(self._pending_count[k])
                mean_edit = [(pw[k] / count, pb[k] / count) for pw, pb in self._pending]
                self.bank.move_head(k, mean_edit, eta)
            for pw, pb in self._pending:
                pw.zero_()
                pb.zero_()
            self._pending_count.zero_()
            report.head_refresh = True
        self._merge(report)
