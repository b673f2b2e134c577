"""``fedprox``: Flower's FedProx on the fleet.

Cloud: Flower's own ``FedProx`` (FedAvg aggregation; it puts ``proximal-mu`` in
the train config), with the fleet's seeded sampling and update checks.
Device: FedAvg's local SGD plus the proximal term ``mu/2 * ||w - w_global||^2``,
which keeps heterogeneous devices' updates near the global model.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedProx
from pydantic import Field

from strategies import wire
from strategies.base import CloudSetup, DeviceStep, FleetStrategy, Method, NodeSampler, Weights
from strategies.fedavg import FLEET_FEDAVG_ARGS, FedAvgDevice, FleetSampling
from strategies.local_training import LocalTrainingParams

MU_KEY = "proximal-mu"  # Flower's FedProx config key


class FedProxParams(LocalTrainingParams):
    """FedAvg's device training plus the proximal weight ``proximal_mu``."""

    proximal_mu: float = Field(default=0.1, ge=0)


class FleetFedProx(FleetSampling, FedProx, FleetStrategy):
    """Flower's FedProx with the run's seeded sampler."""

    def __init__(self, sample_nodes: NodeSampler, proximal_mu: float):
        super().__init__(proximal_mu=proximal_mu, **FLEET_FEDAVG_ARGS)
        self._use_sampler(sample_nodes)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[MU_KEY] = self.proximal_mu
        return FleetSampling.configure_train(self, server_round, arrays, config, grid)


class FedProxDevice(FedAvgDevice):
    """FedAvg's device step with the proximal term toward the downloaded model."""

    def proximal(self, step: DeviceStep) -> tuple[float, Weights | None]:
        mu = float(step.content["config"][MU_KEY])
        return mu, step.arrays.torch(step.content[wire.ARRAYS])


def _cloud(setup: CloudSetup) -> FleetFedProx:
    assert isinstance(setup.params, FedProxParams)
    return FleetFedProx(setup.sample_nodes, setup.params.proximal_mu)


METHOD = Method(
    name="fedprox",
    colour="#17becf",
    summary="Flower FedProx: FedAvg with a proximal term on the device",
    params=FedProxParams,
    cloud=_cloud,
    device=FedProxDevice(),
)
