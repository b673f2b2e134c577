"""The regime map: a sweep's winner per cell, Persona's margin, accuracy against bytes.

Read from the driver's ``CellResult`` list (the numbers of ``sweep.csv``):
- one winner heatmap per pair of axes (per value of any further axis), where
  a cell's winner has a paired 95% interval above 0 against every other
  method and a cell without one says "none";
- the same grid with Persona's difference against the best other method,
  its interval written in the cell;
- accuracy against bytes per device-round, one point per method and cell;
- a reading computed from the table, claiming nothing without an interval.
"""

from __future__ import annotations

import base64
import html
import itertools
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from reports.plots import colour  # noqa: E402
from simulator.sweep.grid import Axis  # noqa: E402
from simulator.sweep.table import CellResult, winner  # noqa: E402

NONE_COLOUR = "#eeeeee"
PERSONA = "persona"


def _key(values: dict[str, Any], keys: list[str]) -> tuple:
    return tuple(values[k] for k in keys)


def _panels(axes: list[Axis]) -> list[tuple[Axis, Axis | None, dict[str, Any]]]:
    """(row axis, column axis, fixed values of the other axes) for every heatmap."""
    if len(axes) == 1:
        return [(axes[0], None, {})]
    panels = []
    for i, j in itertools.combinations(range(len(axes)), 2):
        rest = [a for k, a in enumerate(axes) if k not in (i, j)]
        for fixed in itertools.product(*(a.values for a in rest)):
            panels.append((axes[i], axes[j], dict(zip((a.key for a in rest), fixed, strict=True))))
    return panels


def _cells_in(panel, results: list[CellResult]) -> dict[tuple, CellResult]:
    rows, cols, fixed = panel
    found = {}
    for result in results:
        values = dict(result.cell.values)
        if all(values[k] == v for k, v in fixed.items()):
            found[(values[rows.key], values[cols.key] if cols else "")] = result
    return found


def _short(key: str) -> str:
    return key if len(key) <= 32 else "..." + key[-29:]


