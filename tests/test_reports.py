"""Reports from a saved results folder: files, embedded images, numbers equal the summary."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from reports.build import build_report, compare_runs
from reports.table import COLUMNS
from simulator.cli import main
from simulator.run.reader import read_rows


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A three-seed run of the tiny scenario through the command line (which builds the report)."""
    from conftest import TINY, write_yaml

    root = tmp_path_factory.mktemp("runs")
    document = json.loads(json.dumps(TINY))
    document["rounds"]["count"] = 3
    scenario = write_yaml(root / "tiny.yaml", document)
    args = [str(scenario), "--methods", "static,fedavg", "--seeds", "3", "--out", str(root)]
    assert main([*args, "--no-progress"]) == 0
    (folder,) = (root / document["name"]).iterdir()
    return folder


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.cells: list[str] = []
        self.stack: list[str] = []

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] in ("td", "b"):
            self.cells.append(data.strip())


def test_a_run_writes_every_report_file(run_folder):
    for name in (
        "accuracy_over_time",
        "accuracy_vs_bytes",
        "device_accuracy",
        "recovery",
        "traffic_compute",
        "energy",
        "fleet",
        "rounds",
    ):
        assert (run_folder / "plots" / f"{name}.png").stat().st_size > 5_000
        assert (run_folder / "plots" / f"{name}.svg").exists()
    assert not (run_folder / "plots" / "prototypes.png").exists()  # no Persona in this run
    assert (run_folder / "report.md").read_text().count("![") == 8


def test_html_embeds_the_images_and_is_well_formed(run_folder):
    parser = _Collect()
    parser.feed((run_folder / "report.html").read_text())
    assert parser.stack == ["html"] or parser.stack == []
    assert len(parser.images) == 8
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in (run_folder / "report.html").read_text()  # nothing to fetch


def test_table_numbers_equal_the_summary(run_folder):
    summary = json.loads((run_folder / "summary.json").read_text())
    parser = _Collect()
    parser.feed((run_folder / "report.html").read_text())
    text = " ".join(parser.cells)
    for method in ("static", "fedavg"):
        rows = [r for r in summary if r["method"] == method]
        assert {r["starting_model"] for r in rows} == {"cloud-best"}
        mean = sum(r["acc_mean"] for r in rows) / len(rows)
        assert f"{mean:.4f}" in text
        bytes_up = sum(r["bytes_up_per_device"] for r in rows) / len(rows)
        assert f"{bytes_up:,.0f}" in text
    md = (run_folder / "report.md").read_text()
    assert all(heading in md for _, heading, _, _ in COLUMNS)


def _device_means(rows: list[dict]) -> dict[int, float]:
    per_device: dict[int, list[float]] = {}
    for row in rows:
        if row["kind"] == "eval" and row["acc_mean"] is not None:
            for device, acc in zip(row["devices"], row["accs"], strict=True):
                per_device.setdefault(device, []).append(acc)
    return {d: sum(v) / len(v) for d, v in per_device.items()}


def test_paired_differences_equal_a_hand_computation_from_the_rows(run_folder):
    with (run_folder / "paired.csv").open() as handle:
        paired = list(csv.DictReader(handle))
    (row,) = [
        r
        for r in paired
        if (r["metric"], r["method"], r["reference"]) == ("acc_mean", "fedavg", "static")
    ]
    differences = []
    for seed in (0, 1, 2):
        ours = _device_means(read_rows(run_folder / "metrics" / f"fedavg__seed{seed}.jsonl"))
        theirs = _device_means(read_rows(run_folder / "metrics" / f"static__seed{seed}.jsonl"))
        shared = sorted(set(ours) & set(theirs))
        differences.append(sum(ours[d] - theirs[d] for d in shared) / len(shared))
    mean = sum(differences) / 3
    sd = (sum((d - mean) ** 2 for d in differences) / 2) ** 0.5
    half = 4.302652729749462 * sd / 3**0.5  # Student t, 2 degrees of freedom, 97.5%
    assert float(row["difference"]) == pytest.approx(mean, abs=1e-12)
    assert float(row["low"]) == pytest.approx(mean - half, abs=1e-12)
    assert float(row["high"]) == pytest.approx(mean + half, abs=1e-12)
    assert int(row["seeds"]) == 3
    verdict = "lead" if float(row["low"]) > 0 else "behind" if float(row["high"]) < 0 else None
    assert row["verdict"] == (verdict or "no detectable difference")


def test_the_reading_claims_only_what_the_intervals_support(run_folder):
    html_text = (run_folder / "report.html").read_text()
    with (run_folder / "paired.csv").open() as handle:
        paired = [r for r in csv.DictReader(handle) if r["metric"] == "acc_post_shift"]
    assert paired
    for row in paired:
        if row["verdict"] == "no detectable difference":
            expected = f"No detectable difference between {row['method']} and {row['reference']}"
        elif row["verdict"] == "lead":
            expected = f"<b>{row['method']}</b> leads {row['reference']}"
        else:
            expected = f"{row['method']} is behind {row['reference']}"
        assert expected in html_text
    visible = re.sub(r'src="data:[^"]*"', "", html_text)
    assert not re.search(r"\bnan\b", visible.lower())


