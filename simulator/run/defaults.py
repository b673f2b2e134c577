"""The run plan's defaults, importable before anything heavy (the command line's help)."""

DEFAULT_CHECKPOINT_EVERY = 10  # rounds between checkpoints
DEFAULT_CHECKPOINT_BUDGET = 0.05  # most of a run's wall time checkpoints may take
