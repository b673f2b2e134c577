"""Reading a run folder: the one reader of what a run wrote.

The summary, ``--resume`` and the reports all read run folders through here:
the resolved scenario, the summary, metrics rows and the fleet.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.catalog.datasets import DATASETS, METRIC_NAMES
from simulator.catalog.errors import UserError
from simulator.run.lock import held_by
from simulator.scenario.documents import read_document
from simulator.scenario.schema import Scenario
from simulator.world.schedule import onsets

PAIRED_FILE = "paired.csv"
RECORDED_FILE = "recorded.json"  # written by ``simulator.run.recorded``


class RunFolderError(UserError):
    """A run folder is missing something or holds something unreadable; the message says what."""


# What every row of each kind holds (rows may hold more; older versions' rows
# lack some later columns, which readers treat as absent).
ROW_KEYS = {
    "round": ("round", "start_s", "duration_s", "sampled", "kept", "replied", "bytes_up"),
    "eval": ("time_s", "acc_mean", "devices", "accs"),
    "end": ("rounds",),
}


def _missing_keys(row: object) -> str:
    """Why ``row`` is not a metrics row ('' when it is one)."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if row.get("kind") not in ROW_KEYS:
        return f"unknown kind {row.get('kind')!r}"
    absent = [key for key in ROW_KEYS[row["kind"]] if key not in row]
    return f"missing {', '.join(absent)}" if absent else ""


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a metrics file, or a one-line error naming the file and the bad line.

    Only the final line may be torn (a run killed mid-write): it is skipped.
    A line that is not a JSON object anywhere else means the file was damaged
    or edited; dropping it and the rows after it would change the results
    silently, so it is refused instead.
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not a metrics file (binary content)") from None
    except OSError as err:
        raise RunFolderError(f"{path}: unreadable ({err.strerror or err})") from None
    rows = []
    last = len(lines) - 1  # the text after the final newline: empty unless torn
    for number, line in enumerate(lines):
        if number == last:
            break  # a torn final line (no newline yet) is skipped
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        missing = _missing_keys(row)
        if missing:
            raise RunFolderError(
                f"{path}: line {number + 1} is not a metrics row ({missing}: {line[:60]!r}); "
                "the file was damaged or edited"
            )
        rows.append(row)
    return rows


def _facts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The end row's method facts (empty for an unfinished run or an older folder)."""
    ends = [r for r in rows if r.get("kind") == "end"]
    facts = ends[-1].get("facts") if ends else None
    return facts if isinstance(facts, dict) else {}


@dataclass
class MethodRun:
    """One method and seed: its round rows, evaluation rows and the method's own facts."""

    method: str
    seed: int
    rounds: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResults:
    """Everything a report reads from one run folder."""

    folder: Path
    scenario: dict[str, Any]
    summary: list[dict[str, Any]]
    runs: dict[tuple[str, int], MethodRun]
    fleets: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    paired: list[dict[str, Any]] = field(default_factory=list)
    # Who writes the folder now (``simulator.run.lock``); None: no live writer.
    writer: str | None = None
    # What the run recorded about itself (``recorded.json``; empty for an older folder).
    recorded: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.scenario.get("name", self.folder.name))

    @property
    def methods(self) -> list[str]:
        order = [m["name"] for m in self.scenario.get("methods", [])]
        present = {method for method, _ in self.runs}
        return [m for m in order if m in present] + sorted(present - set(order))

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for _, seed in self.runs})

    def of(self, method: str) -> list[MethodRun]:
        return [self.runs[(method, s)] for s in self.seeds if (method, s) in self.runs]

    def summary_of(self, method: str) -> list[dict[str, Any]]:
        return [row for row in self.summary if row["method"] == method]

    def unfinished(self) -> list[str]:
        """Each method-seed that did not run to its end, with the rounds it did run."""
        planned = self.scenario.get("rounds", {}).get("count", "?")
        return [
            f"{row['method']} seed {row['seed']} ({row.get('rounds', '?')} of {planned} rounds)"
            for row in self.summary
            if row.get("complete") is False
        ]

    @property
    def roles(self) -> dict[str, dict[str, Any]]:
        """Each method's declared roles as the run recorded them (empty: an older folder)."""
        methods = self.recorded.get("methods")
        return methods if isinstance(methods, dict) else {}

    def role_of(self, method: str) -> str:
        """``reference``, ``subject`` or ``method`` (the last for an unrecorded method)."""
        return str(self.roles.get(method, {}).get("role") or "method")

    def in_subject_family(self, method: str) -> bool:
        """The subject method or one of its variants."""
        declared = self.roles.get(method, {})
        subjects = {m for m in self.roles if self.role_of(m) == "subject"}
        return declared.get("role") == "subject" or declared.get("variant_of") in subjects

    @property
    def reference(self) -> str | None:
        """The first reference method that ran (``static``), else None; a folder from
        before roles were recorded names it in its paired table's first row."""
        if not self.roles and self.paired:
            return str(self.paired[0]["reference"])
        return next((m for m in self.methods if self.role_of(m) == "reference"), None)

    @property
    def colours(self) -> dict[str, str]:
        """Each method's declared colour."""
        return {m: str(r["colour"]) for m, r in self.roles.items() if r.get("colour")}

    @property
    def metric(self) -> str:
        """The name of the task's main metric, which the ``acc_*`` figures hold."""
        if isinstance(self.recorded.get("metric"), str):
            return self.recorded["metric"]
        dataset = str(self.scenario.get("data", {}).get("dataset", "mnist"))
        spec = DATASETS.get(dataset)
        return METRIC_NAMES[spec.task] if spec is not None else METRIC_NAMES["classification"]

    def named(self, text: str) -> str:
        """``text`` with "accuracy" read as this run's metric (AUC for recommendation)."""
        if self.metric == "accuracy":
            return text
        return text.replace("Accuracy", self.metric).replace("accuracy", self.metric)

    @property
    def onsets_s(self) -> list[float]:
        """Every onset within the horizon (recurrences and schedule changes included), as
        the run recorded them; a folder from before they were recorded is read from its
        scenario, and one whose scenario this version cannot read is an error, never a
        guess (the headline metric depends on it)."""
        recorded = self.recorded.get("onsets_s")
        if isinstance(recorded, list):
            return [float(t) for t in recorded]
        try:
            return onsets(Scenario.model_validate(self.scenario))
        except ValidationError as err:
            raise RunFolderError(
                f"{self.folder}: no {RECORDED_FILE} (written by an older version) and its "
                f"scenario.yaml does not validate here ({err.error_count()} problem(s)), so its "
                "shift onsets are unknown; report it with the version that ran it"
            ) from None


