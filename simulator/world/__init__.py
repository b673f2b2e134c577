"""The world room: fleet, network, datasets and their tables, partition, streams, drift.

Everything here is a pure function of (scenario, seed, labels) and imports no
Flower (a test checks it): the same world can be rebuilt in any process.
"""
