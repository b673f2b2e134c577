"""The scenario room: schema, loading and overrides, device-class presets, user errors.

A scenario file becomes a validated ``Scenario`` here; nothing downstream
reads YAML.
"""
