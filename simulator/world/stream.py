"""A device's data stream: what it sees at a simulated time, as a pure function.

At time ``t`` a device's *window* holds the ``window`` samples of window period
``floor(t / window_period_s)``, drawn from the task's source
(``simulator.world.sources``) under the shifts in force at ``t``. Labels arrive
``label_delay_s`` later and only for a ``labeled_fraction`` of samples, so
training baselines learn from a slightly stale labeled window. Evaluation
samples come from a disjoint test pool (images), from draws of their own
(generated click streams) or from the user's next ratings (a replay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from simulator.scenario.schema import Scenario
from simulator.world.drift import ActiveShift, active_shifts
from simulator.world.fleet import DeviceProfile
from simulator.world.schedule import ContextSchedule
from simulator.world.sources import Draw, SampleSource


@dataclass(frozen=True)
class DataWindow:
    """What a device holds in one round.

    ``inputs`` is the current unlabeled window; ``labeled_x``/``labeled_y`` are
    the samples whose labels have arrived (possibly empty).
    """

    inputs: torch.Tensor
    labeled_x: torch.Tensor
    labeled_y: torch.Tensor


class DeviceStreams:
    """Builds windows and evaluation batches for any device of the fleet."""

    def __init__(
        self,
        scenario: Scenario,
        source: SampleSource,
        seed: int,
        schedule: ContextSchedule | None = None,
    ):
        self.scenario = scenario
        self.source = source
        self.seed = seed
        self.schedule = schedule

    def _samples(
        self, profile: DeviceProfile, time_s: float, count: int, test: bool, key: tuple
    ) -> tuple[torch.Tensor, torch.Tensor]:
        at = Draw(profile, self.shifts_at(profile, time_s), time_s, test, key)
        return self.source.draw(at, count)

    def shifts_at(self, profile: DeviceProfile, time_s: float) -> list[ActiveShift]:
        """The shifts in force for the device at ``time_s``: scenario shifts, then its context."""
        shifts = active_shifts(self.scenario.shifts, profile, time_s, self.seed)
        if self.schedule is not None:
            shifts += self.schedule.active(profile, time_s)
        return shifts

    def window(self, profile: DeviceProfile, time_s: float) -> DataWindow:
        """The device's data at ``time_s``: unlabeled current window plus arrived labels."""
        data = self.scenario.data
        period = int(time_s // data.window_period_s)
        inputs, labels = self._samples(
            profile, time_s, data.window, False, ("window", profile.index, period)
        )
        labeled_time = time_s - data.label_delay_s
        n_labeled = math.floor(data.labeled_fraction * data.window)
        if labeled_time < 0 or n_labeled == 0:
            empty = torch.empty((0, *inputs.shape[1:]))
            return DataWindow(inputs, empty, torch.empty(0, dtype=torch.int64))
        labeled_period = int(labeled_time // data.window_period_s)
        if labeled_time == time_s:
            x, y = inputs, labels
        else:
            x, y = self._samples(
                profile, labeled_time, data.window, False, ("window", profile.index, labeled_period)
            )
        return DataWindow(inputs, x[:n_labeled], y[:n_labeled])

    def ranking_cases(self, profile: DeviceProfile, time_s: float, cases: int) -> list:
        """The device's HR@k / NDCG@k cases at ``time_s`` (click streams; else none)."""
        tick = int(round(time_s * 1000))
        at = Draw(
            profile, self.shifts_at(profile, time_s), time_s, True, ("rank", profile.index, tick)
        )
        return self.source.ranking(at, cases)

    def eval_batch(
        self, profile: DeviceProfile, time_s: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh labeled test samples from the device's current distribution."""
        tick = int(round(time_s * 1000))
        return self._samples(
            profile, time_s, self.scenario.data.eval_samples, True, ("eval", profile.index, tick)
        )
