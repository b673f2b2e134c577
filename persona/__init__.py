"""Persona as a plain PyTorch library: models, cloud pretraining (and, next, the adapter).

Imports no Flower and no simulator code, so a researcher can use it alone.
"""
