"""One writer per folder: a second run, resume or sweep on a folder being written is refused.

A process in ``_holding`` takes the folder's writer lock as a live run would
and keeps it; the tests then try what a user or a scheduler's retry would try,
and check that nothing on disk changed. Killing the holder frees the folder
(the kernel drops the lock), so a crash never leaves it locked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, write_yaml

from reports.build import build_report
from simulator.catalog.errors import UserError
from simulator.cli import main
from simulator.run.lock import FolderBusy, held_by, writer_lock
from simulator.run.plan import RunPlan
from simulator.run.reader import RunFolderError, load_run
from simulator.run.runner import resume_run, run_plan
from simulator.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parent.parent


def _holding(folder: Path) -> subprocess.Popen:
    """A process that holds ``folder``'s writer lock until it is killed."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from simulator.run.lock import writer_lock\n"
        "with writer_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def _stop(holder: subprocess.Popen) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    document = json.loads(json.dumps(TINY))
    document["rounds"]["count"] = 4
    document["methods"] = [{"name": "static"}]
    plan = RunPlan(Scenario.model_validate(document), ["static"], [0], tmp_path_factory.mktemp("r"))
    return run_plan(plan, show_progress=False)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".writer.lock"
    }


def test_a_second_writer_is_refused_and_nothing_changes(run_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    before = _snapshot(folder)
    holder = _holding(folder)
    try:
        assert f"pid {holder.pid}" in (held_by(folder) or "")
        busy = rf"another process writes this run \(pid {holder.pid}"
        with pytest.raises(FolderBusy, match=busy):
            resume_run(folder, show_progress=False)
        assert main(["--resume", str(folder), "--no-progress"]) != 0
        assert _snapshot(folder) == before
        # Readers never wait for the lock; they say the run is live.
        assert f"pid {holder.pid}" in (load_run(folder).writer or "")
        build_report(folder)
        assert "Still running" in (folder / "report.md").read_text()
        (folder / "summary.json").unlink()
        with pytest.raises(RunFolderError, match="still running"):
            load_run(folder)
    finally:
        _stop(holder)


def test_a_killed_writer_leaves_the_folder_free(run_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    _stop(_holding(folder))
    assert held_by(folder) is None
    assert load_run(folder).writer is None
    with writer_lock(folder):  # no stale lock: a resume could go on
        assert f"pid {os.getpid()}" in (held_by(folder) or "")


def test_a_second_sweep_writer_is_refused(tmp_path):
    document = json.loads(json.dumps(TINY))
    document["rounds"]["count"] = 2
    scenario = write_yaml(tmp_path / "tiny.yaml", document)
    args = ["sweep", str(scenario), "--grid", "data.labeled_fraction=0.1,0.5", "--seeds", "1"]
    assert main([*args, "--set", "pretrain.seed=0", "--workers", "1", "--out", str(tmp_path)]) == 0
    (folder,) = (tmp_path / "tiny-test").iterdir()
    before = _snapshot(folder)
    holder = _holding(folder)
    try:
        assert main(["sweep", "--resume", str(folder), "--workers", "1"]) != 0
        assert _snapshot(folder) == before
    finally:
        _stop(holder)


def test_a_lock_file_that_is_a_link_or_a_pipe_is_neither_followed_nor_waited_on(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (folder / ".writer.lock").symlink_to(victim)
    with pytest.raises(UserError, match="lock file"), writer_lock(folder):
        pass
    assert victim.read_text() == "keep me\n"
    assert held_by(folder) is None
    (folder / ".writer.lock").unlink()
    os.mkfifo(folder / ".writer.lock")
    assert held_by(folder) is None  # returns at once: a reader never blocks on a pipe
    with pytest.raises(UserError, match="not a regular file"), writer_lock(folder):
        pass
