"""Build ``report.html`` (self-contained: plots embedded) and ``report.md`` for a run,
and a side-by-side comparison of several runs."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from reports.adapter import ADAPTER_HEAD, adapter_lines, adapter_warnings
from reports.plots import FIGURES, colour, write_plots
from reports.statistics import mean_ci95
from reports.table import (
    COLUMNS,
    METRIC_NAMES,
    divergence_warnings,
    points,
    reading,
    table,
    value,
)
from simulator.run.provenance import provenance_differences
from simulator.run.reader import RunFolderError, RunResults, load_run

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; }
th { background: #f3f3f3; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; }
img { max-width: 100%; border: 1px solid #eee; }
.settings td { text-align: left; }
"""


ADAPTER_TITLE = "Persona's adapter on held-out episodes (pretraining's held-out samples)"


def key_settings(
    scenario: dict[str, Any], summary: list[dict[str, Any]] | None = None
) -> list[tuple[str, str]]:
    """The scenario's settings a reader needs before the table."""
    fleet, rounds = scenario.get("fleet", {}), scenario.get("rounds", {})
    classes = ", ".join(f"{c['name']} ({c['share']})" for c in fleet.get("classes", []))
    shifts = (
        "; ".join(
            f"{s['kind']} {s['severity']:g} at {s['onset_s']:g} s"
            + (f" (ramp {s['ramp_s']:g} s)" if s.get("ramp_s") else "")
            for s in scenario.get("shifts", [])
        )
        or "none"
    )
    return [
        ("scenario", f"{scenario.get('name', '?')}: {scenario.get('description', '')}"),
        ("starting model", starting_model_line(scenario)),
        ("device model", device_model_line(scenario, summary or [])),
        ("fleet", f"{fleet.get('devices')} devices; classes {classes}"),
        (
            "data",
            f"{scenario.get('data', {}).get('dataset')}, window "
            f"{scenario.get('data', {}).get('window')}",
        ),
        (
            "rounds",
            f"{rounds.get('count')} x {rounds.get('period_s')} s, deadline "
            f"{rounds.get('deadline_s')} s, participation {rounds.get('participation')}",
        ),
        ("shifts", shifts),
        ("methods", ", ".join(m["name"] for m in scenario.get("methods", []))),
    ]


STARTING_MODELS = {
    "cloud-best": "cloud-best: the best model the cloud can make (its base share, clean and "
    "under every family context); static is what the cloud would ship",
    "base-only": "base-only: a model shipped before the cloud had its family data (clean "
    "and pretrain.base only); every family context is new to it",
}


