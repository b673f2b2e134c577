"""Reports from a saved results folder: files, embedded images, numbers equal the summary."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from reports.build import build_report, compare_runs
from reports.table import COLUMNS
from simulator.cli import main


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A two-seed run of the tiny scenario through the command line (which builds the report)."""
    from conftest import TINY, write_yaml

    root = tmp_path_factory.mktemp("runs")
    document = json.loads(json.dumps(TINY))
    document["rounds"]["count"] = 3
    scenario = write_yaml(root / "tiny.yaml", document)
    args = [str(scenario), "--methods", "static,fedavg", "--seeds", "2", "--out", str(root)]
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
        "fleet",
        "rounds",
    ):
        assert (run_folder / "plots" / f"{name}.png").stat().st_size > 5_000
        assert (run_folder / "plots" / f"{name}.svg").exists()
    assert not (run_folder / "plots" / "prototypes.png").exists()  # no Persona in this run
    assert (run_folder / "report.md").read_text().count("![") == 7


def test_html_embeds_the_images_and_is_well_formed(run_folder):
    parser = _Collect()
    parser.feed((run_folder / "report.html").read_text())
    assert parser.stack == ["html"] or parser.stack == []
    assert len(parser.images) == 7
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
        mean = sum(r["acc_mean"] for r in rows) / len(rows)
        assert f"{mean:.4f}" in text
        bytes_up = sum(r["bytes_up_per_device"] for r in rows) / len(rows)
        assert f"{bytes_up:,.0f}" in text
    md = (run_folder / "report.md").read_text()
    assert all(heading in md for _, heading, _, _ in COLUMNS)


def test_reading_is_computed_from_the_numbers(run_folder):
    summary = json.loads((run_folder / "summary.json").read_text())
    best = max(
        ("static", "fedavg"), key=lambda m: sum(r["acc_mean"] for r in summary if r["method"] == m)
    )
    html_text = (run_folder / "report.html").read_text()
    assert re.search(rf"<b>{best}</b> has the highest time-averaged accuracy", html_text)


def test_report_command_rebuilds_and_compare_joins_runs(run_folder, tmp_path, capsys):
    (run_folder / "report.html").unlink()
    assert main(["report", str(run_folder)]) == 0
    assert (run_folder / "report.html").exists()
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
    assert result.stdout.count("<img") == 7 and "Results (mean" in result.stdout
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
