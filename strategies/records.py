"""Flower array records made and read fast, byte for byte what Flower makes.

Flower stores each array of an ``ArrayRecord`` as NumPy's ``.npy`` bytes (a
header, then the raw data). Building that header and parsing it back costs
more than the data itself for the small arrays a device sends every round,
so the header of each (dtype, shape) is built once and reused. The bytes are
identical to Flower's own (a test checks it), so metering and aggregation see
exactly what Flower would.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from flwr.common.constant import SType

from basemodel.architecture import Weights


@lru_cache(maxsize=4096)
def _npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` header ``np.save`` writes for an array of ``dtype`` and ``shape``."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    np.lib.format.write_array_header_1_0(buffer, {**header, "shape": shape})
    return buffer.getvalue()


def array_of(tensor: torch.Tensor) -> Array:
    """A Flower ``Array`` of ``tensor`` (what ``Array(tensor)`` makes, without its overhead)."""
    values = tensor.detach().cpu().contiguous().numpy()
    shape = tuple(int(s) for s in values.shape)
    dtype = str(values.dtype)
    return Array(
        dtype=dtype,
        shape=shape,
        stype=SType.NUMPY,
        data=_npy_header(dtype, shape) + values.tobytes(),
    )


def record_of(weights: Weights) -> ArrayRecord:
    """An ``ArrayRecord`` of named tensors (what ``ArrayRecord(weights)`` makes)."""
    return ArrayRecord({name: array_of(tensor) for name, tensor in weights.items()})


def tensor_of(array: Array) -> torch.Tensor:
    """The tensor an ``Array`` holds (a copy it owns)."""
    header = _npy_header(array.dtype, tuple(array.shape))
    if array.stype != SType.NUMPY or not array.data.startswith(header):
        return torch.from_numpy(array.numpy().copy())  # not what we wrote: Flower's reader
    values = np.frombuffer(array.data, dtype=np.dtype(array.dtype), offset=len(header))
    return torch.from_numpy(values.reshape(array.shape).copy())


def weights_of(record: ArrayRecord) -> Weights:
    """The named tensors of an ``ArrayRecord`` (what ``to_torch_state_dict`` gives)."""
    return {name: tensor_of(record[name]) for name in record}
