"""Who takes part: the devices a round may reach, the round's draw, the evaluation panel.

Every draw is seeded by (run seed, round), so all methods of a run meet the
same devices in the same rounds, as far as their own timing allows.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.catalog.seeding import rng_for
from simulator.world.build import World
from simulator.world.fleet import online


class DeviceSampler:
    """Draws each round's devices and the fixed set of evaluated devices."""

    def __init__(self, world: World):
        self.world = world
        self.rounds = world.scenario.rounds
        self.seed = world.seed
        self.availability = np.array([p.availability for p in world.fleet])

    @property
    def target_per_round(self) -> int:
        """How many devices a round wants back (participation x fleet, at least one)."""
        return max(1, round(self.rounds.participation * len(self.world.fleet)))

    def reachable(self, round_index: int, start_s: float) -> list[int]:
        """Devices online this round (availability, or the device's traced online
        windows at ``start_s``) with their link up at ``start_s``.

        A device in an outage slot cannot be given a task.
        """
        here = online(self.availability, round_index, self.seed) & self.world.links.up(start_s)
        if self.world.behaviours is not None:  # measured windows decide who is online
            here &= np.fromiter((b.online(start_s) for b in self.world.behaviours), bool)
        return np.flatnonzero(here).tolist()

    def sample(self, round_index: int, start_s: float, asking: list[int] = ()) -> list[int]:
        """A uniform draw of reachable devices (with overcommit), in device order.

        Reachable devices in ``asking`` (they asked for service) come first, up
        to ``rounds.request_share`` of the draw (a seeded draw among them when
        more asked); the rest of the slots are a uniform draw of the others.
        With nobody asking, the draw is the plain uniform one.
        """
        candidates = self.reachable(round_index, start_s)
        wanted = math.ceil(self.target_per_round * self.rounds.overcommit)
        count = min(wanted, len(candidates))
        reachable_askers = sorted(set(asking) & set(candidates))
        quota = min(len(reachable_askers), math.floor(self.rounds.request_share * count))
        if quota == 0:
            rng = rng_for(self.seed, "sample", round_index)
            chosen = rng.choice(candidates, count, replace=False)
            return sorted(int(d) for d in chosen.tolist())
        rng = rng_for(self.seed, "sample-asking", round_index)
        first = rng.choice(reachable_askers, quota, replace=False).tolist()
        others = sorted(set(candidates) - set(first))
        rest = rng.choice(others, count - quota, replace=False).tolist() if count > quota else []
        return sorted(int(d) for d in first + rest)

    def eval_devices(self) -> list[int]:
        """The devices scored at every evaluation tick (the same for every method)."""
        fleet = len(self.world.fleet)
        count = min(self.rounds.eval_devices, fleet)
        chosen = rng_for(self.seed, "eval-devices").choice(fleet, count, replace=False)
        return sorted(int(d) for d in chosen)
