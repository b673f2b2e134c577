"""One method deployed on one world: what every process that simulates devices builds.

A ``DeploymentSpec`` (a world spec and a method name) is small and picklable;
``Deployment.get`` builds the world and the method's validated parameters
once per process and caches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from flwr.serverapp import Grid

from simulator.world.build import World, WorldSpec
from strategies.base import Method, MethodParams
from strategies.registry import get_method, validate_params

ServerBody = Callable[[Grid], None]  # the cloud's side of a run, given the engine's Grid


@dataclass(frozen=True)
class DeploymentSpec:
    """A world and the method deployed on it (JSON-able values only)."""

    world: WorldSpec
    method: str


class Deployment:
    """The world, the method and its parameters, built once per process per spec."""

    def __init__(self, spec: DeploymentSpec):
        self.spec = spec
        self.world = World.get(spec.world)
        self.method: Method = get_method(spec.method)
        scenario = self.world.scenario
        params = next(m.params for m in scenario.methods if m.name == spec.method)
        self.params: MethodParams = validate_params(spec.method, params)

    @classmethod
    @lru_cache(maxsize=8)
    def get(cls, spec: DeploymentSpec) -> Deployment:
        """The deployment of ``spec``, built once per process (the last few are kept)."""
        return cls(spec)
