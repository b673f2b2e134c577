"""Persona in deployment, cloud side: summaries in, (prototype, edit) per device out.

One batched adapter pass serves every device of a round. Assignment is by
nearest centroid or by smallest edit; an edit gate (``persona.gate``), where
the method asks for one, scales each edit by its context's calibrated share.
Refinement (label-free) then updates
the bank: centroids every round; prototype heads accumulate their members'
mean edits and move every ``head_refresh_rounds`` rounds (so devices re-download
``P(k)`` only then); far codes spawn prototypes, close prototypes merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from basemodel.architecture import HeadWeights
from basemodel.cloud_device import HOST
from persona.adapter import PersonaAdapter, edit_norms, window_means
from persona.gate import EditGate
from persona.novelty import NoveltyDetector
from persona.prototypes import PrototypeBank, RefineConfig


def _on(device: torch.device, value: Any) -> Any:
    """``value`` (tensors in dicts and lists) with every tensor on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _on(device, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_on(device, v) for v in value]
    return value


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
    """The adapter and the prototype bank, with the deployment-time rules.

    They live on ``device`` (the CPU, or a GPU for a large fleet's round);
    ``respond`` takes summaries and gives answers on the CPU, where the
    messages are built, and ``state`` is on the CPU, so that a checkpoint
    loads on any machine.
    """

    def __init__(
        self,
        adapter: PersonaAdapter,
        bank: PrototypeBank,
        refine: RefineConfig,
        rules: DeployRules = DeployRules(),
        novelty: NoveltyDetector | None = None,
        device: torch.device = HOST,
        gate: EditGate | None = None,
    ):
        if rules.assignment not in ("nearest", "smallest-edit"):
            raise ValueError(
                f"unknown assignment {rules.assignment!r}; valid: nearest, smallest-edit"
            )
        self.device = device
        self.adapter = adapter.eval().to(device)
        self.bank = bank.to(device)
        self.refine_config = refine
        self.novelty = novelty.to(device) if novelty is not None else None  # None: never spawns
        self.assignment = rules.assignment
        self.edits = rules.edits
        self.gate = gate  # None: every edit is served whole
        self.head_refresh_rounds = max(1, rules.head_refresh_rounds)
        self._pending = [(torch.zeros_like(w), torch.zeros_like(b)) for w, b in bank.heads]
        self._pending_count = torch.zeros(len(bank), device=device)

    def state(self) -> dict:
        """Everything refinement changes, on the CPU (checkpoints; ``weights_only``-loadable)."""
        state = {
            "bank": self.bank.state(),
            "adapter": self.adapter.state_dict(),
            "pending": [[w, b] for w, b in self._pending],
            "pending_count": self._pending_count,
            "novelty": self.novelty.state() if self.novelty is not None else {},
        }
        return _on(HOST, state)

    def load_state(self, state: dict) -> None:
        """Back to a ``state()``; spawns and merges may have changed the prototype count."""
        state = _on(self.device, state)
        self.bank = PrototypeBank.from_state(state["bank"])
        self.adapter.generators.select([0] * len(self.bank))  # resize, then overwrite
        self.adapter.load_state_dict(state["adapter"])
        self._pending = [(w.clone(), b.clone()) for w, b in state["pending"]]
        self._pending_count = state["pending_count"].clone()
        if state.get("novelty"):
            self.novelty = NoveltyDetector.from_state(state["novelty"])

    def assign(self, layer_codes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Each device's prototype index ``(B,)``, by the deployment rule, on the cloud's device."""
        if self.assignment == "nearest" or len(self.bank) == 1:
            return self.bank.nearest(codes)[0]
        batch = codes.shape[0]
        ids = [codes.new_full((batch,), k, dtype=torch.long) for k in range(len(self.bank))]
        norms = torch.stack(
            [edit_norms(self.adapter.generators(layer_codes, proto)) for proto in ids],
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
            self._pending_count = torch.cat([self._pending_count, self._pending_count.new_zeros(1)])
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
        self, summaries: torch.Tensor, round_index: int, wire_dtype: torch.dtype = torch.float32
    ) -> tuple[list[Assignment], RoundReport]:
        """Edits for a batch of device summaries, then label-free refinement of the bank.

        ``summaries`` may be on the CPU; the answers' tensors are on the CPU,
        edits at ``wire_dtype`` (what they travel at: converting the batch
        before it leaves a GPU halves the copy for float16; the values are
        those a per-device conversion gives). Refinement uses float32 edits.
        """
        report = RoundReport()
        summaries = summaries.to(self.device)
        layer_codes = self.adapter.codes(summaries)[1]
        codes = layer_codes.flatten(1)
        assigned = self.assign(layer_codes, codes)
        if self.refine_config.enabled:
            means = window_means(summaries, self.adapter.config.summary)
            self._spawn(codes, means, assigned, report)
        edits = self.adapter.generators(layer_codes, assigned)
        if self.gate is not None:
            edits = self.gate.scaled(edits, summaries, self.adapter.config.summary)
        if not self.edits:
            edits = [(torch.zeros_like(dw), torch.zeros_like(db)) for dw, db in edits]
        chosen = assigned.tolist()
        heads = {  # copies: refinement moves the bank's heads below
            k: [(w.to(HOST, copy=True), b.to(HOST, copy=True)) for w, b in self.bank.head(k)]
            for k in set(chosen)
        }
        sent = [(dw.to(HOST, wire_dtype), db.to(HOST, wire_dtype)) for dw, db in edits]
        ids, versions = self.bank.ids, self.bank.versions
        answers = [Assignment(ids[k], versions[k], heads[k], sent, i) for i, k in enumerate(chosen)]
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