def _heatmap(panel, results, title: str, cell_text, cell_colour, path: Path) -> Path:
    rows, cols, fixed = panel
    col_values = cols.values if cols else ("",)
    found = _cells_in(panel, results)
    image = np.ones((len(rows.values), len(col_values), 3))
    fig, ax = plt.subplots(figsize=(1.9 + 1.7 * len(col_values), 1.2 + 0.8 * len(rows.values)))
    for r, rv in enumerate(rows.values):
        for c, cv in enumerate(col_values):
            result = found.get((rv, cv))
            image[r, c] = to_rgb(cell_colour(result)) if result else to_rgb("#ffffff")
            text = cell_text(result) if result else "failed or not run"
            ax.text(c, r, text, ha="center", va="center", fontsize=7, wrap=True)
    ax.imshow(image, aspect="auto")
    ax.set_yticks(range(len(rows.values)), [str(v) for v in rows.values])
    ax.set_ylabel(_short(rows.key))
    ax.set_xticks(range(len(col_values)), [str(v) for v in col_values])
    ax.set_xlabel(_short(cols.key) if cols else "")
    suffix = ", ".join(f"{k}={v}" for k, v in fixed.items())
    ax.set_title(title + (f" ({suffix})" if suffix else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _winner_of(result: CellResult) -> str | None:
    return winner(result.methods, result.comparisons)


def _margin(result: CellResult) -> tuple[str, Any] | None:
    """Persona's difference against the best other method of the cell, with the comparison."""
    if PERSONA not in result.methods:
        return None
    other = result.best_other(PERSONA)
    return (other, result.comparisons[(PERSONA, other)]) if other else None


def _margin_text(result: CellResult) -> str:
    found = _margin(result)
    if found is None:
        return "-"
    other, c = found
    return f"{100 * c.difference:+.1f} vs {other}\n[{100 * c.low:+.1f}, {100 * c.high:+.1f}]"


def _margin_colour(result: CellResult) -> str:
    found = _margin(result)
    if found is None or not math.isfinite(found[1].low):
        return NONE_COLOUR
    c = found[1]
    return "#9fd89f" if c.low > 0 else "#f4a3a3" if c.high < 0 else NONE_COLOUR


def _scatter(results: list[CellResult], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    metric = results[0].metric
    methods = list(dict.fromkeys(m for r in results for m in r.methods))
    for method in methods:
        points = [
            (r.means[method]["bytes_per_device_round"], r.means[method][metric])
            for r in results
            if method in r.means
        ]
        points = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(
                [max(x, 1.0) for x in xs],
                [100 * y for y in ys],
                label=method,
                s=18,
                color=colour(method),
            )
    ax.set_xscale("log")
    ax.set_xlabel("bytes per device-round (log; 0 drawn at 1)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("Accuracy against bytes, one point per method and cell", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(
    folder: Path, axes: list[Axis], results: list[CellResult]
) -> list[tuple[str, Path]]:
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    figures = []
    for n, panel in enumerate(_panels(axes)):
        figures.append(
            (
                "Winner per cell (paired 95% interval above 0 against every other method)",
                _heatmap(
                    panel,
                    results,
                    "winner",
                    lambda r: _winner_of(r) or "none",
                    lambda r: colour(w) if (w := _winner_of(r)) else NONE_COLOUR,
                    plots / f"sweep-winner-{n}.png",
                ),
            )
        )
        if any(PERSONA in r.methods for r in results):
            figures.append(
                (
                    "Persona minus the best other method, points [95% interval]",
                    _heatmap(
                        panel,
                        results,
                        "Persona's margin",
                        _margin_text,
                        _margin_colour,
                        plots / f"sweep-margin-{n}.png",
                    ),
                )
            )
    figures.append(("Accuracy against bytes", _scatter(results, plots / "sweep-acc-bytes.png")))
    return figures


def reading(results: list[CellResult], failed: dict[str, str]) -> list[str]:
    """Sentences computed from the cells; a claim only where an interval supports it."""
    lines = []
    wins: dict[str, list[str]] = {}
    for result in results:
        wins.setdefault(_winner_of(result) or "", []).append(result.cell.label())
    for method, labels in sorted(wins.items()):
        if method:
            lines.append(
                f"{method} wins {len(labels)} of {len(results)} cells: {'; '.join(labels)}."
            )
    if "" in wins:
        lines.append(
            f"No detectable winner in {len(wins[''])} of {len(results)} cells: "
            f"{'; '.join(wins[''])}."
        )
    if any(PERSONA in r.methods for r in results):
        leads, behind, ties = [], [], []
        for result in results:
            found = _margin(result)
            if found is None:
                continue
            other, c = found
            text = f"{result.cell.label()} ({100 * c.difference:+.1f} points vs {other})"
            (leads if c.low > 0 else behind if c.high < 0 else ties).append(text)
        for verb, group in (
            ("leads the best other method", leads),
            ("is behind the best other method", behind),
            ("shows no detectable difference from the best other method", ties),
        ):
            if group:
                lines.append(f"Persona {verb} in {len(group)} cells: {'; '.join(group)}.")
    for name, error in sorted(failed.items()):
        lines.append(f"{name} failed: {error.splitlines()[0]}")
    return lines


def write_sweep_report(
    folder: Path, axes: list[Axis], results: list[CellResult], failed: dict[str, str]
) -> None:
    """``sweep.md`` and a self-contained ``sweep.html`` (figures embedded) in the sweep folder."""
    figures = write_plots(folder, axes, results)
    sentences = reading(results, failed)
    title = f"Sweep over {', '.join(a.key for a in axes)}"
    md = [f"# {title}", "", f"Headline metric: {results[0].metric}; table: sweep.csv.", ""]
    md += [f"- {line}" for line in sentences] + [""]
    for caption, path in figures:
        md += [f"### {caption}", "", f"![{caption}](plots/{path.name})", ""]
    (folder / "sweep.md").write_text("\n".join(md), encoding="utf-8")
    body = "".join(f"<li>{html.escape(line)}</li>" for line in sentences)
    images = "".join(
        f"<h3>{html.escape(caption)}</h3><img alt='{html.escape(caption)}' "
        f"src='data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')}'>"
        for caption, path in figures
    )
    (folder / "sweep.html").write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>Headline metric: {results[0].metric}; "
        f"table: sweep.csv.</p><h2>Reading</h2><ul>{body}</ul><h2>Figures</h2>{images}"
        f"</body></html>",
        encoding="utf-8",
    )