PAIRED_KEYS = ("metric", "method", "reference", "difference", "low", "high", "verdict")


def _read_paired(path: Path) -> list[dict[str, Any]]:
    """``paired.csv``'s rows, or a one-line error if it is not one (the report quotes it)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as err:
        raise RunFolderError(
            f"{path}: unreadable ({err}); rebuild it with simulate --resume"
        ) from None
    if rows and not all(key in header for key in PAIRED_KEYS):
        raise RunFolderError(
            f"{path}: not a paired table (needs {', '.join(PAIRED_KEYS)}); "
            "rebuild it with simulate --resume"
        )
    return rows


# Summary columns where null means "does not apply" (not "could not be computed").
NULL_IS_ABSENT = frozenset(
    {
        "method",
        "seed",
        "starting_model",
        "prototypes_final",
        "model_parameters",
        "model_flops_per_sample",
        "pretrain_seed",
        "complete",
    }
)


def _read_summary(path: Path) -> list[dict[str, Any]]:
    """``summary.json``: a list of rows, each naming its method and seed."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(
            f"{path}: not valid JSON ({err}); rebuild it with simulate --resume"
        ) from None
    rows_ok = isinstance(summary, list) and all(
        isinstance(r, dict) and "method" in r and "seed" in r for r in summary
    )
    if not rows_ok:
        raise RunFolderError(f"{path}: expected a list of rows with 'method' and 'seed'")
    # A figure the run could not compute is null on disk and NaN in memory, as in summary.csv.
    return [
        {k: math.nan if v is None and k not in NULL_IS_ABSENT else v for k, v in row.items()}
        for row in summary
    ]


def load_run(folder: str | Path) -> RunResults:
    """Load a run folder written by ``simulate``; errors say which file is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a run folder")
    writer = held_by(folder)
    needed = [folder / "scenario.yaml", folder / "summary.json"]
    for path in needed:
        if not path.exists():
            if writer is not None:
                raise RunFolderError(
                    f"{folder}: still running ({writer}); its {path.name} is written when "
                    "it ends, report it then"
                )
            raise RunFolderError(f"{folder}: missing {path.name} (is this a run folder?)")
    # Read, not validated: a folder written by an older version stays reportable.
    scenario = read_document(folder / "scenario.yaml")
    listed = scenario.get("methods")
    if not isinstance(listed, list) or not all(isinstance(m, dict) and "name" in m for m in listed):
        raise RunFolderError(f"{folder / 'scenario.yaml'}: methods: expected a list of methods")
    summary = _read_summary(folder / "summary.json")
    methods = {str(m["name"]) for m in listed}
    runs = {}
    for path in sorted((folder / "metrics").glob("*__seed*.jsonl")):
        method, seed_text = path.stem.rsplit("__seed", 1)
        if method not in methods or not seed_text.isdigit():
            listed_names = ", ".join(sorted(methods))
            raise RunFolderError(
                f"{path}: not a metrics file of this run (methods: {listed_names})"
            )
        rows = read_rows(path)
        runs[(method, int(seed_text))] = MethodRun(
            method,
            int(seed_text),
            [r for r in rows if r.get("kind") == "round"],
            [r for r in rows if r.get("kind") == "eval" and r.get("acc_mean") is not None],
            _facts(rows),
        )
    if not runs:
        raise RunFolderError(f"{folder}: no metrics files under metrics/")
    fleets = {}
    for path in sorted((folder / "fleet").glob("seed*.csv")):
        with path.open(encoding="utf-8") as handle:
            fleets[int(path.stem.removeprefix("seed"))] = list(csv.DictReader(handle))
    paired = []
    if (folder / PAIRED_FILE).exists():
        paired = _read_paired(folder / PAIRED_FILE)
    recorded = read_recorded(folder / RECORDED_FILE)
    return RunResults(folder, scenario, summary, runs, fleets, paired, writer, recorded)


def read_recorded(path: Path) -> dict[str, Any]:
    """``recorded.json`` (empty where an older version wrote the folder)."""
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(
            f"{path}: unreadable ({err}); rebuild it with simulate --resume"
        ) from None
    if not isinstance(document, dict):
        raise RunFolderError(f"{path}: expected a mapping; rebuild it with simulate --resume")
    return document
