"""Persona as a plain PyTorch library.

``models`` (frozen backbone + editable head), ``adapter`` (summary -> per-layer
edits), ``prototypes`` (clusters with their own heads, refinement rules),
``training`` and ``pretraining`` (episodic cloud training, cached), ``cloud``
(deployment-time assignment and label-free refinement). Imports no Flower and
no simulator code, so a researcher can use it alone.
"""
