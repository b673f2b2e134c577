"""A Ray worker that dies mid-run: the run restarts its engine and loses nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from flwr.app import Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.supercore.task_identity import TaskIdentity
from test_resume import _document, stable_rows

from simulator.engine.rounds import RoundLoop
from simulator.engine.worker_guard import engine_error, local_worker_pids
from simulator.run.folder import metrics_path
from simulator.run.plan import RunPlan
from simulator.run.runner import run_plan
from simulator.scenario.schema import Scenario

ACTOR_DIED = (
    "<class 'ray.exceptions.ActorDiedError'>:<'The actor died unexpectedly before "
    "finishing this task.\n\tclass_name: ClientAppActor'>"
)


def _reply(code: int, reason: str) -> Message:
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, SUPERLINK_NODE_ID, 1
    request = Message(RecordDict(), dst_node_id=7, message_type="train")
    request.metadata.__dict__["_message_id"] = "m1"
    return Message(Error(code=code, reason=reason), reply_to=request)


def test_engine_errors_are_told_apart_from_device_failures():
    assert engine_error(_reply(ErrorCode.UNKNOWN, ACTOR_DIED)).startswith(
        "<class 'ray.exceptions.ActorDiedError'>"
    )
    crash = "<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'simulated crash'>"
    assert engine_error(_reply(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, crash)) is None
    assert engine_error(_reply(ErrorCode.UNKNOWN, "<class 'ValueError'>:<'x'>")) is None


def _gone(pid: int) -> bool:
    """Exited (a zombie has an empty command line) or reaped."""
    try:
        return not Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "cause", "engine"),
    [
        (signal.SIGKILL, "Ray worker was lost", "ray"),
        (signal.SIGSTOP, "a frozen worker", "ray"),
        (signal.SIGKILL, "Ray worker was lost", "flower"),
    ],  # frozen-flower (passed at 005fd83) is left out to keep CI within its 20 minutes
    ids=["killed-ray", "frozen-ray", "killed-flower"],
)
def test_lost_ray_worker_restarts_the_engine_and_loses_nothing(
    tmp_path, tiny_document, monkeypatch, caplog, how, cause, engine
):
    document = _document(tiny_document, "fedavg")
    inline = Scenario.model_validate(document)
    reference = run_plan(RunPlan(inline, ["fedavg"], [0], tmp_path / "inline", 3, None), False)

    document["engine"] = {"kind": engine, "num_cpus": 2, "reply_timeout_s": 5}
    original = RoundLoop.play_round
    victims: list[int] = []

    def break_a_worker_once(self, grid, strategy, arrays, index, *rest):
        if index == 5 and not victims:
            victims.append(local_worker_pids()[0])
            os.kill(victims[0], how)
            for _ in range(200):  # until it is gone (10 s at most)
                if how != signal.SIGKILL or _gone(victims[0]):
                    break
                time.sleep(0.05)
        return original(self, grid, strategy, arrays, index, *rest)

    monkeypatch.setattr(RoundLoop, "play_round", break_a_worker_once)
    on_ray = Scenario.model_validate(document)
    folder = run_plan(RunPlan(on_ray, ["fedavg"], [0], tmp_path / "ray", 3, None), False)
    assert victims, "no worker was touched"
    restarts = [r.getMessage() for r in caplog.records if "restarting the engine" in r.getMessage()]
    assert len(restarts) == 1 and cause in restarts[0]
    assert _gone(victims[0])
    assert stable_rows(metrics_path(folder, "fedavg", 0)) == stable_rows(
        metrics_path(reference, "fedavg", 0)
    )
