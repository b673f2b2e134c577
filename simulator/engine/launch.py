"""Start an engine: carry the cloud's messages to the devices.

- ``inline``: every device in this process, one batch per exchange.
- ``ray``: Ray actors, each owning a shard of the fleet, one batch per shard.
- ``flower``: Flower's own simulation runtime, one ClientApp call per device.

All run the same ServerApp body (the round loop and the method's Strategy)
and the same device runtime, so the same scenario and seed give the same
metrics on each (up to float summation order where devices are batched).
"""

from __future__ import annotations

from simulator.engine.deployment import DeploymentSpec, ServerBody
from simulator.engine.inline import run_inline
from simulator.scenario.schema import Engine


def run_engine(engine: Engine, spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
    """Run ``body`` (the cloud) against ``devices`` devices on the chosen engine."""
    if engine.kind == "inline":
        run_inline(spec, devices, body)
    elif engine.kind == "ray":
        from simulator.engine.ray import run_on_ray  # Ray starts only when asked for

        run_on_ray(spec, devices, body, engine)
    else:
        from simulator.engine.flower import run_on_flower

        run_on_flower(spec, devices, body, engine)
