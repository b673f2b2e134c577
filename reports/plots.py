"""The report's figures, each written as PNG and SVG under ``plots/``.

Every figure uses the same colour per method, labels its axes with units and
marks the shift onsets. A figure with nothing to show is not written (the
report says so instead of showing an empty panel).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    EngFormatter,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from reports.series import (  # noqa: E402
    accuracy_band,
    cumulative_bytes_at,
    paired_band,
    per_device_accuracy,
    prototype_members,
)
from reports.statistics import mean_ci95  # noqa: E402
from reports.table import value  # noqa: E402
from simulator.run.reader import RunResults  # noqa: E402

PALETTE = plt.get_cmap("tab20").colors


def colour(method: str, declared: Mapping[str, str] | None = None) -> str | tuple[float, ...]:
    """A method's colour, the same in every figure and every report: the one it declares
    (``strategies.base.Method.colour``, as the run recorded it), else one from its name."""
    if declared and method in declared:
        return declared[method]
    return PALETTE[zlib.crc32(method.encode()) % len(PALETTE)]


def _integer_ticks(*axes: plt.Axes) -> None:
    """Counts (devices, prototypes) get whole-number ticks."""
    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _readable_log_ticks(axis: matplotlib.axis.Axis, low: float, high: float) -> None:
    """Labelled ticks on a log axis even when the data span less than a decade."""
    wide = high / low > 100  # two decades or more: powers of ten are enough
    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
    shown = [t for t in axis.get_major_locator().tick_values(low, high) if low <= t <= high]
    if len(shown) < 2:  # narrower than a factor of 2: four ticks across the data
        ticks = [float(f"{t:.2g}") for t in np.geomspace(low, high, 4)]
        axis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))


def _engineering(ax: plt.Axes, unit: str) -> None:
    """A log y axis labelled 10 k, 100 k, 1 M instead of crowded minor powers of ten."""
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(EngFormatter(unit=unit, places=0))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _log_axis_unless_empty(
    ax: plt.Axes, empty: list[int], bars: int, words: str, unit: str
) -> None:
    """Name the bars with nothing to draw; a log axis when any bar has something."""
    _annotate_none(ax, empty, words)
    if len(empty) < bars:
        ax.set_yscale("log")
        _engineering(ax, unit)


def _log_word(empty: list[int], methods: list[str]) -> str:
    return " (log)" if len(empty) < len(methods) else ""


def _annotate_none(ax: plt.Axes, positions: list[int], text: str = "none") -> None:
    """Upright words at the foot of a bar chart where a method has nothing to draw."""
    for i in positions:
        ax.annotate(
            text,
            (i, 0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            rotation=90,
            fontsize=8,
            color="0.35",
            xytext=(0, 4),
            textcoords="offset points",
        )


def _mark_onsets(ax: plt.Axes, onsets_s: list[float], scale: float = 60.0) -> None:
    for i, onset in enumerate(onsets_s):
        ax.axvline(
            onset / scale,
            color="black",
            linestyle=":",
            linewidth=1,
            label="shift onset" if i == 0 else None,
        )


def accuracy_over_time(results: RunResults) -> Figure | None:
    """Top: each method's fleet accuracy (mean over seeds). Bottom: its paired
    difference to the reference (``static`` where it ran) with the t band over
    seeds, the same rule as ``paired.csv``; an unpaired band over seeds would
    mostly show how seeds differ, which both methods share."""
    reference = results.reference or results.methods[0]
    seeds = len(results.seeds)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for method in results.methods:
        times, mean, _ = accuracy_band(results.of(method))
        if len(times) == 0:
            continue
        top.plot(
            times / 60, mean, color=colour(method, results.colours), label=method, linewidth=1.6
        )
        if method == reference:
            continue
        times, difference, low, high = paired_band(results.of(method), results.of(reference))
        if len(times) == 0:
            continue
        bottom.plot(
            times / 60, 100 * difference, color=colour(method, results.colours), linewidth=1.4
        )
        if seeds >= 2:
            bottom.fill_between(
                times / 60, 100 * low, 100 * high, color=colour(method, results.colours), alpha=0.15
            )
    bottom.axhline(0, color=colour(reference, results.colours), linewidth=1)
    for ax in (top, bottom):
        _mark_onsets(ax, results.onsets_s)
        ax.grid(alpha=0.3)
    top.set_ylabel(results.named("fleet accuracy"))
    top.set_title(results.named(f"Fleet accuracy over time (mean over {seeds} seed(s))"))
    top.legend(loc="lower left", fontsize=8, ncol=2)
    band = "95% t band over seeds" if seeds >= 2 else "one seed: no band"
    bottom.set_ylabel(f"minus {reference} (points)")
    bottom.set_title(f"Paired difference to {reference} on the same devices ({band})", fontsize=9)
    bottom.set_xlabel("simulated time (min)")
    return fig


def accuracy_vs_bytes(results: RunResults) -> Figure | None:
    """Each method's accuracy against its cumulative traffic; silent methods as level lines."""
    devices = int(results.scenario["fleet"]["devices"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in results.methods:
        runs = results.of(method)
        times, mean, _ = accuracy_band(runs)
        moved = np.mean([cumulative_bytes_at(run, times, devices) for run in runs], axis=0)
        sent = moved > 0
        if not sent.any():  # nothing on the wire: its time-averaged level, across the axis
            level = float(np.nanmean(mean)) if len(mean) else math.nan
            ax.axhline(
                level,
                color=colour(method, results.colours),
                linestyle="--",
                label=f"{method} (no traffic; its mean)",
            )
            continue
        ax.plot(
            moved[sent],
            mean[sent],
            color=colour(method, results.colours),
            label=method,
            marker="o",
            markersize=3,
            linewidth=1.2,
        )
    ax.set_xscale("log")
    ax.set_xlabel("cumulative bytes per device, up + down (log)")
    ax.set_ylabel(results.named("fleet accuracy"))
    ax.set_title(results.named("Accuracy versus traffic (efficiency frontier)"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def device_accuracy_ecdf(results: RunResults) -> Figure | None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in results.methods:
        values = per_device_accuracy(results.of(method))
        if len(values) == 0:
            continue
        ecdf = np.arange(1, len(values) + 1) / len(values)
        ax.step(values, ecdf, where="post", color=colour(method, results.colours), label=method)
        worst = values[: max(1, int(np.ceil(0.1 * len(values))))]
        ax.plot(
            [worst.mean()], [0.1], marker="v", color=colour(method, results.colours), markersize=8
        )
    ax.axhline(0.1, color="black", linestyle=":", linewidth=1, label="worst 10% (marker: mean)")
    ax.set_xlabel(results.named("device accuracy, time-averaged"))
    ax.set_ylabel("fraction of evaluated devices")
    ax.set_title(results.named("Per-device accuracy (ECDF)"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def recovery_bars(results: RunResults) -> Figure | None:
    if not results.onsets_s:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, method in enumerate(results.methods):
        rows = results.summary_of(method)
        mean, half = mean_ci95([value(r, "recovery_s") / 60 for r in rows])
        censored = any(int(r.get("recovery_censored") or 0) > 0 for r in rows)
        if not math.isfinite(mean):
            mean, half, note = 0.0, 0.0, "not\nmeasurable"
        else:
            half = half if math.isfinite(half) else 0.0
            note = f"{mean:.1f} min" if mean > 0 else "no dip beyond\ntolerance"
        ax.bar(
            i,
            mean,
            yerr=half,
            color=colour(method, results.colours),
            hatch="//" if censored else None,
            edgecolor="black",
            linewidth=0.5,
            capsize=4,
        )
        ax.annotate(
            note,
            (i, mean + half),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    ax.set_xticks(range(len(results.methods)), results.methods, rotation=20, ha="right")
    ax.set_ylabel("time to recover after onset (min)")
    ax.margins(y=0.15)
    ax.set_title("Adaptation latency (hatched: not recovered by the horizon, a lower bound)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def traffic_and_compute(results: RunResults) -> Figure | None:
    methods = results.methods
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(methods))
    for offset, column, label in (
        (-0.2, "bytes_up_per_device", "up"),
        (0.2, "bytes_down_per_device", "down"),
    ):
        values = [mean_ci95([value(r, column) for r in results.summary_of(m)])[0] for m in methods]
        left.bar(
            x + offset,
            [v if v > 0 else np.nan for v in values],  # nothing sent: no bar (log axis)
            width=0.4,
            label=label,
            color=[colour(m, results.colours) for m in methods],
            alpha=1.0 if label == "up" else 0.5,
            edgecolor="black",
            linewidth=0.5,
        )
    silent = [
        i
        for i, m in enumerate(methods)
        if all(
            value(r, "bytes_up_per_device") + value(r, "bytes_down_per_device") <= 0
            for r in results.summary_of(m)
        )
    ]
    _log_axis_unless_empty(left, silent, len(methods), "no traffic", "B")
    left.set_ylabel("bytes per device over the run" + _log_word(silent, methods))
    left.set_title("Traffic (solid: up, light: down)")
    flops = [
        mean_ci95([value(r, "device_flops_per_round") for r in results.summary_of(m)])[0]
        for m in methods
    ]
    right.bar(
        x,
        [f if f > 0 else np.nan for f in flops],
        color=[colour(m, results.colours) for m in methods],
        edgecolor="black",
        linewidth=0.5,
    )
    idle = [i for i, f in enumerate(flops) if not f > 0]
    _log_axis_unless_empty(right, idle, len(methods), "no device work", "")
    right.set_ylabel("device FLOPs per device-round" + _log_word(idle, methods))
    right.set_title("On-device compute")
    for ax in (left, right):
        ax.set_xticks(x, methods, rotation=20, ha="right")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def energy_per_device(results: RunResults) -> Figure | None:
    """Joules per device over the run, compute and radio stacked."""
    methods = results.methods
    compute = [
        mean_ci95([value(r, "energy_compute_j_per_device") for r in results.summary_of(m)])[0]
        for m in methods
    ]
    radio = [
        mean_ci95([value(r, "energy_radio_j_per_device") for r in results.summary_of(m)])[0]
        for m in methods
    ]
    if not any(math.isfinite(c) and c > 0 for c in compute + radio):
        return None
    compute = [c if math.isfinite(c) else 0.0 for c in compute]
    radio = [r if math.isfinite(r) else 0.0 for r in radio]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(methods))
    ax.bar(
        x,
        compute,
        color=[colour(m, results.colours) for m in methods],
        edgecolor="black",
        linewidth=0.5,
        label="compute",
    )
    ax.bar(
        x,
        radio,
        bottom=compute,
        color=[colour(m, results.colours) for m in methods],
        alpha=0.45,
        edgecolor="black",
        linewidth=0.5,
        hatch="..",
        label="radio",
    )
    _annotate_none(ax, [i for i in range(len(methods)) if compute[i] + radio[i] <= 0])
    ax.set_xticks(x, methods, rotation=20, ha="right")
    ax.set_ylabel("energy per device over the run (J)")
    ax.set_title(
        "Device energy (solid: compute, dotted: radio; sources in simulator/catalog/energy.py)"
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def prototypes_over_time(results: RunResults) -> Figure | None:
    method = next(
        (m for m in results.methods if any(prototype_members(run)[0] for run in results.of(m))),
        None,
    )
    if method is None:
        return None
    run = results.of(method)[0]
    rounds, counts, totals = prototype_members(run)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    labels = [f"prototype {k.split('-')[1]}" for k in counts]
    top.stackplot(rounds, *counts.values(), labels=labels, alpha=0.85, step="post")
    stacked_max = max((sum(v) for v in zip(*counts.values(), strict=True)), default=1)
    top.set_ylim(0, 1.3 * stacked_max)  # room for the legend above the areas
    top.set_ylabel("devices answered")
    top.set_title(f"{method}: devices per prototype per round (seed {run.seed})")
    top.legend(fontsize=8, loc="upper left", ncol=4)
    bottom.step(rounds, totals, where="post", color="black")
    bottom.set_ylabel("prototypes")
    bottom.set_xlabel("round")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylim(0, max(totals, default=1) + 1)  # whole counts, even when constant
    _integer_ticks(top, bottom)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fleet_profile(results: RunResults) -> Figure | None:
    if not results.fleets:
        return None
    fleet = results.fleets[min(results.fleets)]
    # A traced fleet is grouped by its phone models (fleet.traces), else by device class.
    traced = any(d.get("model") for d in fleet)
    group = "model" if traced else "device_class"
    classes = sorted({d[group] for d in fleet})
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    panels = (
        (axes[0], "uplink_bps", 1e3),
        (axes[1], "downlink_bps", 1e3),
        (axes[2], "compute_flops", 1e9),
    )
    spans = []
    for ax, key, scale in panels:
        everyone = np.array([float(d[key]) / scale for d in fleet])
        low, high = np.log10(everyone.min()) - 0.1, np.log10(everyone.max()) + 0.1
        bins = np.logspace(low, high, 30)  # shared bins: classes comparable, never degenerate
        spans.append((10**low, 10**high))
        for name in classes:
            values = [float(d[key]) / scale for d in fleet if d[group] == name]
            ax.hist(values, bins=bins, alpha=0.6, label=f"{name} ({len(values)})")
    for ax, label, (low, high) in zip(
        axes,
        ("uplink (kbit/s, log)", "downlink (kbit/s, log)", "compute (GFLOP/s, log)"),
        spans,
        strict=True,
    ):
        ax.set_xscale("log")
        _readable_log_ticks(ax.xaxis, low, high)
        _integer_ticks(ax)
        ax.set_xlabel(label)
        ax.set_ylabel("devices")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    source = "from traces (by phone model)" if traced else "median link and compute per device"
    fig.suptitle(f"The simulated fleet: {source}")
    fig.tight_layout()
    return fig


def rounds_and_drops(results: RunResults) -> Figure | None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    shown = False
    for method in results.methods:
        run = results.of(method)[0]
        active = [r for r in run.rounds if r["sampled"]]
        if not active:
            continue
        shown = True
        starts = np.array([r["start_s"] for r in active]) / 60
        top.plot(
            starts,
            [r["duration_s"] for r in active],
            color=colour(method, results.colours),
            label=method,
            marker=".",
            linewidth=0.8,
        )
        bottom.plot(
            starts,
            [r["late"] + r["failed"] for r in active],
            color=colour(method, results.colours),
            label=method,
            marker=".",
            linewidth=0.8,
        )
    if not shown:
        plt.close(fig)
        return None
    deadline = float(results.scenario["rounds"]["deadline_s"])
    top.axhline(deadline, color="black", linestyle="--", linewidth=1, label="deadline")
    top.set_ylabel("round duration (s)")
    top.set_title(f"Rounds over simulated time (seed {results.seeds[0]})")
    top.legend(fontsize=8)
    bottom.set_ylabel("dropped devices\n(late + crashed)")
    _integer_ticks(bottom)
    bottom.set_xlabel("simulated time (min)")
    for ax in (top, bottom):
        _mark_onsets(ax, results.onsets_s)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


FIGURES: dict[str, tuple[str, Callable[[RunResults], Figure | None]]] = {
    "accuracy_over_time": ("Fleet accuracy over simulated time", accuracy_over_time),
    "accuracy_vs_bytes": ("Accuracy versus cumulative traffic", accuracy_vs_bytes),
    "device_accuracy": ("Per-device accuracy distribution", device_accuracy_ecdf),
    "recovery": ("Adaptation latency after shift onsets", recovery_bars),
    "traffic_compute": ("Traffic and on-device compute per method", traffic_and_compute),
    "energy": ("Device energy per method", energy_per_device),
    "prototypes": ("Prototypes over time", prototypes_over_time),
    "fleet": ("The simulated fleet", fleet_profile),
    "rounds": ("Round durations and dropped devices", rounds_and_drops),
}


def write_plots(results: RunResults, folder: Path) -> dict[str, Path]:
    """Draw every figure that has data; returns name -> PNG path."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (_, draw) in FIGURES.items():
        fig = draw(results)
        if fig is None:
            continue
        png = folder / f"{name}.png"
        fig.savefig(png, dpi=110, bbox_inches="tight")
        fig.savefig(folder / f"{name}.svg", bbox_inches="tight")
        plt.close(fig)
        written[name] = png
    return written
