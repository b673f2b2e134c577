"""``persona``: prototype-based, backprop-free parameter editing (and its ablations).

A round has two phases. First the cloud asks the sampled devices for a
summary of their latest unlabeled window (backbone features or their pooled
statistics). Then, in one batched adapter pass, it computes every device's
code, prototype and clipped edit, refines the prototypes without labels, and
sends each device its prototype id and version, the edit, and ``P(k)`` only if
the device does not hold that version. The device sets its head to
``P(k) + dW`` under ``torch.inference_mode()``: no gradient, ever.

Variants (same parameters, some fixed): ``persona-noproto`` (one base head, a
DUET-style edit), ``persona-nocross`` (independent per-layer codes),
``persona-refine`` (label-free refinement of the prototypes during deployment:
off in ``persona``, where it did not help on the flagship's tuning seed), ``persona-noedit``
(prototype heads only: what the per-device edit adds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any, Literal

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from pydantic import Field, model_validator
from torch.utils.flop_counter import FlopCounterMode

from basemodel.architecture import head_forward, head_keys
from basemodel.cloud_device import deterministic_kernels
from basemodel.threads import fixed_threads
from persona.adapter import AdapterConfig, summarize_window, window_means
from persona.cloud import Assignment, DeployRules, PersonaCloud
from persona.gate import SCALES, EditGate
from persona.pretraining import pretrain_persona
from persona.prototypes import RefineConfig
from persona.training import AdapterDiagnostics, PersonaTrainConfig
from strategies import wire
from strategies.base import (
    CloudSetup,
    DeviceStep,
    Method,
    MethodParams,
    NodeSampler,
    ServeStep,
    SettingsError,
    TrainOutcome,
    TwoPhaseDevice,
    TwoPhaseStrategy,
    Weights,
    messages_to,
)
from strategies.cohort_serving import heads_cohort
from strategies.device_kit import DeviceKit
from strategies.records import record_of, tensor_of, weights_of

# Persona's records (its payload keys; the shared ones are in strategies.wire).
SUMMARY = "summary"  # ArrayRecord: the device's window summary (features or statistics)
HELD_PROTO = "held-proto"  # ConfigRecord: prototype id and version the device holds
EDIT = "edit"  # ArrayRecord: clipped edit per head layer
PROTO = "proto"  # ConfigRecord: assigned prototype id and version
PROTO_HEAD = "proto-head"  # ArrayRecord: P(k), sent only when the device lacks it
EDIT_REF = "edit-ref"  # ArrayRecord: mean feature of the window the edit was made for
PROTO_ID = "id"
PROTO_VERSION = "version"
EXPIRY_DISTANCE = "expiry-distance"

log = logging.getLogger("persona_fleet")
NO_PROTO = -1


def _library(config: type, name: str) -> Any:
    """The default of field ``name`` of a ``persona`` config: defaults live in the library."""
    return next(f.default for f in fields(config) if f.name == name)


class PersonaParams(MethodParams):
    """Persona's settings: the method, its deployment rules and its pretraining budget.

    Defaults come from the ``persona`` library's own configs (``AdapterConfig``,
    ``PersonaTrainConfig``, ``RefineConfig``, ``DeployRules``); the deployment
    rules that exist only on the fleet (edit precision, expiry) are defined here.
    """

    prototypes: int = Field(default=_library(PersonaTrainConfig, "prototypes"), ge=1, le=64)
    assignment: Literal["nearest", "smallest-edit"] = _library(DeployRules, "assignment")
    clip: float = Field(default=_library(AdapterConfig, "clip"), gt=0)
    summary: Literal["features", "stats"] = _library(AdapterConfig, "summary")
    rank: int = Field(default=_library(AdapterConfig, "rank"), ge=0)
    edit_precision: Literal["float16", "float32"] = "float16"
    # The uploaded window summary's precision: float16 halves the largest upload
    # (the cloud computes in float32 on the rounded values).
    summary_precision: Literal["float16", "float32"] = "float16"
    code_dim: int = Field(default=_library(AdapterConfig, "code_dim"), ge=1)
    cross_layer: bool = _library(AdapterConfig, "cross_layer")
    refine: bool = _library(RefineConfig, "enabled")
    eta: float = Field(default=_library(RefineConfig, "eta"), ge=0, le=1)
    head_refresh_rounds: int = Field(default=_library(DeployRules, "head_refresh_rounds"), ge=1)
    expiry: bool = True
    # After expiry: serve P(k) (bounded, fitted to the cluster) or the factory head.
    # On the flagship's tuning seed 100, P(k) gave acc_post_shift 0.6582 against 0.6557
    # and a dip of 67.8% against 66.1% (benchmarks/tune_baselines.py
    # --grid persona.on_expiry=prototype,factory).
    on_expiry: Literal["prototype", "factory"] = "prototype"
    edits: bool = True
    # "calibrated": each edit is scaled by the share that scored best on held-out
    # episodes for the known context its window is nearest (persona.gate); 0
    # serves the prototype head unedited where the edit hurt that context.
    edit_gate: Literal["none", "calibrated"] = "none"
    prototype_heads: Literal["generated", "finetuned"] = _library(
        PersonaTrainConfig, "prototype_heads"
    )
    expiry_factor: float = Field(default=_library(PersonaTrainConfig, "expiry_factor"), gt=0)
    spawn_factor: float = Field(default=_library(PersonaTrainConfig, "spawn_factor"), gt=0)
    merge_factor: float = Field(default=_library(PersonaTrainConfig, "merge_factor"), ge=0)
    max_prototypes: int = Field(default=_library(RefineConfig, "max_prototypes"), ge=1)
    pretrain_steps: int = Field(default=_library(PersonaTrainConfig, "steps"), ge=0)
    generator_steps: int = Field(default=_library(PersonaTrainConfig, "generator_steps"), ge=0)
    prototype_episodes: int = Field(
        default=_library(PersonaTrainConfig, "prototype_episodes"), ge=2
    )
    lr: float = Field(default=_library(PersonaTrainConfig, "lr"), gt=0)

    @model_validator(mode="after")
    def _room_to_refine(self) -> PersonaParams:
        if self.refine and self.max_prototypes < self.prototypes:  # the cap could never hold
            raise ValueError(
                f"max_prototypes: {self.max_prototypes} is below prototypes "
                f"({self.prototypes}); raise it or lower prototypes"
            )
        return self

    @model_validator(mode="after")
    def _enough_episodes(self) -> PersonaParams:
        # k-means over the prototype episodes cannot find more clusters than episodes;
        # cutting the count without a word would run another method than the one asked.
        if self.prototypes > self.prototype_episodes:
            raise ValueError(
                f"prototypes: {self.prototypes} prototypes from {self.prototype_episodes} "
                "prototype episodes; raise prototype_episodes or lower prototypes"
            )
        return self


PRECISIONS = {"float16": torch.float16, "float32": torch.float32}


def window_mean(summary: torch.Tensor, kind: str) -> torch.Tensor:
    """The mean backbone feature of the window a summary describes."""
    return window_means(summary.unsqueeze(0), kind)[0]


def _as_record(
    weights: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype = torch.float32
) -> ArrayRecord:
    named = {}
    for (w_key, b_key), (w, b) in zip(head_keys(len(weights)), weights, strict=True):
        named[w_key], named[b_key] = w.to(dtype).contiguous(), b.to(dtype).contiguous()
    return record_of(named)


class PersonaStrategy(TwoPhaseStrategy):
    """The cloud half: summaries in, one batched adapter pass, an edit per device out."""

    def __init__(
        self,
        cloud: PersonaCloud,
        sample_nodes: NodeSampler,
        summary: str,
        expiry_distance: float,
        edit_dtype: torch.dtype = torch.float16,
        adapter_record: dict[str, Any] | None = None,
    ):
        self.cloud = cloud
        self._adapter_record = adapter_record or {}
        self._edit_dtype = edit_dtype
        self._sample_nodes = sample_nodes
        self._summary = summary
        self._expiry_distance = expiry_distance
        self._answers: dict[int, tuple[Assignment, bool, torch.Tensor]] = {}

    def checkpoint_state(self) -> dict:
        """The prototype bank and adapter as refinement left them (between rounds)."""
        return {"cloud": self.cloud.state()}

    def restore_state(self, state: dict) -> None:
        self.cloud.load_state(state["cloud"])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        content = RecordDict({"config": ConfigRecord({"summary": self._summary})})
        return messages_to(self._sample_nodes(server_round), content)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self._answers = {}
        replies = list(replies)
        parsed = [(r, *p) for r in replies if (p := self._parse(r)) is not None]
        malformed = len(replies) - len(parsed)
        if not parsed:
            return None, MetricRecord({"prototypes": len(self.cloud.bank), "malformed": malformed})
        summaries = torch.stack([summary for _, summary, _ in parsed])
        with (
            fixed_threads(),
            deterministic_kernels(self.cloud.device),
            FlopCounterMode(display=False) as counter,
        ):
            answers, report = self.cloud.respond(summaries, server_round, self._edit_dtype)
        self.spend(counter.get_total_flops())
        downloads = 0
        for (reply, summary, holds), answer in zip(parsed, answers, strict=True):
            needs_head = holds != (answer.proto_id, answer.version)
            downloads += needs_head
            node = int(reply.metadata.src_node_id)
            self._answers[node] = (answer, needs_head, window_mean(summary, self._summary))
        metrics = {
            "malformed": malformed,
            "prototypes": report.prototypes,
            "spawned": report.spawned,
            "merged": report.merged,
            "head-downloads": downloads,
        }
        metrics.update({f"members-{k}": v for k, v in sorted(report.members.items())})
        return None, MetricRecord(metrics)

    def validate_reply(self, reply: Message) -> str | None:
        """Why a summary cannot be used (see ``_parse``), or ``None``."""
        if reply.metadata.message_type == wire.TRAIN_APPLY:
            return None  # the second phase carries no payload
        return None if self._parse(reply) is not None else "malformed summary"

    def _parse(self, reply: Message) -> tuple[torch.Tensor, tuple[int, int]] | None:
        """A reply's summary and held prototype, or ``None`` if it is malformed.

        A malformed summary (missing record, wrong shape, NaN or infinity) must
        not reach the batched adapter pass, where it would spoil every device's
        answer; the device is simply not answered this round.
        """
        try:
            summary = tensor_of(reply.content[SUMMARY]["summary"]).float()
            held = reply.content[HELD_PROTO]
            holds = (int(held[PROTO_ID]), int(held[PROTO_VERSION]))
        except (KeyError, TypeError, ValueError):
            return None
        feature_dim = self.cloud.adapter.config.feature_dim
        expected_last = feature_dim if self._summary == "features" else 2 * feature_dim
        rank = 2 if self._summary == "features" else 1
        if summary.dim() != rank or summary.shape[-1] != expected_last:
            return None
        if not bool(torch.isfinite(summary).all()):
            return None
        return summary, holds

    def configure_apply(self, server_round: int, grid: Grid) -> Iterable[Message]:
        """The second phase: each device's own prototype, edit and (if needed) ``P(k)``."""
        messages = []
        for node, (answer, needs_head, mean) in sorted(self._answers.items()):
            content = RecordDict(
                {
                    PROTO: ConfigRecord(
                        {
                            PROTO_ID: answer.proto_id,
                            PROTO_VERSION: answer.version,
                            EXPIRY_DISTANCE: self._expiry_distance,
                        }
                    ),
                    EDIT: _as_record(answer.edit, self._edit_dtype),
                    EDIT_REF: record_of({"mean": mean.to(self._edit_dtype)}),
                }
            )
            if needs_head:  # P(k) travels at the edit's precision, like the edit itself
                content[PROTO_HEAD] = _as_record(answer.base, self._edit_dtype)
            messages.append(Message(content, dst_node_id=node, message_type=wire.TRAIN_APPLY))
        return messages

    def aggregate_apply(self, server_round: int, replies: Iterable[Message]) -> MetricRecord:
        return MetricRecord({"applied": len(list(replies))})

    def summary(self) -> None:
        log.info(
            "Persona: %d prototypes, %s assignment", len(self.cloud.bank), self.cloud.assignment
        )

    def run_facts(self) -> dict[str, Any]:
        """The prototype count at the end and the adapter's held-out record (for the report)."""
        return {"prototypes": len(self.cloud.bank), "adapter_heldout": self._adapter_record}