def test_a_method_compared_with_itself_shows_no_detectable_difference(run_folder):
    from reports.table import paired_sentence
    from simulator.run.accuracy import answered
    from simulator.run.paired import METRICS, compare

    rows = {
        s: answered(read_rows(run_folder / "metrics" / f"fedavg__seed{s}.jsonl")) for s in (0, 1, 2)
    }
    for metric in METRICS:
        same = compare(rows, rows, metric, [240.0], 600.0, ("fedavg", "fedavg"))
        if metric.context is not None and not same.devices:
            continue  # tiny deploys no context the cloud knows: no figure to compare
        assert same.difference == 0.0 and same.verdict == "no detectable difference"
        sentence = paired_sentence({**same.__dict__, "verdict": same.verdict})
        assert sentence.startswith("No detectable difference between fedavg and fedavg")


def test_report_command_rebuilds_and_compare_joins_runs(run_folder, tmp_path, capsys):
    (run_folder / "report.html").unlink()
    assert main(["report", str(run_folder)]) == 0
    assert (run_folder / "report.html").exists()
    assert "starting model**: cloud-best" in (run_folder / "report.md").read_text()
    out = compare_runs([run_folder, run_folder], tmp_path / "cmp")
    assert out.read_text().count("<tr>") == 1 + 4  # header + 2 runs x 2 methods
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a run folder" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium not installed")
def test_report_renders_in_headless_chromium(run_folder, tmp_path):
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            "--dump-dom",
            (run_folder / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.count("<img") == 8 and "Results (mean" in result.stdout
    build_report(run_folder)  # and the screenshot path works as well
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile2'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            (run_folder / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000


def test_the_report_shows_the_adapter_record_and_warns_when_edits_do_not_help(run_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder)
    path = folder / "metrics" / "fedavg__seed0.jsonl"  # stands in for a Persona run's file
    rows = read_rows(path)
    record = {
        "loss": 0.4,
        "accuracy_edited": 0.61,
        "accuracy_unedited": 0.64,
        "best_step": 100,
        "by_context": {"rotation=30": {"edited": 0.7, "unedited": 0.5}},
    }
    rows[-1]["facts"] = {"prototypes": 4, "adapter_heldout": record}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_report(folder)
    text = (folder / "report.md").read_text()
    assert "| fedavg | 0 | rotation=30 | 50.0% | 70.0% | +20.0 points |" in text
    assert "| fedavg | 0 | all held-out episodes | 64.0% | 61.0% | -3.0 points |" in text
    assert "does not help on held-out episodes" in text
    assert "does not help" not in (run_folder / "report.md").read_text()  # no record, no claim


def test_two_seeds_give_intervals_but_no_verdict(tmp_path):
    """The seed is the unit of replication: two seeds cannot support a lead or a deficit."""
    from conftest import TINY, write_yaml

    document = json.loads(json.dumps(TINY))
    document["rounds"]["count"] = 3
    scenario = write_yaml(tmp_path / "tiny.yaml", document)
    args = [str(scenario), "--methods", "static,fedavg", "--seeds", "2", "--out", str(tmp_path)]
    assert main([*args, "--no-progress"]) == 0
    (folder,) = (tmp_path / document["name"]).iterdir()
    with (folder / "paired.csv").open() as handle:
        paired = list(csv.DictReader(handle))
    assert paired and {r["verdict"] for r in paired} == {"too few seeds"}
    assert all(float(r["low"]) <= float(r["high"]) for r in paired)  # intervals still shown
    report = (folder / "report.md").read_text()
    assert "too few seeds for a verdict" in report
    assert " leads " not in report and "is behind" not in report


def test_the_time_band_is_the_paired_t_band_of_per_seed_differences():
    from reports.series import paired_band
    from simulator.run.reader import MethodRun

    def run(seed, accs):
        tick = {"time_s": 60.0, "devices": [0, 1, 2], "accs": accs}
        return MethodRun("m", seed, [], [{**tick, "acc_mean": sum(accs) / 3}])

    ours = [run(0, [0.9, 0.8, 0.7]), run(1, [0.6, 0.6, 0.6]), run(2, [0.5, 0.9, 0.7])]
    theirs = [run(0, [0.8, 0.8, 0.8]), run(1, [0.5, 0.5, 0.5]), run(2, [0.6, 0.6, 0.6])]
    times, mean, low, high = paired_band(ours, theirs)
    differences = [0.0, 0.1, 0.1]  # per seed, on the same devices
    half = 4.302652729749462 * float(np.std(differences, ddof=1)) / 3**0.5
    assert list(times) == [60.0]
    assert mean[0] == pytest.approx(np.mean(differences))
    assert (low[0], high[0]) == pytest.approx((mean[0] - half, mean[0] + half))
    _, _, low, _ = paired_band(ours[:1], theirs[:1])
    assert np.isnan(low[0])  # one seed: no band


def test_an_unfinished_method_seed_is_named_in_the_report_and_compare(run_folder, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(run_folder, folder)
    summary = json.loads((folder / "summary.json").read_text())
    cut = next(row for row in summary if row["method"] == "fedavg" and row["seed"] == 1)
    cut["complete"], cut["rounds"] = False, 2
    (folder / "summary.json").write_text(json.dumps(summary))
    build_report(folder)
    text = (folder / "report.md").read_text()
    assert "**Unfinished**" in text and "fedavg seed 1 (2 of 3 rounds)" in text
    assert "Unfinished" not in (run_folder / "report.md").read_text()
    compare_runs([run_folder, folder], tmp_path / "cmp")
    assert f"{folder.name}, unfinished" in (tmp_path / "cmp" / "compare.html").read_text()


def test_compare_refuses_runs_that_measure_different_things(run_folder, tmp_path):
    import yaml

    from simulator.run.reader import RunFolderError

    folder = tmp_path / "auc"
    shutil.copytree(run_folder, folder)
    document = yaml.safe_load((folder / "scenario.yaml").read_text())
    document["data"]["dataset"] = "interests"
    (folder / "scenario.yaml").write_text(yaml.safe_dump(document))
    recorded = json.loads((folder / "recorded.json").read_text())  # what the run measured
    (folder / "recorded.json").write_text(json.dumps({**recorded, "metric": "AUC"}))
    with pytest.raises(RunFolderError, match="different things \\(AUC, accuracy\\)"):
        compare_runs([run_folder, folder], tmp_path / "cmp")


def test_each_pair_of_methods_is_compared_once(run_folder):
    from simulator.run.reader import load_run

    pairs = [frozenset((r["method"], r["reference"])) for r in load_run(run_folder).paired]
    by_metric = {}
    for row, pair in zip(load_run(run_folder).paired, pairs, strict=True):
        by_metric.setdefault(row["metric"], []).append(pair)
    assert all(len(p) == len(set(p)) for p in by_metric.values())  # never A-B and B-A
    assert frozenset(("fedavg", "static")) in by_metric["acc_mean"]


def test_figures_draw_nothing_where_a_method_sends_nothing(run_folder):
    """Static is a level line on the traffic axis, not a point at 1 byte; no bar stands
    for "none"; counts get whole-number ticks."""
    import matplotlib.pyplot as plt

    from reports.plots import accuracy_vs_bytes, rounds_and_drops, traffic_and_compute
    from simulator.run.reader import load_run

    results = load_run(run_folder)
    fig = accuracy_vs_bytes(results)
    ax = fig.axes[0]
    static = [line for line in ax.get_lines() if line.get_label().startswith("static")]
    assert len(static) == 1 and "no traffic" in static[0].get_label()
    lowest = min(min(line.get_xdata()) for line in ax.get_lines() if line not in static)
    assert lowest > 100  # the data decades only (static's level line spans the axis)
    plt.close(fig)
    fig = traffic_and_compute(results)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert all(not (h > 0) or h > 1.5 for h in heights)  # no stand-in bar of height 1
    assert any(t.get_text() == "no traffic" for t in fig.axes[0].texts)
    plt.close(fig)
    fig = rounds_and_drops(results)
    ticks = fig.axes[1].get_yticks()
    assert all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_building_a_report_loads_no_method_persona_or_flower(run_folder):
    """Reports read run folders; the methods, Persona and Flower stay unloaded."""
    from conftest import fresh_interpreter

    probe = (
        "import sys\nfrom reports.build import build_report\n"
        f"build_report({str(run_folder)!r})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'strategies', 'persona', 'flwr'}))"
    )
    assert fresh_interpreter(probe, timeout=300) == "[]"


def test_a_schedule_run_is_reported_from_what_it_recorded(tmp_path):
    """Its onsets (and so the post-shift headline) come from recorded.json, even where its
    scenario no longer validates; without the record that is one line, never a guess."""
    import yaml
    from conftest import TINY, write_yaml

    from reports.table import headline_metric
    from simulator.run.reader import RunFolderError, load_run

    document = json.loads(json.dumps(TINY))
    document.pop("shifts")
    document["schedule"] = {
        "groups": 2,
        "contexts": {"tilted": [{"kind": "rotation", "severity": 60}]},
        "segments": [{"from_s": 240, "groups": ["tilted", "clean"]}],
    }
    scenario = write_yaml(tmp_path / "schedule.yaml", document)
    args = [str(scenario), "--methods", "static", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    (folder,) = (tmp_path / "tiny-test").iterdir()
    stored = yaml.safe_load((folder / "scenario.yaml").read_text())
    stored["schedule"]["segments"][0]["groups"] = ["tilted", "nowhere"]  # no longer valid
    (folder / "scenario.yaml").write_text(yaml.safe_dump(stored))
    results = load_run(folder)
    assert results.onsets_s == [240.0] and headline_metric(results) == "acc_post_shift"
    (folder / "recorded.json").unlink()
    with pytest.raises(RunFolderError, match=r"no recorded\.json .* shift onsets are unknown"):
        _ = load_run(folder).onsets_s
