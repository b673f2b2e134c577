"""Engines as sessions: started once for a ``simulate`` call, used by every method run.

- ``inline``: every device in this process, one batch per exchange.
- ``ray``: Ray actors, each owning a shard of the fleet, one batch per shard;
  Ray and the actors stay up between method runs (each run loads its method
  into them), so a run costs no engine start-up.
- ``flower``: Flower's own simulation runtime, one ClientApp call per device
  (it starts and stops with each run, as Flower does).
- ``deployment``: a real SuperLink's Grid, granted by the ServerApp this runs
  in; each device a real SuperNode (``superlink``).

All run the same ServerApp body (the round loop and the method's Strategy)
and the same device runtime, so the same scenario and seed give the same
metrics on each.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from simulator.engine.deployment import DeploymentSpec, ServerBody
from simulator.engine.inline import run_inline
from simulator.scenario.schema import Engine


class EngineSession(Protocol):
    """An engine ready to run method-seed runs, one after the other."""

    def run(self, spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
        """Run ``body`` (the cloud) against ``devices`` devices of ``spec``."""
        ...

    def reset(self) -> None:
        """Drop whatever the last run left (after an engine failure: start afresh)."""
        ...

    def describe(self) -> str:
        """Where the devices ran (logged after each run)."""
        ...


class InlineSession:
    def run(self, spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
        run_inline(spec, devices, body)

    def reset(self) -> None:
        """Nothing persists between inline runs."""

    def describe(self) -> str:
        return "inline: every device in the cloud's process"


class FlowerSession:
    def __init__(self, engine: Engine):
        self.engine = engine

    def run(self, spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
        from simulator.engine.flower import run_on_flower

        run_on_flower(spec, devices, body, self.engine)

    def reset(self) -> None:
        """Flower's runtime starts and stops with each run."""

    def describe(self) -> str:
        return "flower: Flower's simulation runtime, one ClientApp call per device"


@contextmanager
def engine_session(engine: Engine) -> Iterator[EngineSession]:
    """The engine named by ``engine.kind``, up for the duration of the block."""
    if engine.kind == "inline":
        yield InlineSession()
    elif engine.kind == "flower":
        yield FlowerSession(engine)
    elif engine.kind == "deployment":
        from simulator.engine.superlink import SuperLinkSession

        yield SuperLinkSession(engine)
    else:
        from simulator.engine.ray import RaySession  # Ray starts only when asked for

        with RaySession(engine) as session:
            yield session
