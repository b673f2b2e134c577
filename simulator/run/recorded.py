"""``recorded.json``: what a run states about itself, so its folder is read, not recomputed.

A report may be built on another machine, by a later version, or after the
scenario's data file moved; recomputing the shift onsets or the task from the
scenario there can fail or differ, and a silent fallback would change the
headline metric. So the run writes, when it starts, what its reader needs:
the task and its metric's name, every shift onset within the horizon, and
each method's declared roles (``strategies.base.Method.declared_roles``:
reference, subject, variant of, colour). A resume writes it again, the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from basemodel.atomic import write_atomically
from simulator.catalog.datasets import DATASETS, METRIC_NAMES
from simulator.run.reader import RECORDED_FILE
from simulator.scenario.schema import Scenario
from simulator.world.schedule import onsets
from strategies.registry import declared_roles


def record_run(folder: Path, scenario: Scenario, methods: list[str]) -> None:
    """Write ``recorded.json`` for a run of ``methods`` on ``scenario``."""
    task = DATASETS[scenario.data.dataset].task
    document: dict[str, Any] = {
        "task": task,
        "metric": METRIC_NAMES[task],
        "onsets_s": onsets(scenario),
        "methods": declared_roles(methods),
    }
    write_atomically(folder / RECORDED_FILE, json.dumps(document, indent=1) + "\n")
