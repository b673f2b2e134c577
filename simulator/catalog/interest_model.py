"""The click model's settings: the catalogue's size and how clicks follow interest.

A table both rooms read: the dataset table names each click stream's
settings, and ``simulator.world.interests`` generates the stream from them
(the module docstring there defines every symbol).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InterestConfig:
    """The catalogue and the click model (``simulator.world.interests`` defines each symbol)."""

    items: int = 200
    dim: int = 16
    topics: int = 8
    topic_spread: float = 0.35  # how far items sit from their topic direction
    history: int = 10
    popularity_sigma: float = 0.7
    personal: float = 0.4  # a user's deviation from the fleet's base interest
    focus: float = 4.0  # how sharply clicks follow interest
    affinity: float = 5.0  # how strongly the click depends on the candidate's fit
    offset: float = -1.0  # the click rate's base log-odds
    cloud_users: int = 800  # users whose labeled clicks the cloud holds (base and family)
    cloud_samples: int = 64  # samples per cloud user and context
