"""What a device half computes with: shared decoded weights and a process's scratch model.

Runtime helpers the engine hands to every method's device half on each step
(``DeviceStep.kit`` and ``.arrays``, ``ServeStep.kit`` in ``strategies.base``):
they save decoding and model building per device, and hold no device's state.
"""

from __future__ import annotations

import copy

import torch
from flwr.app import ArrayRecord

from basemodel.architecture import FleetModel, Weights
from strategies.records import weights_of


class ArrayCache:
    """Record -> torch weights, converted once per cohort.

    Devices of a round usually receive the same record (FedAvg's global model);
    decoding it once, and giving every device the same tensors, saves the work
    and the memory. The tensors are shared: read them, never change them in place.
    """

    def __init__(self) -> None:
        self._decoded: dict[int, tuple[ArrayRecord, Weights]] = {}

    def torch(self, record: ArrayRecord) -> Weights:
        hit = self._decoded.get(id(record))
        if hit is None or hit[0] is not record:
            hit = self._decoded[id(record)] = (record, weights_of(record))
        return hit[1]


class DeviceKit:
    """What every device simulated by a process shares: a scratch model and the factory weights.

    The scratch model is shared by every device a runtime computes for, so it
    is reached only through ``load(held)``: the factory weights, overridden
    key by key by ``held``. FLOPs are per sample, forward only.
    """

    def __init__(
        self,
        model: FleetModel,
        pretrained: Weights,
        forward_flops_per_sample: float,
        backbone_flops_per_sample: float,
        cohort_device: torch.device | None = None,
    ):
        self._model = model
        # The scratch model's own tensors by name: ``load`` copies into them in place.
        self._tensors = dict(model.state_dict(keep_vars=True))
        if set(pretrained) != set(self._tensors):
            missing = sorted(set(self._tensors) - set(pretrained))
            extra = sorted(set(pretrained) - set(self._tensors))
            raise ValueError(
                f"factory weights do not fit the model: missing {missing}, extra {extra}"
            )
        self.pretrained = pretrained
        self.forward_flops_per_sample = forward_flops_per_sample
        self.backbone_flops_per_sample = backbone_flops_per_sample
        # Where a cohort's device work runs as one batch (``strategies.cohort``); None:
        # one device at a time on the CPU, the default. The batched path computes with
        # its own copy of the model there; the scratch model stays on the CPU for every
        # method and step that runs one device at a time.
        self.cohort_device = cohort_device
        self.cohort_model: FleetModel | None = None
        if cohort_device is not None:
            self.cohort_model = copy.deepcopy(model).to(cohort_device).eval()

    @torch.no_grad()
    def load(self, held: Weights | None = None) -> FleetModel:
        """The scratch model with the factory weights, then ``held`` over them.

        What ``load_state_dict`` does (in-place copies; names ``held`` has that
        the model lacks are ignored, as with ``strict=False``), without its
        per-module walk, which cost ten times the copies for every device.
        """
        for name, value in self.pretrained.items():
            self._tensors[name].copy_(value)
        for name, value in (held or {}).items():
            target = self._tensors.get(name)
            if target is None:
                continue
            if target.shape != value.shape:
                raise RuntimeError(
                    f"size mismatch for {name}: held {tuple(value.shape)}, "
                    f"model {tuple(target.shape)}"
                )
            target.copy_(value)
        return self._model
