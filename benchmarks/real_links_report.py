"""The tables of ``benchmarks/real_links.py``: each message found on its link, against the model.

A finished run's folder holds the scenario, the cloud's exchange log (when it
pushed each message and pulled the reply, and what both weighed), each
device's log of when it answered, and the veths' byte counters; from them
every download and upload is found on its link and compared with
``fleet.transport.runtime: flower-http``'s prediction, and ``--fit`` prints
the constants that would fit them best.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from simulator.scenario.loading import parse_scenario
from simulator.world.fleet import build_fleet
from simulator.world.transport import MessageSize, Transfer, Transport, transfer_s

GAP_S = 0.5  # idle time that ends a burst (above a 1500-byte packet at 60 kbit/s), plus the RTT
SETUP_FILE = "setup.json"  # what the run emulated: {"rtt": bool}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Phase:
    """One message on one device's link, as predicted and as the counters saw it."""

    method: str
    link: str
    direction: str  # "down": the cloud's message; "up": the device's reply
    payload_s: float  # the payload transport's: the billed records at the device's shaped rate
    predicted: Transfer
    predicted_s: float
    measured_s: float
    forward_bytes: int  # measured, in the message's direction
    backward_bytes: int
    size: MessageSize  # as sent, the simulation's own records included
    metered: int  # the payload meter's bytes of the message (its records, billed ones only)
    rtt_s: float  # the round trip the run added (0: none)
    forward_bps: float
    backward_bps: float


def bursts(samples, device: int, start: float, end: float, gap_s: float) -> list[list[float]]:
    """[first, last, bytes down, bytes up] of each stretch of traffic on a device's link.

    Traffic in either direction counts; an idle gap longer than ``gap_s`` ends a burst.
    """
    found: list[list[float]] = []
    previous = None
    for t, counts in samples:
        if not start <= t <= end:
            continue
        down, up = counts[device]
        if previous is not None and (down > previous[0] or up > previous[1]):
            grown = [down - previous[0], up - previous[1]]
            if found and t - found[-1][1] <= gap_s:
                found[-1][1] = t
                found[-1][2] += grown[0]
                found[-1][3] += grown[1]
            else:
                found.append([t, t, *grown])
        previous = (down, up)
    return found


def phases(fleet, samples, exchanges: list[dict], answers: list[dict], rtt: bool) -> list[Phase]:
    """Each logged exchange's download and upload, set against ``flower-http``'s prediction.

    The download is the largest burst between the cloud's push and the moment the
    device began its answer, the upload the largest between the end of its answer
    and the cloud's pull; the smaller bursts there are the SuperNode's polls and
    heartbeats, which go on whatever the round does. Where the run added round
    trips (``rtt``), a request waits one per round: the prediction adds them,
    and a burst may pause that long.
    """
    transport = Transport("flower-http")
    profiles = {p.index: p for p in fleet}
    answered = {(a["device"], a["method"], a["round"], a["type"]): a for a in answers}
    found = []
    for line in exchanges:
        device = int(line["device"])
        answer = answered.get((device, line["method"], line["round"], line["type"]))
        if answer is None:
            continue
        profile = profiles[device]
        rates = {"down": (profile.downlink_bps, profile.uplink_bps)}
        rates["up"] = rates["down"][::-1]
        windows = {
            "down": (line["pushed"], answer["entered"]),
            "up": (answer["left"], line["replied"] + 1.0),
        }
        for direction, (start, end) in windows.items():
            rtt_s = profile.rtt_s if rtt else 0.0
            seen = bursts(samples, device, start, end, GAP_S + rtt_s)
            if not seen:
                continue
            first, last, down_bytes, up_bytes = max(seen, key=lambda b: b[2] + b[3])
            if direction == "down":
                size = MessageSize(int(line["sent_bytes"]), int(line["sent_objects"]))
                predicted, metered = transport.download(size), int(line["download-bytes"])
                forward, backward = down_bytes, up_bytes
            else:
                size = MessageSize(int(line["reply_bytes"]), int(line["reply_objects"]))
                predicted, metered = transport.upload(size), int(line["upload-bytes"])
                forward, backward = up_bytes, down_bytes
            forward_bps, backward_bps = rates[direction]
            found.append(
                Phase(
                    method=line["method"],
                    link=profile.device_class,
                    direction=direction,
                    payload_s=transfer_s(metered, forward_bps) + rtt_s,
                    predicted=predicted,
                    predicted_s=predicted.seconds(forward_bps, backward_bps)
                    + predicted.request_rounds * rtt_s,
                    rtt_s=rtt_s,
                    forward_bps=forward_bps,
                    backward_bps=backward_bps,
                    # the first packet left before the first sample that saw it
                    measured_s=last - first + 1514 * 8 / min(forward_bps, backward_bps),
                    forward_bytes=int(forward),
                    backward_bytes=int(backward),
                    size=size,
                    metered=metered,
                )
            )
    return found


