"""The ``deployment`` engine: the cloud's round loop on the Grid of a real SuperLink.

A deployment's cloud runs inside the project's Flower ServerApp
(``simulator.run.serverapp``), which Flower starts on the SuperLink's machine
and hands the SuperLink's Grid; the ServerApp grants that Grid to the engine
session for the duration of the plan (``granted_grid``). Each method-seed
run then plays on a ``DeploymentGrid``: its messages stamped with the run they
belong to, its replies awaited in wall seconds. Devices are real SuperNodes
(``simulate supernode``), each serving one fleet device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from flwr.serverapp import Grid

from simulator.catalog.errors import UserError
from simulator.engine.deployment import DeploymentSpec, ServerBody
from simulator.engine.deployment_grid import EXCHANGE_LOG_ENV, DeploymentGrid, run_stamp
from simulator.scenario.loading import world_fingerprint
from simulator.scenario.schema import Engine

_GRANTED: ContextVar[Grid | None] = ContextVar("superlink_grid", default=None)


@contextmanager
def granted_grid(grid: Grid) -> Iterator[None]:
    """Make the SuperLink's Grid the deployment engine's for the duration of the block."""
    token = _GRANTED.set(grid)
    try:
        yield
    finally:
        _GRANTED.reset(token)


class SuperLinkSession:
    """Method-seed runs, one after the other, on the granted SuperLink Grid."""

    def __init__(self, engine: Engine):
        grid = _GRANTED.get()
        if grid is None:
            raise UserError(
                "engine.kind deployment runs inside the project's Flower ServerApp: run "
                "simulate SCENARIO with engine.superlink set (it submits the run to that "
                "SuperLink) or flwr run (see the README's 'On real devices')"
            )
        self.grid = grid
        self.engine = engine

    def run(self, spec: DeploymentSpec, devices: int, body: ServerBody) -> None:
        scenario = spec.world.scenario
        fingerprint = world_fingerprint(scenario) if scenario is not None else ""
        stamp = run_stamp(fingerprint, spec.method, spec.world.seed)
        log = os.environ.get(EXCHANGE_LOG_ENV)
        grid = DeploymentGrid(
            self.grid, stamp, self.engine.reply_timeout_s, Path(log) if log else None
        )
        body(grid)

    def reset(self) -> None:
        """Device states live on the SuperNodes; a restart resumes from the last checkpoint."""

    def describe(self) -> str:
        where = f" of {self.engine.superlink}" if self.engine.superlink else ""
        return f"deployment: each device on its own SuperNode{where}"
