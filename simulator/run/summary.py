"""From metrics files to ``summary.json`` / ``summary.csv``: one row per method and seed.

The columns listed in ``SUMMARY_COLUMNS`` are a stable interface: users'
scripts and the reports read them. Every value is computed from the rows the
run wrote; nothing here looks at the live simulation.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from basemodel.atomic import atomic_path, write_atomically
from simulator.catalog.ranking_metrics import RANKING_NAMES
from simulator.run.accuracy import (
    after_each,
    answered,
    before,
    device_means,
    recovery_times,
    tick_mean,
    worst_share_mean,
)
from simulator.run.reader import read_rows
from simulator.scenario.schema import Scenario
from simulator.world.build import pretrain_seed
from simulator.world.known import KNOWN, UNKNOWN
from simulator.world.schedule import onsets

SUMMARY_COLUMNS = [
    "method",
    "seed",
    "acc_mean",
    "acc_worst10",
    "recovery_s",
    "bytes_up_per_device",
    "bytes_down_per_device",
    "device_flops_per_round",
    "device_backward_passes",
    "rounds",
    "dropped_device_rounds",
    "sim_duration_s",
    "wall_s",
    # Further columns (may grow; the ones above are stable).
    "acc_pre_shift",
    "acc_post_shift",
    "acc_post_known",
    "acc_post_unknown",
    "acc_final",
    "recovery_censored",
    "energy_j_per_device",
    "energy_compute_j_per_device",
    "energy_radio_j_per_device",
    "cloud_flops_per_round",
    "bytes_per_device_round",
    "late_device_rounds",
    "failed_device_rounds",
    "device_rounds",
    "round_duration_mean_s",
    "prototypes_final",
    "pretrain_seed",
    "starting_model",
    "model_parameters",
    "model_flops_per_sample",
    "complete",
    "nonfinite_evals",
    # Recommendation only (empty for classification): time-averaged over ticks.
    *RANKING_NAMES,
]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _per(total: float, count: float) -> float:
    return total / count if count else 0.0


def nonfinite_evaluations(rows: list[dict[str, Any]]) -> int:
    """Device evaluations whose served model gave NaN or infinite outputs (a diverged model)."""
    return sum(int(r.get("nonfinite", 0)) for r in rows if r.get("kind") == "eval")


def summarize_file(path: Path, method: str, seed: int, scenario: Scenario) -> dict[str, Any]:
    """One summary row from one method-seed metrics file."""
    rows = read_rows(path)
    rounds = [r for r in rows if r["kind"] == "round"]
    evals = answered(rows)
    end = next((r for r in rows if r["kind"] == "end"), None)
    devices = scenario.fleet.devices
    replied = sum(r["replied"] for r in rounds)
    onset_list = onsets(scenario)
    horizon = scenario.rounds.horizon_s
    recovery, censored = recovery_times(
        evals, onset_list, horizon, scenario.rounds.recovery_tolerance
    )
    post = after_each(onset_list, scenario.rounds.post_shift_window_s)
    last_round_end = max((r["start_s"] + r["duration_s"] for r in rounds), default=0.0)
    sampled = [r["duration_s"] for r in rounds if r["sampled"]]

    def total(key: str) -> float:
        return float(sum(r.get(key, 0.0) for r in rounds))

    return {
        "method": method,
        "seed": seed,
        "acc_mean": tick_mean(evals),
        "acc_worst10": worst_share_mean(list(device_means(evals).values())),
        "recovery_s": _mean(recovery),
        "bytes_up_per_device": total("bytes_up") / devices,
        "bytes_down_per_device": total("bytes_down") / devices,
        "device_flops_per_round": _per(total("flops"), replied),
        "device_backward_passes": int(total("backward_passes")),
        "rounds": len(rounds),
        "dropped_device_rounds": int(total("late") + total("failed")),
        "sim_duration_s": end["sim_duration_s"] if end else last_round_end,
        "wall_s": end["wall_s"] if end else (rounds[-1]["wall_s"] if rounds else 0.0),
        "acc_pre_shift": tick_mean(evals, before(onset_list)) if onset_list else math.nan,
        "acc_post_shift": tick_mean(evals, post) if onset_list else math.nan,
        "acc_post_known": tick_mean(evals, post, KNOWN) if onset_list else math.nan,
        "acc_post_unknown": tick_mean(evals, post, UNKNOWN) if onset_list else math.nan,
        "acc_final": _mean([e["acc_mean"] for e in evals[-3:]]),
        "recovery_censored": censored,
        "energy_j_per_device": total("energy_j") / devices,
        "energy_compute_j_per_device": total("energy_compute_j") / devices,
        "energy_radio_j_per_device": (total("energy_j") - total("energy_compute_j")) / devices,
        "cloud_flops_per_round": _per(total("cloud_flops"), len(rounds)),
        "bytes_per_device_round": _per(total("bytes_up") + total("bytes_down"), replied),
        "late_device_rounds": int(total("late")),
        "failed_device_rounds": int(total("failed")),
        "device_rounds": int(total("sampled")),
        "round_duration_mean_s": _mean(sampled) if sampled else 0.0,
        "prototypes_final": next(
            (
                r["train_metrics"]["prototypes"]
                for r in reversed(rounds)
                if "prototypes" in r.get("train_metrics", {})
            ),
            None,
        ),
        "pretrain_seed": pretrain_seed(scenario, seed),
        "starting_model": scenario.pretrain.starting_model,
        "model_parameters": (end or {}).get("model", {}).get("parameters"),
        "model_flops_per_sample": (end or {}).get("model", {}).get("flops_per_sample"),
        "complete": end is not None,
        "nonfinite_evals": nonfinite_evaluations(rows),
        **{
            name: _mean([e["ranking"][name] for e in evals if name in e.get("ranking", {})])
            for name in RANKING_NAMES
        },
    }


def strict_json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with every missing or non-finite figure as ``None``.

    JSON has no NaN: a bare ``NaN`` token is refused by strict parsers (and by
    other languages' readers), so a figure a run could not compute is ``null``.
    """
    return [
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
        for row in rows
    ]


def write_summary(rows: list[dict[str, Any]], folder: Path) -> None:
    """Write ``summary.json`` (strict JSON), ``summary.csv`` and, where pyarrow is installed,
    ``summary.parquet`` (each atomically: write, then rename)."""
    text = json.dumps(strict_json_rows(rows), indent=2, default=str, allow_nan=False)
    write_atomically(folder / "summary.json", text + "\n")
    with (
        atomic_path(folder / "summary.csv") as tmp,
        tmp.open("w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in SUMMARY_COLUMNS})
    _write_parquet(rows, folder)


def _write_parquet(rows: list[dict[str, Any]], folder: Path) -> None:
    """``summary.parquet`` beside the CSV where pyarrow is installed (an optional extra)."""
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        return
    import pandas as pd

    frame = pd.DataFrame([{k: row.get(k) for k in SUMMARY_COLUMNS} for row in rows])
    with atomic_path(folder / "summary.parquet") as tmp, tmp.open("wb") as handle:
        frame.to_parquet(handle, index=False)
