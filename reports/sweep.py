"""The regime map: a sweep's winner per cell, Persona's margin, accuracy against bytes.

Read from the sweep folder (``sweep.json`` and ``sweep.csv``, through
``simulator.sweep.reader``):
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
from simulator.sweep.reader import SweepResults, load_sweep  # noqa: E402

NONE_COLOUR = "#eeeeee"
NO_WINNER = "none detectable"

Cell = dict[str, dict[str, Any]]  # method -> its sweep.csv row, for one cell


def _cells(results: SweepResults) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for row in results.done():
        cells.setdefault(row["cell"], {})[row["method"]] = row
    return cells


def _label(results: SweepResults, cell: Cell) -> str:
    values = results.cell_values(next(iter(cell.values())))
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _panels(axes: list[tuple[str, list[Any]]]):
    """(row axis, column axis or None, fixed values of the other axes) for every heatmap."""
    if len(axes) == 1:
        return [(axes[0], None, {})]
    panels = []
    for i, j in itertools.combinations(range(len(axes)), 2):
        rest = [a for k, a in enumerate(axes) if k not in (i, j)]
        for fixed in itertools.product(*(values for _, values in rest)):
            panels.append((axes[i], axes[j], dict(zip((k for k, _ in rest), fixed, strict=True))))
    return panels


def _cells_in(panel, results: SweepResults) -> dict[tuple, Cell]:
    rows, cols, fixed = panel
    found = {}
    for cell in _cells(results).values():
        values = results.cell_values(next(iter(cell.values())))
        if all(values[k] == v for k, v in fixed.items()):
            found[(values[rows[0]], values[cols[0]] if cols else "")] = cell
    return found


def _short(key: str) -> str:
    return key if len(key) <= 32 else "..." + key[-29:]


def _heatmap(panel, results, title: str, cell_text, cell_colour, path: Path) -> Path:
    (row_key, row_values), cols, fixed = panel
    col_values = cols[1] if cols else [""]
    found = _cells_in(panel, results)
    image = np.ones((len(row_values), len(col_values), 3))
    fig, ax = plt.subplots(figsize=(1.9 + 1.7 * len(col_values), 1.2 + 0.8 * len(row_values)))
    for r, rv in enumerate(row_values):
        for c, cv in enumerate(col_values):
            cell = found.get((rv, cv))
            image[r, c] = to_rgb(cell_colour(cell)) if cell else to_rgb("#ffffff")
            text = cell_text(cell) if cell else "failed or not run"
            ax.text(c, r, text, ha="center", va="center", fontsize=7)
    ax.imshow(image, aspect="auto")
    ax.set_yticks(range(len(row_values)), [str(v) for v in row_values])
    ax.set_ylabel(_short(row_key))
    ax.set_xticks(range(len(col_values)), [str(v) for v in col_values])
    ax.set_xlabel(_short(cols[0]) if cols else "")
    suffix = ", ".join(f"{k}={v}" for k, v in fixed.items())
    ax.set_title(title + (f" ({suffix})" if suffix else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _winner_of(cell: Cell) -> str | None:
    found = next(iter(cell.values()))["cell_winner"]
    return None if found == NO_WINNER else found


def _margin(cell: Cell, subject: str) -> tuple[str, float, float, float] | None:
    """The subject's difference against the best other method of the cell, and its interval."""
    row = cell.get(subject)
    if row is None or not row.get("best_other"):
        return None
    return row["best_other"], float(row["difference"]), float(row["low"]), float(row["high"])


def _margin_text(cell: Cell, subject: str) -> str:
    found = _margin(cell, subject)
    if found is None:
        return "-"
    other, d, low, high = found
    return f"{100 * d:+.1f} vs {other}\n[{100 * low:+.1f}, {100 * high:+.1f}]"


def _margin_colour(cell: Cell, subject: str) -> str:
    found = _margin(cell, subject)
    if found is None or not math.isfinite(found[2]):
        return NONE_COLOUR
    _, _, low, high = found
    return "#9fd89f" if low > 0 else "#f4a3a3" if high < 0 else NONE_COLOUR


