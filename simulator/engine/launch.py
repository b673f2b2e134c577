"""Start an engine: carry the cloud's messages to the device ClientApps.

- ``inline``: an in-process ``Grid`` that calls the ClientApp directly.
- ``ray``: Flower's simulation engine on Ray (scales past one machine).

Both run the same ServerApp body and the same ClientApp, so the same scenario
and seed give the same metrics on either.
"""

from __future__ import annotations

from simulator.engine.deployment import DeploymentSpec, ServerBody
from simulator.engine.inline import run_inline
from simulator.scenario.schema import Engine


def run_engine(engine: Engine, spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
    """Run ``body`` (the cloud) against ``devices`` device nodes on the chosen engine."""
    if engine.kind == "inline":
        run_inline(spec, devices, body)
    else:
        from simulator.engine.ray import run_on_ray  # Ray starts only when asked for

        run_on_ray(spec, devices, body, engine)
