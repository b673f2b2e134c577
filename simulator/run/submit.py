"""``simulate`` on the deployment engine: hand the plan to a SuperLink and follow it.

The project is a Flower App; this builds its FAB from the project's folder,
starts a run on the SuperLink of ``engine.superlink`` through Flower's
Control API with the plan as its run config (the ServerApp then runs it:
``simulator.run.serverapp``), and follows it to the end, printing the run
log's lines as the ServerApp writes them. A SuperLink that is not there, or a
run that fails, is one line; the rows of the method-seeds finished before a
failure stay in the run folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from simulator.catalog.errors import UserError
from simulator.engine.stop import StopRequested
from simulator.run.app_config import APP_ROOT, RESERVATION_FILE, SUBMISSION
from simulator.run.folder import create_run_folder
from simulator.run.plan import RunPlan
from simulator.run.run_log import RUN_LOG_FILE
from simulator.scenario.loading import scenario_to_document
from simulator.scenario.schema import Engine

if TYPE_CHECKING:  # Flower's client loads only when a run is submitted
    from flwr.supercore.control import ControlHttpClient

POLL_S = 0.5
STOP_WAIT_S = 30.0
FINISHED = "finished"
COMPLETED = "completed"


def submit_plan(plan: RunPlan, console: Console) -> Path:
    """Run the plan on the SuperLink; returns its run folder (reserved here, filled there)."""
    engine = plan.scenario.engine
    client = control_client(engine)  # an absent SuperLink is refused before a folder is made
    folder = create_run_folder(plan.out_dir, plan.scenario.name).resolve()
    token = secrets.token_hex(16)
    (folder / RESERVATION_FILE).write_text(token)
    submission = {
        "scenario": scenario_to_document(plan.scenario),
        "methods": plan.methods,
        "seeds": plan.seeds,
        "checkpoint_every": plan.checkpoint_every,
        "checkpoint_budget": plan.checkpoint_budget,
        "keep_final": plan.keep_final,
        "folder": str(folder),
        "token": token,
    }
    try:
        follow_run(client, engine, {SUBMISSION: json.dumps(submission)}, folder, console)
    finally:
        _release(folder, token)
    return folder


def _release(folder: Path, token: str) -> None:
    """Remove the reservation if no run took the folder (it failed to start)."""
    reservation = folder / RESERVATION_FILE
    with contextlib.suppress(OSError):
        if reservation.read_text() == token:
            reservation.unlink()
            folder.rmdir()


def resume_on_superlink(folder: Path, engine: Engine, console: Console) -> Path:
    """Continue a deployment run folder on its SuperLink (the log's old lines not repeated)."""
    client = control_client(engine)
    submission = {"resume": str(folder.resolve())}
    log_path = folder / RUN_LOG_FILE
    shown = log_path.stat().st_size if log_path.is_file() else 0
    follow_run(client, engine, {SUBMISSION: json.dumps(submission)}, folder, console, shown)
    return folder


def app_root() -> Path:
    """The Flower App's folder: the project's own, with ``[tool.flwr.app]`` in pyproject.toml."""
    pyproject = APP_ROOT / "pyproject.toml"
    if not pyproject.is_file() or "[tool.flwr.app]" not in pyproject.read_text():
        raise UserError(
            f"the deployment engine ships the project as a Flower App from its source folder, "
            f"but {APP_ROOT} has no pyproject.toml with [tool.flwr.app]: install the project "
            "from a clone (pip install -e .)"
        )
    return APP_ROOT


def control_client(engine: Engine) -> ControlHttpClient:
    """A client of the SuperLink's Control API, checked to answer."""
    import httpx
    from flwr.proto.control_pb2 import ListRunsRequest
    from flwr.supercore.control import ControlHttpClient

    if engine.superlink is None:
        raise UserError(
            "engine.kind deployment: set engine.superlink to the SuperLink's host:port "
            "(e.g. --set engine.superlink=127.0.0.1:9093)"
        )
    certificates = None
    if engine.superlink_certificates is not None:
        try:
            certificates = Path(engine.superlink_certificates).expanduser().read_bytes()
        except OSError as err:
            raise UserError(
                f"engine.superlink_certificates: cannot read {engine.superlink_certificates} "
                f"({err.strerror})"
            ) from None
    client = ControlHttpClient.from_server_address(
        engine.superlink, certificates is None, certificates, interceptors=[]
    )
    try:
        client.ListRuns(ListRunsRequest())
    except httpx.HTTPError as err:
        client.close()
        raise UserError(
            f"engine.superlink {engine.superlink}: no SuperLink answers there "
            f"({type(err).__name__}); start one (flower-superlink) or fix the address"
        ) from None
    return client


def follow_run(
    client: ControlHttpClient,
    engine: Engine,
    config: dict[str, str],
    folder: Path,
    console: Console,
    shown: int = 0,
) -> None:
    """Start the run, print its log as it grows, and raise if it did not complete.

    ``shown``: bytes of the run log already printed (a resume's earlier lines).
    """
    import httpx
    from flwr.proto.control_pb2 import StartRunRequest

    try:
        fab = _app_fab()
        started = client.StartRun(
            StartRunRequest(fab=fab, override_config=_run_config(config), federation="")
        )
        run_id = started.run_id
        console.print(f"run {run_id} started on the SuperLink at {engine.superlink}; log: {folder}")
        try:
            status = _wait(client, run_id, folder / RUN_LOG_FILE, shown, console)
        except KeyboardInterrupt:
            _stop(client, run_id)
            raise StopRequested(str(folder)) from None  # the CLI names the folder to resume
    except httpx.HTTPError as err:
        raise UserError(
            f"engine.superlink {engine.superlink}: the SuperLink stopped answering "
            f"({type(err).__name__}: {err}); rows finished so far are kept in {folder}"
        ) from None
    finally:
        client.close()
    if status.sub_status != COMPLETED:
        details = status.details.replace("ServerApp failed with exception: ", "")
        raise UserError(
            f"deployment run {run_id} {status.sub_status}: {details}; the method-seeds "
            f"finished before are kept in {folder}"
        )


def _app_fab():  # -> flwr's Fab proto
    """The project's FAB, as Flower builds it from the app's folder."""
    from flwr.cli.build import build_fab_from_disk
    from flwr.common.serde import fab_to_proto
    from flwr.supercore.fab import Fab

    try:
        fab_bytes = build_fab_from_disk(app_root())
    except ValueError as err:  # too large, too deep: Flower's own limits
        raise UserError(
            f"cannot ship the project as a Flower App ({err}); keep run folders out of "
            f"{app_root()} or list them in its .gitignore"
        ) from None
    return fab_to_proto(Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {}))


