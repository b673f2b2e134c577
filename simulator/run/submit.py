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

import hashlib
import json
import time
from pathlib import Path

from rich.console import Console

from simulator.catalog.errors import UserError
from simulator.engine.stop import StopRequested
from simulator.run.folder import create_run_folder
from simulator.run.plan import RunPlan
from simulator.run.run_log import RUN_LOG_FILE
from simulator.run.serverapp import APP_ROOT, SUBMISSION
from simulator.scenario.loading import scenario_to_document
from simulator.scenario.schema import Engine

POLL_S = 0.5
FINISHED = "finished"
COMPLETED = "completed"


def submit_plan(plan: RunPlan, console: Console) -> Path:
    """Run the plan on the SuperLink; returns its run folder (reserved here, filled there)."""
    engine = plan.scenario.engine
    client = control_client(engine)  # an absent SuperLink is refused before a folder is made
    folder = create_run_folder(plan.out_dir, plan.scenario.name).resolve()
    submission = {
        "scenario": scenario_to_document(plan.scenario),
        "methods": plan.methods,
        "seeds": plan.seeds,
        "checkpoint_every": plan.checkpoint_every,
        "checkpoint_budget": plan.checkpoint_budget,
        "keep_final": plan.keep_final,
        "folder": str(folder),
    }
    follow_run(client, engine, {SUBMISSION: json.dumps(submission)}, folder, console)
    return folder


def resume_on_superlink(folder: Path, engine: Engine, console: Console) -> Path:
    """Continue a deployment run folder on its SuperLink."""
    client = control_client(engine)
    submission = {"resume": str(folder.resolve())}
    follow_run(client, engine, {SUBMISSION: json.dumps(submission)}, folder, console)
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


def control_client(engine: Engine):  # -> ControlHttpClient (Flower's, imported lazily)
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


def follow_run(client, engine: Engine, config: dict, folder: Path, console: Console) -> None:
    """Start the run, print its log as it grows, and raise if it did not complete."""
    from flwr.cli.build import build_fab_from_disk
    from flwr.common.serde import fab_to_proto, run_from_proto, user_config_to_proto
    from flwr.proto.control_pb2 import ListRunsRequest, StartRunRequest, StopRunRequest
    from flwr.supercore.fab import Fab

    fab_bytes = build_fab_from_disk(app_root())
    fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
    started = client.StartRun(
        StartRunRequest(
            fab=fab_to_proto(fab), override_config=user_config_to_proto(config), federation=""
        )
    )
    run_id = started.run_id
    console.print(f"run {run_id} started on the SuperLink at {engine.superlink}; log: {folder}")
    log_path, shown = folder / RUN_LOG_FILE, 0
    try:
        while True:
            shown = _show_new_lines(log_path, shown, console)
            status = run_from_proto(
                client.ListRuns(ListRunsRequest(run_id=run_id)).run_dict[run_id]
            ).status
            if status.status == FINISHED:
                _show_new_lines(log_path, shown, console)
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        client.StopRun(StopRunRequest(run_id=run_id))
        raise StopRequested(str(folder)) from None  # the CLI names the folder to resume
    finally:
        client.close()
    if status.sub_status != COMPLETED:
        details = status.details.replace("ServerApp failed with exception: ", "")
        raise UserError(
            f"deployment run {run_id} {status.sub_status}: {details}; the method-seeds "
            f"finished before are kept in {folder}"
        )


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
