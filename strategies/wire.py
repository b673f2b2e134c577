"""The wire format: every record key and message field used between cloud and device.

Defined once here so the cloud halves, the device halves and the simulator
agree on names. Records under ``SIM_*`` keys are simulation bookkeeping (round
clock, metering); they are never billed as network traffic.
"""

from __future__ import annotations

# Payload records (billed).
ARRAYS = "arrays"  # ArrayRecord: model weights (FedAvg global model / device update)
METRICS = "metrics"  # MetricRecord: method metrics, e.g. "num-examples" for weighting
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"

# Simulation records (not billed).
SIM_CONFIG = "sim-config"  # ConfigRecord sent by the cloud: round, clock, deadline
SIM_METER = "sim-meter"  # ConfigRecord returned by the device: bytes, FLOPs, seconds
SIM_KEYS = (SIM_CONFIG, SIM_METER)

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

# The second phase of a two-phase round is a train message with this action.
APPLY_ACTION = "apply"
TRAIN_APPLY = "train." + APPLY_ACTION

# Persona's records.
SUMMARY = "summary"  # ArrayRecord: the device's window summary (features or statistics)
HELD_PROTO = "held-proto"  # ConfigRecord: prototype id and version the device holds
EDIT = "edit"  # ArrayRecord: clipped edit per head layer
PROTO = "proto"  # ConfigRecord: assigned prototype id and version
PROTO_HEAD = "proto-head"  # ArrayRecord: P(k), sent only when the device lacks it
EDIT_REF = "edit-ref"  # ArrayRecord: mean feature of the window the edit was made for
PROTO_ID = "id"
PROTO_VERSION = "version"
EXPIRY_DISTANCE = "expiry-distance"

# Message types for simulator control (not method traffic).
QUERY_REGISTER = "query"
SNAPSHOT_ACTION = "snapshot"  # the device reports its persistent state (checkpoints)
QUERY_SNAPSHOT = "query." + SNAPSHOT_ACTION
RESTORE_ACTION = "restore"  # the device replaces its persistent state (resume)
QUERY_RESTORE = "query." + RESTORE_ACTION
POLL_ACTION = "poll"  # at a round's start: does the device ask the cloud for service?
QUERY_POLL = "query." + POLL_ACTION
REQUEST = "request"  # ConfigRecord a device sends when it asks (its size is billed)