def report(found: list[Phase]) -> None:
    """Two tables: seconds per transfer, and bytes per link direction as billed.

    Seconds, per method, link class and direction of the message: the payload
    transport's prediction (records at the link's rate), ``flower-http``'s, and
    the measured burst, with the median error of ``flower-http``'s and the 90th
    percentile of its absolute error. Bytes, per method and link class: what
    ``flower-http`` bills each direction of the device's link (a download's
    forward bytes and an upload's backward bytes are downlink), against what
    the interface counted, summed over the transfers, beside the payload meter's.
    """
    groups: dict[tuple[str, str, str], list[Phase]] = {}
    for phase in found:
        groups.setdefault((phase.method, phase.link, phase.direction), []).append(phase)
    print(
        f"{'method':<8} {'link':<4} {'dir':<4} {'n':>3} {'payload s':>9} {'model s':>8} "
        f"{'measured s':>10} {'median err':>10} {'p90 |err|':>9}"
    )
    for (method, link, direction), group in sorted(groups.items()):
        errors = [(p.measured_s - p.predicted_s) / p.predicted_s for p in group]
        print(
            f"{method:<8} {link:<4} {direction:<4} {len(group):>3} "
            f"{statistics.median(p.payload_s for p in group):>9.3f} "
            f"{statistics.median(p.predicted_s for p in group):>8.3f} "
            f"{statistics.median(p.measured_s for p in group):>10.3f} "
            f"{statistics.median(errors):>+10.1%} "
            f"{percentile([abs(e) for e in errors], 0.9):>9.1%}"
        )
    errors = [abs(p.measured_s - p.predicted_s) / p.predicted_s for p in found]
    print(f"all transfers: median |time error| {statistics.median(errors):.1%}, n={len(found)}")
    print()
    print(
        f"{'method':<8} {'link':<4} {'link dir':<8} {'payload B':>10} {'billed B':>10} "
        f"{'counted B':>10} {'ratio':>6}"
    )
    links = sorted({(p.method, p.link) for p in found})
    for method, link in links:
        for side in ("down", "up"):
            payload = billed = counted = 0
            for p in found:
                if (p.method, p.link) != (method, link):
                    continue
                if p.direction == side:  # the message's own bytes on this side
                    payload += p.metered
                    billed += p.predicted.forward_bytes
                    counted += p.forward_bytes
                else:  # the other transfer's requests or acknowledgements
                    billed += p.predicted.backward_bytes
                    counted += p.backward_bytes
            print(
                f"{method:<8} {link:<4} {side:<8} {payload:>10,} {billed:>10,} "
                f"{counted:>10,} {counted / billed:>6.3f}"
            )


def fit(found: list[Phase]) -> None:
    """The constants of a request-per-object runtime that fit the measured transfers.

    Bytes, per direction of a message: forward and backward as
    ``a * payload + b * objects + c`` by least squares (objects on the wire: the
    meter's, and the message's own). Seconds, on the
    measured bytes: the overlap and each direction's seconds per request round
    whose medians of the error per method, link and direction are smallest on
    average (a grid of 5 ms and 0.05 steps).
    """
    import numpy as np

    for direction in ("down", "up"):
        group = [p for p in found if p.direction == direction]
        design = np.array([[p.size.payload_bytes, max(p.size.objects, 1) + 1, 1] for p in group])
        for name in ("forward_bytes", "backward_bytes"):
            measured = np.array([getattr(p, name) for p in group], dtype=float)
            (a, b, c), *_ = np.linalg.lstsq(design, measured, rcond=None)
            print(f"{direction} {name}: {a:.4f} x payload + {b:.1f} x objects + {c:.1f}")
    groups: dict[tuple[str, str, str], list[Phase]] = {}
    for phase in found:
        groups.setdefault((phase.method, phase.link, phase.direction), []).append(phase)

    def miss(overlap: float, down_s: float, up_s: float) -> float:
        medians = []
        for group in groups.values():
            errors = []
            for p in group:
                per_round = down_s if p.direction == "down" else up_s
                timed = Transfer(p.forward_bytes, p.backward_bytes, p.predicted.request_rounds,
                                 p.predicted.request_rounds * per_round, overlap)  # fmt: skip
                model_s = (
                    timed.seconds(p.forward_bps, p.backward_bps) + timed.request_rounds * p.rtt_s
                )
                errors.append((p.measured_s - model_s) / model_s)
            medians.append(abs(statistics.median(errors)))
        return sum(medians) / len(medians)

    steps = [0.005 * k for k in range(1, 21)]
    best = min(
        ((miss(o / 20, d, u), o / 20, d, u) for o in range(21) for d in steps for u in steps),
        key=lambda t: t[0],
    )
    print(f"overlap {best[1]:.2f}, request_s down {best[2]:.3f}, up {best[3]:.3f} "
          f"(mean |median error| per group {best[0]:.1%})")  # fmt: skip


def analyze(work: Path, fit_constants: bool = False) -> None:
    """The tables again from a finished run's folder (its scenario, logs and counters)."""
    import numpy as np

    scenario_file = work / "real-links.yaml"
    scenario = parse_scenario(yaml.safe_load(scenario_file.read_text()), str(scenario_file))
    saved = np.load(work / "counters.npz")
    samples = [(float(t), c.tolist()) for t, c in zip(saved["times"], saved["counts"], strict=True)]
    log = work / "exchanges.jsonl"
    exchanges = [json.loads(x) for x in log.read_text().splitlines()]
    answers = [json.loads(x) for x in log.with_suffix(".devices.jsonl").read_text().splitlines()]
    setup = work / SETUP_FILE
    rtt = setup.is_file() and bool(json.loads(setup.read_text()).get("rtt"))
    print("round trips: " + ("added (the profiles' RTT)" if rtt else "none (the links' own)"))
    found = phases(build_fleet(scenario, scenario.seed), samples, exchanges, answers, rtt)
    report(found)
    if fit_constants:
        fit(found)
