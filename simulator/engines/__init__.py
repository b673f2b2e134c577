"""Engines that carry the cloud's messages to the device ClientApps.

- ``inline``: an in-process ``Grid`` that calls the ClientApp directly.
- ``ray``: Flower's simulation engine on Ray (scales past one machine).

Both run the same ServerApp body and the same ClientApp, so the same scenario
and seed give the same metrics on either.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.serverapp import Grid

from simulator.scenario import Engine
from simulator.world import WorldSpec

ServerBody = Callable[[Grid], None]


def run_engine(engine: Engine, spec: WorldSpec, devices: int, body: ServerBody) -> None:
    """Run ``body`` (the cloud) against ``devices`` device nodes on the chosen engine."""
    if engine.kind == "inline":
        from simulator.engines.inline import run_inline

        run_inline(spec, devices, body)
    else:
        from simulator.engines.ray import run_on_ray

        run_on_ray(spec, devices, body, engine)
