"""The fleet simulator, in rooms that follow the data flow; every import points down.

``catalog`` (the tables every room reads: shift kinds and corruptions,
datasets, energy figures, seeding, ranking metrics, error types) ->
``scenario`` (schema, loading, presets; validation reads nothing) -> ``world``
(fleet, network, data, drift, the preflight checks of machine and files; no
Flower) -> ``engine`` (device ClientApp, cloud round loop, its protocol, the
engines) -> ``run`` (run folder, checkpoints, summary, the one reader) ->
``sweep`` (grids of runs); ``cli`` and ``api`` are the front ends
(``tests/test_architecture.py`` checks the order).
"""

from typing import Any

__all__ = ["load_run", "simulate"]


def __getattr__(name: str) -> Any:
    """``from simulator import simulate, load_run`` (the API), imported when first asked for,
    so that ``simulate --help`` and the other rooms load no pandas or torch for it."""
    if name in __all__:
        from simulator import api

        return getattr(api, name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
