"""The shared starting model every method begins from.

``architecture`` (frozen backbone + editable head, the head's parameter
names), ``flops`` (what it costs to run and train), ``pretraining`` and
``cache`` (cloud pretraining, cached on disk), ``resources`` (what the cloud
holds), ``threads`` (fixed thread counts for identical numbers). Imports no
Flower and no simulator code.
"""
