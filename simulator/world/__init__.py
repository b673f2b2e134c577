"""The world room: fleet, network, data loaders, partition, streams, drift, preflight.

Everything here is a pure function of (scenario, seed, labels) and imports no
Flower (a test checks it): the same world can be rebuilt in any process. The
tables it builds from are in ``simulator.catalog``; ``preflight`` asks this
machine and its files what validation cannot.
"""
