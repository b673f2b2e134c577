"""Metering: the bytes a message's records weigh, and the objects they split into.

Bytes are measured, not estimated: the serialized size of every object Flower
would ship for a record (arrays, config and metric records, with Flower's own
de-duplication of identical objects by content hash). The object count is what
a runtime that moves each object in a request of its own (Flower's SuperNode)
pays per message beyond the bytes (``simulator.world.transport``). FLOPs are
counted from the model's layers (``basemodel.flops``).
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

from simulator.world.transport import MessageSize


def _deflated_size(obj: InflatableObject) -> int:
    """``len(obj.deflate())``; for an array's data chunk, without copying the data again."""
    if type(obj) is ArrayChunk:  # header "ArrayChunk<d><no children><d><body length>"
        header = f"ArrayChunk{HEAD_VALUE_DIVIDER}{HEAD_VALUE_DIVIDER}{len(obj.data)}"
        return len(header.encode("utf-8")) + len(HEAD_BODY_DIVIDER) + len(obj.data)
    return len(obj.deflate())


def message_size(content: RecordDict, exclude: tuple[str, ...] = ()) -> MessageSize:
    """Serialized bytes and distinct objects of ``content`` without the records in ``exclude``.

    An empty content weighs nothing and has no objects: the payload meter
    bills it as nothing sent; a runtime's transport adds the envelope.
    """
    if exclude:
        content = RecordDict({k: v for k, v in content.items() if k not in exclude})
    if not content:
        return MessageSize(0, 0)
    # Each object's content hash once (Flower's default rehashes children for every parent).
    with no_object_id_recompute():
        objects = get_all_nested_objects(content).values()
        return MessageSize(sum(_deflated_size(obj) for obj in objects), len(objects))
