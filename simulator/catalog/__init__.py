"""The catalog room: tables every other room reads, and nothing else.

Shift kinds with their corruptions, the datasets and their metrics, the
click model's settings, radio and compute energy figures, seeding, ranking
metrics and the user-facing error types. It imports no other room, so the
scenario's schema and the world's builders can both name its entries.
"""
