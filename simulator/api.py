"""The Python API: what ``simulate`` runs, from a notebook, with pandas DataFrames back.

    from simulator.api import simulate, load_run

    results = simulate("scenarios/tiny.yaml", methods=["static", "persona"], seeds=1)
    results.summary          # one row per method and seed (summary.csv)
    results.evaluations      # tidy: one row per method, seed, tick and device
    results.paired           # paired differences with their intervals (paired.csv)
    results.report()         # rebuilds plots/ and report.html; returns report.html

``simulate`` runs exactly what the command line runs (the same run folder and
numbers; the scenario's warnings arrive as Python warnings), and
``load_run(folder)`` reads any run folder, finished or not.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.run.reader import RunResults
from simulator.run.reader import load_run as _read_folder
from simulator.scenario.yaml12 import dump_yaml


class ScenarioWarning(UserWarning):
    """A setting that runs but probably does not mean what its author intended."""


@dataclass(frozen=True)
class Results:
    """A run folder's results as DataFrames (read when first asked for)."""

    folder: Path

    @cached_property
    def _run(self) -> RunResults:
        return _read_folder(self.folder)

    @property
    def scenario(self) -> dict[str, Any]:
        """The resolved scenario the run used (as its folder stores it)."""
        return self._run.scenario

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per method and seed, the columns of ``summary.csv``."""
        return pd.DataFrame(self._run.summary)

    @cached_property
    def evaluations(self) -> pd.DataFrame:
        """One row per method, seed, evaluation tick and scored device."""
        records = []
        for (method, seed), run in sorted(self._run.runs.items()):
            for row in run.evals:
                contexts = row.get("contexts") or [None] * len(row["devices"])
                for device, accuracy, context in zip(
                    row["devices"], row["accs"], contexts, strict=True
                ):
                    records.append(
                        {
                            "method": method,
                            "seed": seed,
                            "time_s": row["time_s"],
                            "device": device,
                            "accuracy": accuracy,
                            "context": context,
                        }
                    )
        columns = ["method", "seed", "time_s", "device", "accuracy", "context"]
        return pd.DataFrame.from_records(records, columns=columns)

    @cached_property
    def rounds(self) -> pd.DataFrame:
        """One row per method, seed and round (what was sent, kept, moved, spent)."""
        records = [
            {"method": method, "seed": seed, **row}
            for (method, seed), run in sorted(self._run.runs.items())
            for row in run.rounds
        ]
        return pd.DataFrame.from_records(records)

    @cached_property
    def paired(self) -> pd.DataFrame:
        """Paired differences against each reference, with their 95% intervals."""
        return pd.DataFrame(self._run.paired)

    def unfinished(self) -> list[str]:
        """Each method-seed that did not run to its end (empty for a finished run)."""
        return self._run.unfinished()

    def report(self) -> Path:
        """Rebuild the run's plots and report; returns ``report.html``."""
        from reports.build import build_report

        return build_report(self.folder)


def load_run(folder: str | Path) -> Results:
    """The results of a run folder written by ``simulate`` (CLI or API)."""
    results = Results(Path(folder))
    _ = results._run  # a folder that is no run is refused now, with its one-line reason
    return results


def simulate(
    scenario: str | Path,
    methods: Sequence[str] | None = None,
    seeds: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    engine: str | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> Results:
    """Run a scenario file as ``simulate SCENARIO`` would; returns its results.

    ``overrides`` are ``--set`` pairs (``{"fleet.devices": 200}``; values are
    written as YAML, so ``True``, ``0.5`` and lists mean what they look like);
    ``methods``, ``seeds``, ``engine`` and ``out`` are the options of the same
    names. Scenario warnings are issued as ``ScenarioWarning``.
    """
    from rich.console import Console

    from simulator.cli import with_methods
    from simulator.run.plan import RunPlan
    from simulator.run.runner import run_plan
    from simulator.scenario.loading import load_scenario
    from simulator.world.preflight import preflight

    given = [f"{key}={_yaml_value(value)}" for key, value in (overrides or {}).items()]
    if engine is not None:
        given.append(f"engine.kind={engine}")
    loaded = load_scenario(scenario, given)
    names = [m.name for m in loaded.methods]
    if methods is not None:
        names = list(methods)
        loaded = with_methods(loaded, names, str(scenario))
    checked = preflight(loaded, str(scenario))  # this machine and the files, once
    for note in [*loaded.warnings(), *checked]:
        warnings.warn(note, ScenarioWarning, stacklevel=2)
    count = seeds or loaded.seeds
    plan = RunPlan(
        scenario=loaded,
        methods=names,
        seeds=[loaded.seed + i for i in range(count)],
        out_dir=Path(out or loaded.output),
    )
    # The warnings were issued above; the run's own lines go to its run.log, and to
    # stderr only with progress=True.
    console = Console(stderr=True, quiet=not progress)
    if loaded.engine.kind == "deployment":  # the SuperLink's ServerApp runs the plan
        from simulator.run.submit import submit_plan

        return Results(submit_plan(plan, console))
    return Results(run_plan(plan, show_progress=progress, console=console, checked=checked))


def _yaml_value(value: Any) -> str:
    """A Python value as the YAML text ``--set`` reads back to the same value."""
    text = dump_yaml(value, default_flow_style=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()
