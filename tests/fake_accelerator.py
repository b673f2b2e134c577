"""A stand-in for a GPU in tests: torch's ``meta`` device, whose reads give the host fixed values.

A cloud half that is meant to run on CUDA must create every tensor on its own
device and bring results back to the CPU explicitly; a stray CPU tensor meeting
a device tensor is an error on a GPU. Tests cannot rely on a GPU, but a
``meta`` tensor (shape and dtype, no data) raises the same "tensors on
different devices" errors when mixed with CPU tensors. What a meta tensor
cannot do is give up values (``tolist``, ``bool``, ``.cpu()``, data-dependent
shapes such as ``nonzero``); inside ``FakeAccelerator`` those reads return a
fixed answer instead: copies to the CPU are filled with ``VALUE``, a scalar
read is ``VALUE``, ``nonzero`` (and a boolean mask) finds every element and
``unique`` finds ``VALUE`` alone. The numbers are
meaningless; what a test learns is that the code ran from end to end without
mixing devices and handed back CPU tensors where it promised to.
"""

from __future__ import annotations

import torch
from torch.fx.experimental import _config as fx_config
from torch.utils._python_dispatch import TorchDispatchMode

META = torch.device("meta")
VALUE = 1
aten = torch.ops.aten


def _is_meta(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.is_meta


class FakeAccelerator(TorchDispatchMode):
    """Answers the reads a meta tensor cannot (see the module docstring)."""

    def __enter__(self):  # noqa: ANN204
        self._patch = fx_config.patch(meta_nonzero_assume_all_nonzero=True)
        self._patch.__enter__()  # nonzero (and boolean masks) find every element
        return super().__enter__()

    def __exit__(self, *exc):  # noqa: ANN002, ANN204
        try:
            return super().__exit__(*exc)
        finally:
            self._patch.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        source = args[0] if args else None
        if func is aten._to_copy.default and _is_meta(source):
            target = kwargs.get("device")
            if target is not None and torch.device(target).type != "meta":
                dtype = kwargs.get("dtype") or source.dtype
                return torch.full(source.shape, VALUE, dtype=dtype, device=target)
        if func is aten.copy_.default and _is_meta(args[1]) and not _is_meta(source):
            return source.fill_(VALUE)
        if func is aten._local_scalar_dense.default and _is_meta(source):
            return source.new_full((), VALUE, device="cpu").item()
        if func in (aten._unique2.default, aten.unique_dim.default) and _is_meta(source):
            return (torch.tensor([VALUE], dtype=source.dtype, device=META),) + tuple(
                torch.zeros(0, dtype=torch.long, device=META) for _ in range(2)
            )
        return func(*args, **kwargs)
