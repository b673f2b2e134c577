"""Persona's adapter on held-out episodes: does its edit beat the unedited head?

Pretraining holds out images and scores the adapter on episodes drawn from
them (``persona.training``); the method writes those scores into its end row
(``run_facts``). A reader should see, per family context, what the edit adds,
and be told plainly when it adds nothing.
"""

from __future__ import annotations

from typing import Any

from simulator.run.reader import RunResults

ADAPTER_HEAD = ["method", "seed", "context", "unedited head", "edited head", "edit adds"]


def _records(results: RunResults) -> list[tuple[str, int, dict[str, Any]]]:
    found = []
    for (method, seed), run in sorted(results.runs.items()):
        record = run.facts.get("adapter_heldout")
        if isinstance(record, dict) and record:
            found.append((method, seed, record))
    return found


def _percent(value: Any) -> str:
    return f"{100 * float(value):.1f}%"


def adapter_lines(results: RunResults) -> list[list[str]]:
    """Table rows: every context of every adapter, then its overall line."""
    lines = []
    for method, seed, record in _records(results):
        contexts = record.get("by_context", {})
        overall = {"edited": record["accuracy_edited"], "unedited": record["accuracy_unedited"]}
        for name, scores in [*contexts.items(), ("all held-out episodes", overall)]:
            gain = 100 * (float(scores["edited"]) - float(scores["unedited"]))
            lines.append(
                [
                    method,
                    str(seed),
                    name,
                    _percent(scores["unedited"]),
                    _percent(scores["edited"]),
                    f"{gain:+.1f} points",
                ]
            )
    return lines


def adapter_warnings(results: RunResults) -> list[str]:
    """One sentence per adapter whose edits do not beat the unedited head on held-out episodes."""
    warnings = []
    for method, seed, record in _records(results):
        edited, unedited = float(record["accuracy_edited"]), float(record["accuracy_unedited"])
        if edited <= unedited:
            warnings.append(
                f"**Warning: {method}'s adapter (seed {seed}) does not help on held-out "
                f"episodes**: {_percent(edited)} with its edits, {_percent(unedited)} without."
            )
    return warnings
