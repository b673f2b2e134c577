"""The world room: fleet, network, data loaders, partition, streams, drift, preflight.

Every world is a pure function of (scenario, seed) and imports no Flower (a
test checks it): the same world can be rebuilt in any process. The tables it
builds from are in ``simulator.catalog``. ``preflight`` is the one part that
looks outside: it asks this machine (CUDA) and the user's files (ratings,
traces) what validation cannot.
"""
