"""Metering: the bytes a message puts on the wire.

Bytes are measured, not estimated: the serialized size of every object Flower
would ship for a record (arrays, config and metric records, with Flower's own
de-duplication of identical objects). FLOPs are counted from the model's
layers (``basemodel.flops``).
"""

from __future__ import annotations

from flwr.app import RecordDict
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects


def wire_bytes(content: RecordDict, exclude: tuple[str, ...] = ()) -> int:
    """Serialized size in bytes of ``content`` without the records named in ``exclude``."""
    if exclude:
        content = RecordDict({k: v for k, v in content.items() if k not in exclude})
    if not content:
        return 0
    return sum(len(obj.deflate()) for obj in get_all_nested_objects(content).values())
