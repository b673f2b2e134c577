"""``fedavg-ft``: FedAvg, then local fine-tuning for personalization.

Same cloud and the same traffic as ``fedavg``; the device runs the model it
fine-tuned from the global one on its own labeled samples (its local update),
instead of the global model itself.
"""

from __future__ import annotations

from strategies.base import Method, Weights
from strategies.fedavg import METHOD as FEDAVG
from strategies.fedavg import FedAvgDevice, FedAvgParams


class FedAvgFTDevice(FedAvgDevice):
    """FedAvg's step; the device keeps its fine-tuned weights."""

    def keeps(self, global_weights: Weights, trained: Weights) -> Weights:
        return {k: v.detach().clone() for k, v in trained.items()}


METHOD = Method(
    name="fedavg-ft",
    colour="#6baed6",
    summary="FedAvg; each device runs its locally fine-tuned copy of the global model",
    params=FedAvgParams,
    cloud=FEDAVG.cloud,
    device=FedAvgFTDevice(),
)
