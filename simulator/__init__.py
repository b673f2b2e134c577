"""The fleet simulator, in rooms that follow the data flow.

``scenario`` (schema, loading, presets) -> ``world`` (fleet, network, data,
drift; no Flower) -> ``engine`` (device ClientApp, cloud round loop, engines)
-> ``run`` (run folder, checkpoints, summary) ; ``cli`` is the command line.
"""
