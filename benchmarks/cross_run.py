"""Paired differences between methods of two run folders of the same scenario and seeds.

A paired interval needs both methods on the same devices and samples. Two
runs of one scenario with the same seeds share them; this script checks it
(the reference method, ``static`` by default, must have identical evaluation
rows in both folders) before it compares each method of the first folder
with each method of the second, as ``paired.csv`` would. Usage:

    python benchmarks/cross_run.py RUN_A RUN_B [--reference static]
"""

from __future__ import annotations

import argparse

from simulator.run.paired import METRICS, compare
from simulator.run.reader import RunResults, load_run


def _evals(results: RunResults, method: str) -> dict[int, list[dict]]:
    return {run.seed: run.evals for run in results.of(method)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--reference", default="static")
    args = parser.parse_args()
    first, second = load_run(args.first), load_run(args.second)
    ref = args.reference
    if _evals(first, ref) != _evals(second, ref) or not _evals(first, ref):
        raise SystemExit(
            f"error: {ref}'s evaluation rows differ between the folders (or are missing): "
            "the runs do not share devices and samples, so no paired comparison"
        )
    window = float(first.scenario.get("rounds", {}).get("post_shift_window_s", 900.0))
    print(f"{ref}'s rows are identical in both folders ({len(first.seeds)} seeds)")
    for a in (m for m in first.methods if m != ref):
        for b in (m for m in second.methods if m != ref):
            for metric in METRICS:
                c = compare(
                    _evals(first, a), _evals(second, b), metric, first.onsets_s, window, (a, b)
                )
                print(
                    f"{a} vs {b} {metric.name}: {100 * c.difference:+.1f} "
                    f"[{100 * c.low:+.1f}, {100 * c.high:+.1f}] points "
                    f"({c.seeds} seeds; {c.verdict})"
                )


if __name__ == "__main__":
    main()
