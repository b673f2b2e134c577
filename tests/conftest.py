"""Shared fixtures: small scenario documents built in code."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY: dict[str, Any] = {
    "name": "tiny-test",
    "seed": 0,
    "fleet": {
        "devices": 12,
        "classes": [
            {
                "name": "slow",
                "share": 0.5,
                "compute_flops": {"median": 2.0e9, "sigma": 0.2},
                "uplink_kbps": {"median": 300, "sigma": 0.3},
                "downlink_kbps": {"median": 1000, "sigma": 0.3},
                "rtt_ms": {"median": 100, "sigma": 0.1},
                "availability": 0.9,
                "crash_rate": 0.05,
            },
            {
                "name": "fast",
                "share": 0.5,
                "compute_flops": {"median": 2.0e10},
                "uplink_kbps": {"median": 10000},
                "downlink_kbps": {"median": 30000},
                "rtt_ms": {"median": 40},
            },
        ],
    },
    "data": {"dataset": "digits", "window": 16, "eval_samples": 16},
    "shifts": [{"kind": "rotation", "severity": 45, "onset_s": 240}],
    "rounds": {
        "count": 4,
        "period_s": 120,
        "deadline_s": 60,
        "participation": 0.5,
        "eval_every_s": 120,
        "eval_devices": 6,
    },
    "methods": [{"name": "static"}, {"name": "fedavg", "params": {"local_epochs": 1}}],
    "pretrain": {"epochs": 3},
    "engine": {"kind": "inline"},
}

# Persona with a small pretraining budget: seconds, for tests.
PERSONA_QUICK = {
    "pretrain_steps": 60,
    "generator_steps": 20,
    "prototype_episodes": 64,
    "prototypes": 2,
}


def quick_params(method: str) -> dict[str, Any]:
    """PERSONA_QUICK for a Persona method, less what a variant fixes itself; {} otherwise."""
    from strategies.registry import get_method

    if not method.startswith("persona"):
        return {}
    fixed = get_method(method).fixed_params
    return {k: v for k, v in PERSONA_QUICK.items() if k not in fixed}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Pretrained weights go to a per-session folder, never the user's cache."""
    cache = tmp_path_factory.getbasetemp() / "pretrain-cache"
    monkeypatch.setenv("PERSONA_FLEET_CACHE", str(cache))


@pytest.fixture
def tiny_document() -> dict[str, Any]:
    return copy.deepcopy(TINY)


def write_yaml(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def fresh_interpreter(code: str, timeout: float = 120) -> str:
    """The last line ``code`` prints in a new Python process started in the repository (for
    checks of what a fresh process imports); its stderr on failure, in the assertion."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return lines[-1]
