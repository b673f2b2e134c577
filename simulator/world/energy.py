"""Energy a device spends: compute at its class's joules per FLOP, radio by link type.

Placeholder figures until the cited table lands.
"""

from __future__ import annotations

RADIO_NAMES: tuple[str, ...] = ("2g", "3g", "4g", "wifi")
DEFAULT_JOULES_PER_FLOP = 1e-10
