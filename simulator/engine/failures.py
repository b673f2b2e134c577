"""Failures the engine tells apart: a simulated device's (a crash, going offline), and its own."""

from __future__ import annotations


class DeviceCrash(RuntimeError):
    """A simulated device failed mid-round (the scenario's crash rate decided it).

    Data, not a problem: the round records it as a failed device-round.
    """


# Every DeviceOffline message holds this, so a round can count them among its failures
# (a failed device-round reaches the cloud as Flower's error text only).
WENT_OFFLINE = "went offline (its traced window closed)"


class DeviceOffline(RuntimeError):
    """A traced device's online window closed before its round finished (data, like a crash)."""


class EngineFailure(RuntimeError):
    """The engine itself broke (a Ray worker died or froze), not a simulated device.

    Replies after it cannot be trusted, so the run goes back to its last
    checkpoint on a fresh engine (``simulator.run.runner``).
    """