def _scatter(results: SweepResults, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = results.done()
    metric = rows[0]["metric"]
    for method in dict.fromkeys(r["method"] for r in rows):
        points = [
            (float(r["bytes_per_device_round"]), float(r[metric]))
            for r in rows
            if r["method"] == method and r["bytes_per_device_round"] and r[metric]
        ]
        points = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(
                [max(x, 1.0) for x in xs],
                [100 * y for y in ys],
                label=method,
                s=18,
                color=colour(method, results.colours),
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


def write_plots(results: SweepResults) -> list[tuple[str, Path]]:
    plots = results.folder / "plots"
    plots.mkdir(exist_ok=True)
    subject = results.subject  # the method the project studies, as the cells recorded it
    has_subject = subject is not None and any(r["method"] == subject for r in results.done())
    figures = []
    for n, panel in enumerate(_panels(results.axes)):
        figures.append(
            (
                "Winner per cell (paired 95% interval above 0 against every other method)",
                _heatmap(
                    panel,
                    results,
                    "winner",
                    lambda cell: _winner_of(cell) or "none",
                    lambda cell: (
                        colour(w, results.colours) if (w := _winner_of(cell)) else NONE_COLOUR
                    ),
                    plots / f"sweep-winner-{n}.png",
                ),
            )
        )
        if has_subject:
            assert subject is not None
            figures.append(
                (
                    f"{subject} minus the best other method, points [95% interval]",
                    _heatmap(
                        panel,
                        results,
                        f"{subject}'s margin",
                        lambda cell: _margin_text(cell, subject),
                        lambda cell: _margin_colour(cell, subject),
                        plots / f"sweep-margin-{n}.png",
                    ),
                )
            )
    figures.append(("Accuracy against bytes", _scatter(results, plots / "sweep-acc-bytes.png")))
    return figures


def reading(results: SweepResults) -> list[str]:
    """Sentences computed from the cells; a claim only where an interval supports it."""
    cells = _cells(results)
    lines = []
    wins: dict[str, list[str]] = {}
    for cell in cells.values():
        wins.setdefault(_winner_of(cell) or "", []).append(_label(results, cell))
    for method, labels in sorted(wins.items()):
        if method:
            lines.append(f"{method} wins {len(labels)} of {len(cells)} cells: {'; '.join(labels)}.")
    if "" in wins:
        lines.append(
            f"No detectable winner in {len(wins[''])} of {len(cells)} cells: {'; '.join(wins[''])}."
        )
    leads, behind, ties = [], [], []
    subject = results.subject
    for cell in cells.values():
        found = None if subject is None else _margin(cell, subject)
        if found is None:
            continue
        other, d, low, high = found
        text = f"{_label(results, cell)} ({100 * d:+.1f} points vs {other})"
        (leads if low > 0 else behind if high < 0 else ties).append(text)
    for verb, group in (
        ("leads the best other method", leads),
        ("is behind the best other method", behind),
        ("shows no detectable difference from the best other method", ties),
    ):
        if group:
            lines.append(f"{subject} {verb} in {len(group)} cells: {'; '.join(group)}.")
    for row in results.failed():
        lines.append(f"{row['cell']} failed: {row['error'].splitlines()[0]}")
    return lines


def write_sweep_report(folder: Path) -> Path:
    """``sweep.md`` and a self-contained ``sweep.html`` (figures embedded); returns the HTML."""
    results = load_sweep(folder)
    sentences = reading(results)
    title = f"Sweep over {', '.join(key for key, _ in results.axes)}"
    figures = write_plots(results) if results.done() else []
    metric = results.done()[0]["metric"] if results.done() else "-"
    md = [f"# {title}", "", f"Headline metric: {metric}; table: sweep.csv.", ""]
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
        f"</head><body><h1>{html.escape(title)}</h1><p>Headline metric: {metric}; "
        f"table: sweep.csv.</p><h2>Reading</h2><ul>{body}</ul><h2>Figures</h2>{images}"
        f"</body></html>",
        encoding="utf-8",
    )
    return folder / "sweep.html"