class PersonaDevice(TwoPhaseDevice):
    """The device half: summarize the window; later, set the head to ``P(k) + dW``."""

    def train(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        """Every device's window summary (the backbone is loaded once for the cohort)."""
        if not cohort:
            return []
        features = _features(cohort[0].kit, [step.inputs for step in cohort])
        return [self._summarize(step, f) for step, f in zip(cohort, features, strict=True)]

    def apply(self, cohort: Sequence[DeviceStep]) -> list[TrainOutcome]:
        return [self._apply_edit(step) for step in cohort]

    def _summarize(self, step: DeviceStep, features: torch.Tensor) -> TrainOutcome:
        assert isinstance(step.params, PersonaParams)
        summary = summarize_window(features, step.params.summary).to(
            PRECISIONS[step.params.summary_precision]
        )
        held = step.view.records.get(HELD_PROTO)
        holds = (
            {
                PROTO_ID: int(held[PROTO_ID]),
                PROTO_VERSION: int(held[PROTO_VERSION]),
            }
            if isinstance(held, ConfigRecord)
            else {PROTO_ID: NO_PROTO, PROTO_VERSION: NO_PROTO}
        )
        reply = RecordDict(
            {
                SUMMARY: record_of({"summary": summary}),
                HELD_PROTO: ConfigRecord(holds),
            }
        )
        return TrainOutcome(reply, None, step.kit.backbone_flops_per_sample * len(step.inputs), 0)

    def _apply_edit(self, step: DeviceStep) -> TrainOutcome:
        proto = step.content[PROTO]
        if PROTO_HEAD in step.content:
            base = step.content[PROTO_HEAD]
        else:
            held, base = (
                step.view.records.get(HELD_PROTO),
                step.view.records.get(PROTO_HEAD),
            )
            if (
                not isinstance(held, ConfigRecord)
                or not isinstance(base, ArrayRecord)
                or (int(held[PROTO_ID]), int(held[PROTO_VERSION]))
                != (int(proto[PROTO_ID]), int(proto[PROTO_VERSION]))
            ):
                raise RuntimeError("edit for a prototype version the device does not hold")
        edit = weights_of(step.content[EDIT])
        with torch.inference_mode():
            base_weights = weights_of(base)
            head = {key: base_weights[key].float() + edit[key].float() for key in edit}
        records = {
            HELD_PROTO: ConfigRecord(
                {
                    PROTO_ID: int(proto[PROTO_ID]),
                    PROTO_VERSION: int(proto[PROTO_VERSION]),
                    EXPIRY_DISTANCE: float(proto[EXPIRY_DISTANCE]),
                }
            ),
            PROTO_HEAD: base,
            EDIT_REF: step.content[EDIT_REF],
        }
        flops = float(sum(t.numel() for t in edit.values()))  # one add per edited weight
        return TrainOutcome(RecordDict(), head, flops, 0, records)

    def serving_weights(self, step: ServeStep) -> Weights | None:
        """The weights to predict ``inputs`` with: the edited head while it is fresh."""
        (features,) = _features(step.kit, [step.inputs])
        return self._serving(step, features)

    def requests_service(self, cohort: Sequence[ServeStep]) -> list[bool]:
        """A device asks for a new edit when its current one has expired (see ``_serving``)."""
        if not cohort:
            return []
        features = _features(cohort[0].kit, [step.inputs for step in cohort])
        return [self._stale(step, f) for step, f in zip(cohort, features, strict=True)]

    def _stale(self, step: ServeStep, features: torch.Tensor) -> bool:
        """Whether the device holds an edit made for a window its inputs have left."""
        assert isinstance(step.params, PersonaParams)
        view = step.view
        ref, held = view.records.get(EDIT_REF), view.records.get(HELD_PROTO)
        if not step.params.expiry or view.held is None or not isinstance(ref, ArrayRecord):
            return False
        mean = tensor_of(ref["mean"]).float()
        return float((features.mean(dim=0) - mean).norm()) > float(held[EXPIRY_DISTANCE])

    def _serving(self, step: ServeStep, features: torch.Tensor) -> Weights | None:
        """The edited head while it is fresh, else its prototype head (or the factory's).

        An edit is made for the window the device summarized. When the mean
        feature of the device's current inputs has moved further than the
        cloud's expiry distance from that window's, the device's data has
        shifted: the edit no longer fits, and the device serves its prototype
        head ``P(k)`` (``on_expiry: prototype``, bounded like every edit and
        fitted to its cluster) or the factory head (``on_expiry: factory``)
        until its next edit, which it asks for (``requests_service``). This
        uses only unlabeled inputs, already computed for the prediction itself.
        """
        assert isinstance(step.params, PersonaParams)
        view = step.view
        if not self._stale(step, features):
            return view.held
        prototype = view.records.get(PROTO_HEAD)
        if step.params.on_expiry == "factory" or not isinstance(prototype, ArrayRecord):
            return None
        return {key: value.float() for key, value in weights_of(prototype).items()}

    def predict(self, cohort: Sequence[ServeStep]) -> list[torch.Tensor]:
        """Backbone features once per device (for expiry and prediction), then its head."""
        if not cohort:
            return []
        kit = cohort[0].kit
        features = _features(kit, [step.inputs for step in cohort])
        layers = len(kit.load().head.layers)
        heads = []
        for step, f in zip(cohort, features, strict=True):
            weights = {**kit.pretrained, **(self._serving(step, f) or {})}
            heads.append([(weights[w], weights[b]) for w, b in head_keys(layers)])
        if kit.cohort_device is not None:  # every device's head side by side
            return heads_cohort(features, heads, kit.cohort_device)
        return [head_forward(f, head) for f, head in zip(features, heads, strict=True)]


def _features(kit: DeviceKit, windows: list[torch.Tensor]) -> list[torch.Tensor]:
    """Backbone features of several devices' inputs (the frozen factory backbone, loaded once)."""
    with torch.inference_mode():
        backbone = kit.load().backbone
        return [backbone(window) for window in windows]


def build_cloud(setup: CloudSetup, params: PersonaParams) -> PersonaStrategy:
    """Pretrain (or load) Persona for this starting model and wrap it as a Strategy."""
    resources = setup.resources
    model = resources.model
    widths = model.head.widths()
    adapter_config = AdapterConfig(
        feature_dim=widths[0],
        head_widths=tuple(widths),
        code_dim=params.code_dim,
        clip=params.clip,
        rank=params.rank,
        cross_layer=params.cross_layer,
        summary=params.summary,
    )
    train_config = PersonaTrainConfig(
        steps=params.pretrain_steps,
        window=resources.window,
        lr=params.lr,
        prototypes=params.prototypes,
        prototype_episodes=params.prototype_episodes,
        generator_steps=params.generator_steps,
        dirichlet_alpha=resources.dirichlet_alpha,
        spawn_factor=params.spawn_factor,
        merge_factor=params.merge_factor,
        expiry_factor=params.expiry_factor,
        prototype_heads=params.prototype_heads,
    )
    family = resources.family
    description = {"base": resources.pretrained_key, "contexts": family.context_names}
    with fixed_threads():
        state = pretrain_persona(
            model.backbone,
            model.head,
            family,
            resources.num_classes,
            adapter_config,
            train_config,
            resources.seed,
            description,
        )
    log.info(
        "persona cloud state: cache key %s (episode loss %.3f)",
        state.cache_path.stem.removeprefix("persona-"),
        state.final_loss,
    )
    refine = RefineConfig(
        enabled=params.refine,
        eta=params.eta,
        merge_distance=state.merge_distance,
        max_prototypes=params.max_prototypes,
    )
    record = {}
    if state.diagnostics is not None:
        _log_diagnostics(state.diagnostics, family.context_names)
        record = heldout_record(state.diagnostics, family.context_names)
    rules = DeployRules(params.assignment, params.head_refresh_rounds, params.edits)
    gate = state.gate if params.edit_gate == "calibrated" else None
    if params.edit_gate == "calibrated" and gate is None:
        raise SettingsError(
            "persona: edit_gate calibrated needs held-out episodes, and the cloud's family "
            "share has none; set the family share larger or edit_gate: none"
        )
    if gate is not None:
        record["gate"] = gate_record(gate, family.context_names)
        _log_gate(record["gate"])
    cloud = PersonaCloud(
        state.adapter, state.bank, refine, rules, state.novelty, setup.cloud_device, gate
    )
    dtype = PRECISIONS[params.edit_precision]
    return PersonaStrategy(
        cloud, setup.sample_nodes, params.summary, state.expiry_distance, dtype, record
    )


def heldout_record(d: AdapterDiagnostics, names: list[str]) -> dict[str, Any]:
    """The adapter's held-out scores as plain numbers: overall and per family context."""
    return {
        "loss": d.heldout_loss,
        "accuracy_edited": d.heldout_acc_edited,
        "accuracy_unedited": d.heldout_acc_base,
        "best_step": d.best_step,
        "by_context": {
            (names[c] if c < len(names) else str(c)): {"edited": edited, "unedited": base}
            for c, (edited, base) in sorted(d.per_context.items())
        },
    }


def gate_record(gate: EditGate, names: list[str]) -> dict[str, Any]:
    """The gate's choice per known context, with the held-out accuracy at each share."""
    return {
        (names[c] if c < len(names) else str(c)): {
            "share": float(gate.scales[c]),
            "accuracy_by_share": dict(zip(SCALES, gate.accuracy[c].tolist(), strict=True)),
        }
        for c in range(len(gate.scales))
    }


def _log_gate(shares: dict[str, Any]) -> None:
    chosen = ", ".join(f"{name} {entry['share']:g}" for name, entry in shares.items())
    log.info("persona edit gate (share of the edit served, by nearest context): %s", chosen)


def _log_diagnostics(d: AdapterDiagnostics, names: list[str]) -> None:
    """The adapter's held-out record in the run log: do its edits help on unseen images?"""
    per_context = ", ".join(
        f"{names[c] if c < len(names) else c} {100 * edited:.1f}% (unedited {100 * base:.1f}%)"
        for c, (edited, base) in sorted(d.per_context.items())
    )
    log.info(
        "persona adapter on held-out episodes: loss %.3f, accuracy %.1f%% with its edits, "
        "%.1f%% without; best at step %d (stopped at %d); by context: %s",
        d.heldout_loss,
        100 * d.heldout_acc_edited,
        100 * d.heldout_acc_base,
        d.best_step,
        d.stopped_at,
        per_context,
    )


SUBJECT = "persona"


def _variant(name: str, summary: str, forced: dict, colour: str) -> Method:
    """Persona (``forced`` empty) or one of its ablations, which fixes the ``forced`` keys."""

    def cloud(setup: CloudSetup) -> PersonaStrategy:
        assert isinstance(setup.params, PersonaParams)
        # A value given for a forced key was refused by the registry; this fills the default.
        return build_cloud(setup, setup.params.model_copy(update=forced))

    return Method(
        name=name,
        summary=summary,
        params=PersonaParams,
        cloud=cloud,
        device=PersonaDevice(),
        requests_service=True,
        cloud_devices=("cpu", "cuda"),
        fixed_params=forced,
        role="subject" if name == SUBJECT else "method",
        variant_of=None if name == SUBJECT else SUBJECT,
        colour=colour,
    )


METHODS = [
    _variant(SUBJECT, "prototype-based backprop-free editing", {}, "#d62728"),
    _variant(
        "persona-noproto",
        "one base head, DUET-style edit",
        {"prototypes": 1, "refine": False},
        "#ff9896",
    ),
    _variant("persona-nocross", "independent per-layer codes", {"cross_layer": False}, "#e377c2"),
    _variant("persona-refine", "prototypes refined without labels", {"refine": True}, "#f7b6d2"),
    _variant(
        "persona-noedit", "prototype heads only, no per-device edit", {"edits": False}, "#7b1f1f"
    ),
    _variant(
        "persona-ungated",
        "every edit served whole (no edit gate)",
        {"edit_gate": "none"},
        "#fd8d3c",
    ),
]
