"""The fleet: one profile per device, drawn from the scenario's device classes.

A profile is fixed for the run (a phone does not change tier); what varies
over simulated time (bandwidth and outages in ``network``, being online in
``online``) is computed from the device index, the time and the seed.
Draws for the whole fleet come from one generator each, so building a fleet
of 100,000 devices or asking who is online in a round costs one vector.
With ``fleet.traces``, a device's compute, links and online windows come from
measured traces instead (``simulator.world.traces``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulator.catalog.seeding import rng_for
from simulator.scenario.fleet import FleetTraces, class_counts
from simulator.scenario.schema import Scenario
from simulator.world.traces import Behaviour, assign_clients, load_behaviour, load_capacity


@dataclass(frozen=True)
class DeviceProfile:
    """What one simulated device is. Units are SI: FLOP/s, bit/s, seconds."""

    index: int
    device_class: str
    compute_flops: float
    uplink_bps: float
    downlink_bps: float
    rtt_s: float
    availability: float
    crash_rate: float
    radio: str = "4g"
    joules_per_flop: float = 1e-10
    # From ``fleet.traces`` (-1 and "" when the class's figures are used): the client
    # of the capacity and of the behaviour trace this device is, and its phone model.
    capacity_client: int = -1
    behaviour_client: int = -1
    model: str = ""


def _lognormal(median: float, sigma: float, z: float) -> float:
    return float(median * np.exp(sigma * z))


def build_fleet(scenario: Scenario, seed: int) -> list[DeviceProfile]:
    """Draw every device's profile; a pure function of (scenario, seed).

    Classes are dealt out by share and shuffled; each device's four lognormal
    figures (compute, uplink, downlink, round-trip time) are its row of one
    standard-normal draw for the whole fleet.
    """
    classes = scenario.fleet.classes
    counts = class_counts(classes, scenario.fleet.devices)
    labels = np.repeat(np.arange(len(classes)), counts)
    rng_for(seed, "fleet-classes").shuffle(labels)
    noise = rng_for(seed, "fleet-profiles").standard_normal((len(labels), 4)).tolist()
    fleet = []
    for index, class_index in enumerate(labels.tolist()):
        spec = classes[class_index]
        z_compute, z_up, z_down, z_rtt = noise[index]
        fleet.append(
            DeviceProfile(
                index=index,
                device_class=spec.name,
                compute_flops=_lognormal(
                    spec.compute_flops.median, spec.compute_flops.sigma, z_compute
                ),
                uplink_bps=1e3 * _lognormal(spec.uplink_kbps.median, spec.uplink_kbps.sigma, z_up),
                downlink_bps=1e3
                * _lognormal(spec.downlink_kbps.median, spec.downlink_kbps.sigma, z_down),
                rtt_s=1e-3 * _lognormal(spec.rtt_ms.median, spec.rtt_ms.sigma, z_rtt),
                availability=spec.availability,
                crash_rate=spec.crash_rate,
                radio=spec.radio,
                joules_per_flop=spec.joules_per_flop,
            )
        )
    traces = scenario.fleet.traces
    return fleet if traces is None else _traced(fleet, traces, seed)


def _traced(fleet: list[DeviceProfile], traces: FleetTraces, seed: int) -> list[DeviceProfile]:
    """The fleet with each device's measured figures in place of its class's draws."""
    devices = len(fleet)
    if traces.capacity is not None:
        capacity = load_capacity(traces.capacity)
        clients = assign_clients(list(capacity), devices, traces.mapping, seed)
        fleet = [
            replace(
                p,
                compute_flops=traces.reference_flops_per_sample / (capacity[c].latency_ms / 1000.0),
                uplink_bps=1e3 * capacity[c].bandwidth_kbps,
                downlink_bps=1e3 * capacity[c].bandwidth_kbps * traces.downlink_ratio,
                capacity_client=c,
            )
            for p, c in zip(fleet, clients, strict=True)
        ]
    if traces.behaviour is not None:
        behaviour = load_behaviour(traces.behaviour)
        clients = assign_clients(list(behaviour), devices, traces.mapping, seed)
        fleet = [  # online when its windows say so: no drawn availability on top
            replace(p, availability=1.0, behaviour_client=c, model=behaviour[c].model)
            for p, c in zip(fleet, clients, strict=True)
        ]
    return fleet


def device_behaviours(scenario: Scenario, fleet: list[DeviceProfile]) -> list[Behaviour] | None:
    """Each device's online windows when the fleet's behaviour is traced, else None."""
    traces = scenario.fleet.traces
    if traces is None or traces.behaviour is None:
        return None
    behaviour = load_behaviour(traces.behaviour)
    return [behaviour[p.behaviour_client] for p in fleet]


def trace_words(scenario: Scenario, fleet: list[DeviceProfile]) -> str | None:
    """What the traces gave this fleet, for the run log (None without ``fleet.traces``)."""
    traces = scenario.fleet.traces
    if traces is None:
        return None
    parts = []
    if traces.capacity is not None:
        used = len({p.capacity_client for p in fleet})
        parts.append(f"compute and links of {used:,} capacity clients ({traces.mapping})")
    behaviours = device_behaviours(scenario, fleet)
    if behaviours is not None:
        used = len({p.behaviour_client for p in fleet})
        span = scenario.rounds.count * scenario.rounds.period_s
        ticks = np.arange(0.0, span, scenario.rounds.period_s)
        share = np.mean([[b.online(t) for t in ticks] for b in behaviours])
        parts.append(
            f"online windows of {used:,} behaviour clients (online {share:.0%} of the round "
            "starts on average)"
        )
    return f"fleet: {len(fleet):,} devices from traces: " + "; ".join(parts)


def online(availability: np.ndarray, round_index: int, seed: int) -> np.ndarray:
    """Which devices check in for a round (Bernoulli with each one's availability)."""
    return rng_for(seed, "online", round_index).random(len(availability)) < availability


def crashes(profile: DeviceProfile, round_index: int, seed: int) -> bool:
    """Whether the device fails mid-round (Bernoulli with its crash rate)."""
    if profile.crash_rate <= 0.0:
        return False
    return bool(rng_for(seed, "crash", profile.index, round_index).random() < profile.crash_rate)
