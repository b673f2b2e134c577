"""The run room: a run's plan, its folder, checkpoints, metrics files, summary, reader.

``runner`` runs every method for every seed into one folder; ``reader`` is the
one reader of run folders (the summary, ``--resume`` and the reports use it).
"""