def device_model_line(scenario: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    """The device model's width and head, with its measured size where the run recorded it."""
    model = scenario.get("model", {})
    head = model.get("head_hidden", [64])
    text = f"width {model.get('width', 1.0):g}, head hidden layers {head}"
    sized = next((r for r in summary if r.get("model_parameters") is not None), None)
    if sized is not None:
        text += (
            f": {int(sized['model_parameters']):,} parameters, "
            f"{float(sized['model_flops_per_sample']):,.0f} FLOPs per sample"
        )
    return text


def starting_model_line(scenario: dict[str, Any]) -> str:
    """Which regime every method starts from (a reader must know before any figure)."""
    pretrain = scenario.get("pretrain", {})
    regime = pretrain.get("starting_model", "base-only")  # run folders older than the setting
    family = ", ".join(f"{c['kind']} {c['severity']:g}" for c in pretrain.get("family", []))
    return f"{STARTING_MODELS.get(regime, regime)}; family: {family or 'none'}"


def _html_table(results: RunResults) -> str:
    cells = table(results)
    head = "".join(f"<th>{html.escape(results.named(h))}</th>" for _, h, _, _ in COLUMNS)
    rows = []
    for method in results.methods:
        painted = _css(colour(method, results.colours))
        swatch = f'<span class="swatch" style="background:{painted}"></span>'
        tds = "".join(
            f"<td>{html.escape(c.text)}</td>" for c in (cells[method][col] for col, *_ in COLUMNS)
        )
        rows.append(f"<tr><td>{swatch}{html.escape(method)}</td>{tds}</tr>")
    return f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"


def paired_lines(results: RunResults) -> list[list[str]]:
    """The paired comparisons as table rows: method, reference, metric, difference, CI, verdict."""
    return [
        [
            row["method"],
            row["reference"],
            results.named(METRIC_NAMES.get(row["metric"], row["metric"])),
            f"{points(row['difference']):+.2f}",
            f"{points(row['low']):+.2f} to {points(row['high']):+.2f}",
            row["verdict"],
        ]
        for row in results.paired
    ]


PAIRED_HEAD = ["method", "vs", "metric", "difference (points)", "95% CI (points)", "verdict"]


def _html_rows(head: list[str], lines: list[list[str]]) -> str:
    """An HTML table of text cells (escaped) under a header row."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in line) + "</tr>"
        for line in lines
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _html_paired(results: RunResults) -> str:
    lines = paired_lines(results)
    if not lines:
        return "<p><i>One seed: no paired comparison (a verdict needs --seeds 3 or more).</i></p>"
    return _html_rows(PAIRED_HEAD, lines)


def _html_adapter(results: RunResults) -> str:
    lines = adapter_lines(results)
    return f"<h2>{ADAPTER_TITLE}</h2>{_html_rows(ADAPTER_HEAD, lines)}" if lines else ""


def _warnings(results: RunResults) -> list[str]:
    """What a reader must know before trusting the numbers: a run still being written,
    useless edits, diverged models."""
    live = []
    if results.writer is not None:
        live.append(
            f"**Still running** ({results.writer}): these figures are those of the rounds on "
            "disk so far; rebuild the report when the run ends."
        )
    unfinished = results.unfinished()
    if unfinished:
        live.append(
            f"**Unfinished** (interrupted; `simulate --resume` continues them): "
            f"{', '.join(unfinished)}. Their figures cover the rounds run, not the scenario."
        )
    return live + adapter_warnings(results) + divergence_warnings(results)


def _css(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "rgb({},{},{})".format(*(int(255 * v) for v in value[:3]))


def _markdown_bold(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def write_html(results: RunResults, plots: dict[str, Path], path: Path) -> None:
    settings = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in key_settings(results.scenario, results.summary)
    )
    figures = []
    for name, (generic, _) in FIGURES.items():
        title = results.named(generic)
        if name in plots:
            data = base64.b64encode(plots[name].read_bytes()).decode("ascii")
            figures.append(
                f'<h3>{html.escape(title)}</h3><img alt="{html.escape(title)}" '
                f'src="data:image/png;base64,{data}">'
            )
        else:
            figures.append(
                f"<h3>{html.escape(title)}</h3><p><i>No data for this figure in this run.</i></p>"
            )
    text = "".join(
        f"<li>{_markdown_bold(line)}</li>" for line in _warnings(results) + reading(results)
    )
    seeds = ", ".join(str(s) for s in results.seeds)
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(results.name)}: persona-fleet report</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(results.name)}</h1>"
        f"<table class='settings'>{settings}<tr><td>seeds</td><td>{seeds}</td></tr></table>"
        f"<h2>Results (mean ± 95% t-interval over seeds)</h2>{_html_table(results)}"
        f"<h2>Paired differences (per-seed differences; t interval over seeds)</h2>"
        f"{_html_paired(results)}"
        f"<h2>Reading</h2><ul>{text}</ul>{_html_adapter(results)}"
        f"<h2>Figures</h2>{''.join(figures)}"
        f"</body></html>"
    )
    path.write_text(document, encoding="utf-8")


def write_markdown(results: RunResults, plots: dict[str, Path], path: Path) -> None:
    cells = table(results)
    lines = [f"# {results.name}", ""]
    lines += [f"- **{k}**: {v}" for k, v in key_settings(results.scenario, results.summary)]
    lines += [
        f"- **seeds**: {', '.join(str(s) for s in results.seeds)}",
        "",
        "## Results (mean ± 95% t-interval over seeds)",
        "",
    ]
    lines.append("| method | " + " | ".join(results.named(h) for _, h, _, _ in COLUMNS) + " |")
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    for method in results.methods:
        row = [c.text for c in (cells[method][col] for col, *_ in COLUMNS)]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    lines += ["", "## Paired differences (per-seed differences; t interval over seeds)", ""]
    paired = paired_lines(results)
    if paired:
        lines.append("| " + " | ".join(PAIRED_HEAD) + " |")
        lines.append("|---" * len(PAIRED_HEAD) + "|")
        lines += ["| " + " | ".join(line) + " |" for line in paired]
    else:
        lines.append("One seed: no paired comparison (a verdict needs --seeds 3 or more).")
    lines += ["", "## Reading", ""]
    lines += [f"- {line}" for line in _warnings(results) + reading(results)]
    adapter = adapter_lines(results)
    if adapter:
        lines += ["", f"## {ADAPTER_TITLE}", "", "| " + " | ".join(ADAPTER_HEAD) + " |"]
        lines.append("|---" * len(ADAPTER_HEAD) + "|")
        lines += ["| " + " | ".join(line) + " |" for line in adapter]
    lines += ["", "## Figures", ""]
    for name, (generic, _) in FIGURES.items():
        if name in plots:
            title = results.named(generic)
            lines += [f"### {title}", "", f"![{title}](plots/{plots[name].name})", ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_report(folder: str | Path) -> Path:
    """(Re)build plots, ``report.html`` and ``report.md`` in a run folder; returns the HTML."""
    results = load_run(folder)
    plots = write_plots(results, results.folder / "plots")
    write_html(results, plots, results.folder / "report.html")
    write_markdown(results, plots, results.folder / "report.md")
    return results.folder / "report.html"


def compare_runs(folders: list[str | Path], out: Path) -> Path:
    """Several runs side by side: one table (run, method) and one accuracy figure."""
    import matplotlib.pyplot as plt

    from reports.series import accuracy_band

    runs = [load_run(f) for f in folders]
    metrics = sorted({results.metric for results in runs})
    if len(metrics) > 1:
        raise RunFolderError(
            f"compare: the runs measure different things ({', '.join(metrics)}); "
            "compare runs of one task at a time"
        )
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 5))
    styles = ["-", "--", ":", "-."]
    rows = []
    for i, results in enumerate(runs):
        live = ", still running" if results.writer is not None else ""
        live += ", unfinished" if results.unfinished() else ""
        label = f"{results.name} ({results.folder.name}{live})"
        for method in results.methods:
            times, mean, _ = accuracy_band(results.of(method))
            ax.plot(
                times / 60,
                mean,
                color=colour(method, results.colours),
                linestyle=styles[i % len(styles)],
                label=f"{method} / {label}",
            )
            acc, half = mean_ci95([value(r, "acc_mean") for r in results.summary_of(method)])
            moved = mean_ci95(
                [
                    value(r, "bytes_up_per_device") + value(r, "bytes_down_per_device")
                    for r in results.summary_of(method)
                ]
            )[0]
            rows.append((label, method, acc, half, moved))
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("fleet accuracy")
    ax.set_title("Runs compared")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    png = out / "compare_accuracy.png"
    fig.savefig(png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    body = "".join(
        f"<tr><td>{html.escape(run)}</td><td>{html.escape(m)}</td><td>{a:.4f} ± {h:.4f}</td>"
        f"<td>{b:,.0f}</td></tr>"
        for run, m, a, h, b in rows
    )
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    differences = provenance_differences([results.folder for results in runs])
    caveat = (
        "<p>These runs were made with different code, packages or machines (their "
        "provenance.json):</p><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in differences)
        + "</ul>"
        if differences
        else ""
    )
    (out / "compare.html").write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>persona-fleet comparison"
        f"</title><style>{STYLE}</style></head><body><h1>Runs compared</h1><table><tr><th>run"
        f"</th><th>method</th><th>accuracy (time-avg)</th><th>bytes per device</th></tr>{body}"
        f"</table>{caveat}<img alt='accuracy' src='data:image/png;base64,{data}'></body></html>",
        encoding="utf-8",
    )
    return out / "compare.html"
