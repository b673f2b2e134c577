"""Every figure the README and the results page state in prose matches its table.

Prose is written by hand after a table is measured; a table re-measured
without its prose (or the reverse) leaves a page contradicting itself. These
checks read the figures out of the sentences and look them up in the tables
they came from.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "scenarios" / "README.md"
BENCHMARKS = ROOT / "benchmarks" / "README.md"
SIGNED = r"[+-]\d+\.\d"


def _section(path: Path, title: str) -> str:
    """The text under a ``#`` heading that starts with ``title``, up to the next heading."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^#+ {re.escape(title)}.*?$(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, f"{path.name}: no section {title!r}"
    return match.group(1)


def _table(section: str) -> dict[str, dict[str, str]]:
    """A markdown table as rows keyed by the method (bold and remarks dropped)."""
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.sub(r"\*\*|\s*\(.*\)$", "", cells[0]).strip()
        table[name] = dict(zip(header, cells, strict=True))
    return table


def _flagship() -> dict[str, dict[str, str]]:
    return _table(_section(RESULTS, "The flagship, 5 seeds"))


def _vs_static(row: dict[str, str]) -> str:
    return row["post-shift vs static"]


def test_the_readme_states_the_flagship_table_s_differences():
    paragraph = _section(README, "The flagship's result")
    table = _flagship()
    claimed = re.findall(rf"([\w-]+) \(({SIGNED})\)", paragraph)
    assert len(claimed) >= 3, paragraph
    for name, figure in claimed:
        assert _vs_static(table[name.lower()]).startswith(figure), (name, figure)
    persona = re.search(rf"Persona's ({SIGNED} \[{SIGNED}, {SIGNED}\])", paragraph)
    assert persona and _vs_static(table["persona"]).startswith(persona.group(1))


def test_the_flagship_reading_agrees_with_its_table():
    reading = _section(RESULTS, "The flagship, 5 seeds").split("**Reading.**", 1)[1]
    table = _flagship()
    static = table["static"]
    lost = re.search(r"static loses (\d+\.\d) points", reading)
    assert lost, reading[:200]
    assert float(lost.group(1)) == round(
        float(static["pre-shift"]) - float(static["post-shift"]), 1
    )
    for name, figure in re.findall(rf"\((LAME|em-prior|Cloud-retrain)? ?({SIGNED})[,)]", reading):
        if name:
            assert _vs_static(table[name.lower()]).startswith(figure), (name, figure)
    assert f"leads\nstatic most ({_vs_static(table['cloud-retrain']).split()[0]})" in reading
    persona = re.search(rf"static\*\*\n\(({SIGNED} \[{SIGNED}, {SIGNED}\])", reading)
    assert persona and _vs_static(table["persona"]).startswith(persona.group(1))
    traffic = re.search(r"\((\d[\d,]*) B per device-round, a fifth of FedAvg's\)", reading)
    persona_bytes = table["persona"]["bytes/device-round"]
    assert traffic and traffic.group(1) == persona_bytes
    ratio = float(persona_bytes.replace(",", "")) / float(
        table["fedavg"]["bytes/device-round"].replace(",", "")
    )
    assert 0.15 <= ratio <= 0.25  # "a fifth"


def test_the_readme_s_speed_figures_are_the_benchmarks_page_s():
    speed = _section(README, "Speed and scale")
    page = BENCHMARKS.read_text(encoding="utf-8")
    for figure in ("1 min 35 s", "4.85", "4.54", "0.7 GB"):
        assert figure in speed and figure in page, figure
    assert "746 MB to 1,640 MB" in page and "0.7-1.6 GB" in speed


def test_the_readme_starts_small_and_its_figure_ships():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (ROOT / image).is_file(), image
    first_screen = "\n".join(text.splitlines()[:40])
    assert "simulate scenarios/tiny.yaml" in first_screen and "![" in first_screen
