"""The engine's own protocol: bookkeeping records and control messages, never method traffic.

The cloud's round loop and the device runtime exchange these beside each
method's payload: the round's clock and deadline going out (``SIM_CONFIG``),
the device's metering coming back (``SIM_METER``: bytes, FLOPs, seconds,
energy, its evaluation), and the control messages that register devices,
snapshot and restore their state and poll them for service requests. None of
it is billed as network traffic except a service request's own bytes. The
methods' keys are theirs (``strategies.wire`` for the shared payload keys,
each method's file for its own).
"""

from __future__ import annotations

# Simulation records (not billed).
SIM_CONFIG = "sim-config"  # ConfigRecord sent by the cloud: round, clock, deadline
SIM_METER = "sim-meter"  # ConfigRecord returned by the device: bytes, FLOPs, seconds
# ConfigRecord on every message of a deployment: which run a real device serves
# (the scenario's fingerprint, the method, the seed); a SuperNode builds its world from it.
SIM_RUN = "sim-run"
SIM_KEYS = (SIM_CONFIG, SIM_METER, SIM_RUN)

# Node config of a real SuperNode (``simulate supernode``): the resolved scenario's
# file, and the fleet device the SuperNode is.
NODE_SCENARIO = "scenario"
NODE_DEVICE = "device"

# Fields of SIM_RUN.
FINGERPRINT = "fingerprint"
METHOD = "method"
SEED = "seed"

# Fields of SIM_CONFIG.
ROUND = "round"
START_S = "start-s"
DEADLINE_S = "deadline-s"
CLOUD_S = "cloud-s"  # second phase only: simulated seconds the cloud took to answer

# Fields of SIM_METER.
DEVICE = "device"
STATUS = "status"
STATUS_OK = "ok"
STATUS_LATE = "late"
DOWNLOAD_BYTES = "download-bytes"
UPLOAD_BYTES = "upload-bytes"
FLOPS = "flops"
BACKWARD_PASSES = "backward-passes"
DOWNLOAD_S = "download-s"
COMPUTE_S = "compute-s"
UPLOAD_S = "upload-s"
LATENCY_S = "latency-s"
TOTAL_S = "total-s"
ENERGY_J = "energy-j"  # compute and radio, joules
ENERGY_COMPUTE_J = "energy-compute-j"
ACCURACY = "accuracy"
SAMPLES = "samples"
NONFINITE = "nonfinite"  # 1 if the served model's outputs held NaN or inf

# Message types for simulator control (not method traffic).
QUERY_REGISTER = "query"
SNAPSHOT_ACTION = "snapshot"  # the device reports its persistent state (checkpoints)
QUERY_SNAPSHOT = "query." + SNAPSHOT_ACTION
RESTORE_ACTION = "restore"  # the device replaces its persistent state (resume)
QUERY_RESTORE = "query." + RESTORE_ACTION
POLL_ACTION = "poll"  # at a round's start: does the device ask the cloud for service?
QUERY_POLL = "query." + POLL_ACTION
REQUEST = "request"  # ConfigRecord a device sends when it asks (its size is billed)
