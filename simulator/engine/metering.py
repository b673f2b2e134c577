"""Metering: the bytes a message puts on the wire.

Bytes are measured, not estimated: the serialized size of every object Flower
would ship for a record (arrays, config and metric records, with Flower's own
de-duplication of identical objects by content hash). FLOPs are counted from
the model's layers (``basemodel.flops``).
"""

from __future__ import annotations

from flwr.app import RecordDict
from flwr.app.message.arraychunk import ArrayChunk
from flwr.supercore.constant import HEAD_BODY_DIVIDER, HEAD_VALUE_DIVIDER
from flwr.supercore.inflatable.inflatable_object import (
    InflatableObject,
    get_all_nested_objects,
    no_object_id_recompute,
)


def _deflated_size(obj: InflatableObject) -> int:
    """``len(obj.deflate())``; for an array's data chunk, without copying the data again."""
    if type(obj) is ArrayChunk:  # header "ArrayChunk<d><no children><d><body length>"
        header = f"ArrayChunk{HEAD_VALUE_DIVIDER}{HEAD_VALUE_DIVIDER}{len(obj.data)}"
        return len(header.encode("utf-8")) + len(HEAD_BODY_DIVIDER) + len(obj.data)
    return len(obj.deflate())


def wire_bytes(content: RecordDict, exclude: tuple[str, ...] = ()) -> int:
    """Serialized size in bytes of ``content`` without the records named in ``exclude``."""
    if exclude:
        content = RecordDict({k: v for k, v in content.items() if k not in exclude})
    if not content:
        return 0
    # Each object's content hash once (Flower's default rehashes children for every parent).
    with no_object_id_recompute():
        return sum(_deflated_size(obj) for obj in get_all_nested_objects(content).values())
