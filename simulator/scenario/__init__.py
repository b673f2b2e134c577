"""The scenario room: schema, loading and overrides, device-class presets.

A scenario file becomes a validated ``Scenario`` here; nothing downstream
reads YAML. Validation is pure: it reads no file and probes no device, so a
scenario validates the same on every machine (``simulator.world.preflight``
asks the machine).
"""