def _run_config(config: dict[str, str]):  # -> flwr's user config proto
    from flwr.common.serde import user_config_to_proto

    return user_config_to_proto(config)


def _status(client: ControlHttpClient, run_id: int):  # -> flwr's RunStatus
    from flwr.common.serde import run_from_proto
    from flwr.proto.control_pb2 import ListRunsRequest

    runs = client.ListRuns(ListRunsRequest(run_id=run_id)).run_dict
    if run_id not in runs:
        raise UserError(f"the SuperLink no longer knows run {run_id} (was it restarted?)")
    return run_from_proto(runs[run_id]).status


def _wait(client: ControlHttpClient, run_id: int, log_path: Path, shown: int, console: Console):
    """Poll the run until it finished, printing the run log's new lines."""
    while True:
        shown = _show_new_lines(log_path, shown, console)
        status = _status(client, run_id)
        if status.status == FINISHED:
            _show_new_lines(log_path, shown, console)
            return status
        time.sleep(POLL_S)


def _stop(client: ControlHttpClient, run_id: int) -> None:
    """Stop the run and wait (briefly) until the ServerApp let go of the folder."""
    from flwr.proto.control_pb2 import StopRunRequest

    with contextlib.suppress(Exception):  # stopping is best effort on the way out
        client.StopRun(StopRunRequest(run_id=run_id))
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and _status(client, run_id).status != FINISHED:
            time.sleep(POLL_S)


def _show_new_lines(path: Path, shown: int, console: Console) -> int:
    """Print the lines of ``path`` after the first ``shown`` bytes; the new count."""
    try:
        data = path.read_bytes()
    except OSError:
        return shown
    end = data.rfind(b"\n") + 1
    for line in data[shown:end].decode(errors="replace").splitlines():
        console.print(line, markup=False, highlight=False)
    return max(shown, end)
