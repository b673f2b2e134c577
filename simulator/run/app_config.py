"""The names the Flower App's run config uses, shared by the ServerApp and the submitter.

``[tool.flwr.app.config]`` in pyproject.toml declares them (Flower refuses a
run config key it does not declare).
"""

from __future__ import annotations

from pathlib import Path

SUBMISSION = "submission"  # what ``simulate`` planned, as JSON
SCENARIO = "scenario"  # flwr run: the scenario file, relative to the app's folder
OVERRIDES = "set"  # flwr run: --set overrides, separated by ';'
OUT = "out"  # flwr run: the output folder, on the SuperLink's machine
APP_ROOT = Path(__file__).resolve().parents[2]  # the app's folder (scenarios/ beside it)
# A file ``simulate`` leaves in the run folder it reserves, holding a token the
# submission carries: the ServerApp finding it knows it shares the folder.
RESERVATION_FILE = ".reserved"
