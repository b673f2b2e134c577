"""The checks a scenario needs from this machine and its disk, made once before it runs.

Validating a scenario (``simulator.scenario``) reads nothing and changes
nothing: the same document gives the same answer on any machine, in any
process, as often as it is parsed. What only this machine can answer is asked
here, once in each process where a scenario is about to run or is checked:
``run_plan`` and ``resume_run`` (unless their caller, the command line or the
API, already asked and passes the answer on), ``simulate validate``, and a
sweep's planning for every cell (each cell asks again where it runs, which
may be another machine of a Ray cluster):

- the cloud's device (``cloud.device``): can this machine run it?
- a recorded dataset (``data.path``): is the file there, readable, with
  enough users for the cloud and the fleet, each with a ranking case?
- measured traces (``fleet.traces``): are the files there and well formed?

Each failure is one ``ScenarioError`` line naming the source, the key and
the fix. The warnings that need the files (a behaviour trace with nobody
online at any round start) come back as lines for the caller to show.
"""

from __future__ import annotations

from basemodel.cloud_device import resolve_cloud_device
from simulator.catalog.datasets import DATASETS
from simulator.catalog.errors import ScenarioError
from simulator.catalog.ranking_metrics import RANKING_NEGATIVES
from simulator.scenario.schema import Scenario
from simulator.world.ratings import RatingsError
from simulator.world.replay import check_rankable, load_replay, user_split
from simulator.world.trace_files import TraceError
from simulator.world.traces import load_behaviour, load_capacity


def preflight(scenario: Scenario, source: str = "<scenario>") -> list[str]:
    """Refuse what this machine cannot run; return the warnings that needed the files."""
    for key, name in (
        ("cloud.device", scenario.cloud.device),
        ("engine.device", scenario.engine.device),
    ):
        try:
            resolve_cloud_device(name)
        except ValueError as err:
            raise ScenarioError(f"{source}: {key}: {err}") from None
    _ratings_readable(scenario, source)
    return _traces_readable(scenario, source)


def _ratings_readable(scenario: Scenario, source: str) -> None:
    """A recorded dataset's file holds enough users for the cloud and the fleet."""
    fmt = DATASETS[scenario.data.dataset].ratings
    if fmt is None or scenario.data.path is None:
        return  # the schema already requires a path exactly where a dataset reads one
    try:
        interactions = load_replay(scenario.data.path, fmt)
        user_split(interactions.num_users, scenario.data.cloud_fraction, scenario.fleet.devices, 0)
        check_rankable(interactions, RANKING_NEGATIVES)
    except RatingsError as err:
        raise ScenarioError(f"{source}: data.path: {err}") from None


def _traces_readable(scenario: Scenario, source: str) -> list[str]:
    """Every trace file parses (a ``TraceError`` names the file, client and field)."""
    traces = scenario.fleet.traces
    if traces is None:
        return []
    loaded = {}
    for key, load in (("capacity", load_capacity), ("behaviour", load_behaviour)):
        path = getattr(traces, key)
        if path is None:
            continue
        try:
            loaded[key] = load(path)
        except TraceError as err:
            raise ScenarioError(f"{source}: fleet.traces.{key}: {err}") from None
    return _nobody_online(scenario, loaded["behaviour"]) if "behaviour" in loaded else []


def _nobody_online(scenario: Scenario, behaviour: dict) -> list[str]:
    """A behaviour trace whose windows miss every round start leaves nobody to sample."""
    clients = behaviour.values()
    starts = [i * scenario.rounds.period_s for i in range(scenario.rounds.count)]
    if any(c.online(t) for c in clients for t in starts):
        return []
    return [
        "fleet.traces.behaviour: no client is online at any round start of the run "
        f"(0 to {starts[-1]:g} s): no round can reach a device"
    ]
