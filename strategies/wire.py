"""The payload keys several methods share, and the message type of a two-phase round.

Defined once here so the methods' cloud and device halves agree on names. A
key only one method uses lives in that method's file (Persona's in
``strategies/persona.py``); the engine's own bookkeeping and control keys
(round clock, metering, snapshots) live with the engine
(``simulator.engine.protocol``) and are never billed as traffic.
"""

from __future__ import annotations

# Payload records (billed).
ARRAYS = "arrays"  # ArrayRecord: model weights (FedAvg global model / device update)
METRICS = "metrics"  # MetricRecord: method metrics, e.g. "num-examples" for weighting
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"

# The second phase of a two-phase round is a train message with this action.
APPLY_ACTION = "apply"
TRAIN_APPLY = "train." + APPLY_ACTION
