"""The ``flower`` engine: Flower's own simulation runtime on Ray, one message at a time.

The reference the batched engines are tested against. The cloud body runs
as the ServerApp's main; each device is a simulated SuperNode running the
device ClientApp (``clientapp``) in a Ray actor, its state in its node
``Context``. Flower's engine polls every node, so its cost per message grows
with the fleet: the ``ray`` engine is the one that scales. ``ray_address`` joins
an existing Ray cluster so a fleet can outgrow one machine (the pretrained
model file must then sit on storage every node can read). Ray starts with its
dashboard off and,
unless it joins a cluster, bound to loopback; Ray and Flower logs are kept to
warnings. A lost or frozen Ray worker raises ``EngineFailure`` (see
``worker_guard``) instead of passing for failed devices.
"""

from __future__ import annotations

import logging
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from simulator.engine.clientapp import make_device_app
from simulator.engine.deployment import DeploymentSpec, ServerBody
from simulator.engine.resources import check_cpus, check_reachable, init_args, local_cpus
from simulator.engine.worker_guard import WorkerGuardGrid
from simulator.scenario.schema import Engine


def backend_config(engine: Engine) -> dict[str, Any]:
    """Flower's backend config for this engine section."""
    return {
        "client_resources": {"num_cpus": engine.cpus_per_device, "num_gpus": 0.0},
        "init_args": init_args(engine),
    }


def run_on_flower(spec: DeploymentSpec, devices: int, body: ServerBody, engine: Engine) -> None:
    """Run the cloud body in a Flower ServerApp against ``devices`` simulated SuperNodes."""
    if engine.ray_address:
        check_reachable(engine.ray_address)
    else:
        check_cpus(engine, local_cpus(engine), "the local Ray")
    errors: list[BaseException] = []
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            body(WorkerGuardGrid(grid, engine.reply_timeout_s, local=not engine.ray_address))
        except BaseException as err:  # re-raised in the caller's thread below
            errors.append(err)

    # Device failures are recorded per round by the cloud loop; Flower's own
    # traceback per failed ClientApp call would bury the progress bar.
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.CRITICAL)
    try:
        run_simulation(
            server_app=server_app,
            client_app=make_device_app(spec),
            num_supernodes=devices,
            backend_config=backend_config(engine),
        )
    finally:
        flwr_logger.setLevel(level)
    if errors:
        raise errors[0]
