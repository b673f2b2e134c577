"""Checkpoint sessions: gathering a snapshot through the engine, and putting one back.

Device state lives where the devices' ClientApps run (inside Ray workers on
the Ray engine), so the loop asks for it with control queries; only devices
that got a message since the last checkpoint are asked again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from flwr.app import ArrayRecord, RecordDict
from flwr.serverapp import Grid

from simulator.engine.control import (
    FleetStateError,
    collect_states,
    records_from_bytes,
    records_to_bytes,
    restore_states,
)
from simulator.engine.loop_state import CheckpointStore, LoopPosition, LoopSnapshot
from strategies.base import FleetStrategy

ARRAYS_KEY = "arrays"
log = logging.getLogger("persona_fleet")


def encode_arrays(arrays: ArrayRecord) -> bytes:
    return records_to_bytes(RecordDict({ARRAYS_KEY: arrays}))


def decode_arrays(data: bytes) -> ArrayRecord:
    record = records_from_bytes(data)[ARRAYS_KEY]
    if not isinstance(record, ArrayRecord):
        raise ValueError("the checkpoint's global arrays are not an ArrayRecord")
    return record


class CheckpointSession:
    """Saves and restores one method-seed run through ``store`` and the engine's Grid."""

    def __init__(self, store: CheckpointStore, grid: Grid, node_of: dict[int, int]):
        self.store = store
        self.grid = grid
        self.node_of = node_of
        self.touched: set[int] = set()  # devices sent a round message since the last save

    def touch(self, devices: list[int]) -> None:
        """Devices whose state may have changed (they got a round message)."""
        self.touched.update(devices)

    def save(
        self,
        strategy: FleetStrategy,
        arrays: ArrayRecord,
        at: LoopPosition,
        log_offset: int,
        started: float,
    ) -> None:
        """Save everything needed to continue after this round.

        If a device cannot report its state, this checkpoint is skipped (the
        previous one stays valid) and the run goes on.
        """
        began = time.perf_counter()
        snapshot = self._snapshot(strategy, arrays, at, log_offset, started)
        if snapshot is None:
            return
        self.store.save(snapshot)
        self.touched.clear()
        self.store.record_cost(time.perf_counter() - began)

    def save_final(
        self, strategy: FleetStrategy, arrays: ArrayRecord, at: LoopPosition, log_offset: int
    ) -> None:
        """The end state (the cloud's model, every device's state), where the run keeps it."""
        if self.store.keeps_final:
            snapshot = self._snapshot(strategy, arrays, at, log_offset, time.perf_counter())
            if snapshot is None:
                log.warning("the end state was not kept (a device did not report its state)")
            else:
                self.store.save_final(snapshot)

    def _snapshot(
        self,
        strategy: FleetStrategy,
        arrays: ArrayRecord,
        at: LoopPosition,
        log_offset: int,
        started: float,
    ) -> LoopSnapshot | None:
        try:
            fresh = collect_states(self.grid, self.node_of, sorted(self.touched))
        except FleetStateError as err:
            log.warning("checkpoint after round %d skipped: %s", at.rounds_run, err)
            return None
        self.store.device_states.update(fresh)
        return LoopSnapshot(
            position=replace(at),
            arrays=encode_arrays(arrays),
            strategy=strategy.checkpoint_state(),
            devices=dict(self.store.device_states),
            log_offset=log_offset,
            wall_s=time.perf_counter() - started,
        )

    def restore(self, strategy: FleetStrategy, snapshot: LoopSnapshot) -> ArrayRecord:
        """Put the devices and the method's cloud state back; returns the global arrays."""
        restore_states(self.grid, self.node_of, snapshot.devices)
        strategy.restore_state(snapshot.strategy)
        return decode_arrays(snapshot.arrays)
