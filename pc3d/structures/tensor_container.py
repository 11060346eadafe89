"""`TensorContainer`: what boxes and points share as wrappers of one tensor whose rows are items.

Row indexing (always 2-D, the same class), length, iteration, device moves and copies. Each
structure says how to wrap a derived tensor with its own metadata (`_rewrap`: `with_yaw` for
boxes, `attribute_dims` for points), so these methods exist once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import ShapeError
from pc3d.structures.utils import RowIndex, row_index


class TensorContainer:
    """Rows of `tensor` are the items; the subclass implements `_rewrap`."""

    tensor: Tensor

    def _rewrap(self, tensor: Tensor) -> Self:
        """The same kind of structure, with the same metadata, around `tensor` (no checks)."""
        raise NotImplementedError

    def __getitem__(self, item: RowIndex) -> Self:
        """Select rows by int, slice, bool mask or index tensor; always `(K, width)`.

        An int or a slice gives a view that shares memory (as `Tensor` indexing does).

        Raises:
            ShapeError: a tuple (column selection would break the fixed column layout).
            IndexError: an int out of range.
        """
        selected = self.tensor[row_index(item, len(self))]
        if selected.dim() != 2:
            raise ShapeError(
                f"indexing {type(self).__name__} with {item!r} did not give a (K, {self.tensor.shape[1]}) matrix"
            )
        return self._rewrap(selected)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        yield from self.tensor

    @property
    def shape(self) -> torch.Size:
        """`torch.Size([N, width])`."""
        return self.tensor.shape

    @property
    def device(self) -> torch.device:
        """The device of the data."""
        return self.tensor.device

    def to(self, device: torch.device | str, *args: object, **kwargs: object) -> Self:
        """The structure on `device` (the same data when already there, as `Tensor.to`).

        Args:
            device: the target device.
            *args: more arguments of `Tensor.to` (e.g. `non_blocking`).
            **kwargs: keyword arguments of `Tensor.to`.
        """
        return self._rewrap(self.tensor.to(device, *args, **kwargs))  # type: ignore[call-overload]

    def cpu(self) -> Self:
        """The structure on the CPU."""
        return self._rewrap(self.tensor.cpu())

    def cuda(self, *args: object, **kwargs: object) -> Self:
        """The structure on a CUDA device (arguments as `Tensor.cuda`)."""
        return self._rewrap(self.tensor.cuda(*args, **kwargs))  # type: ignore[arg-type]

    def clone(self) -> Self:
        """A copy that shares no memory."""
        return self._rewrap(self.tensor.clone())

    def detach(self) -> Self:
        """The structure without autograd history (shares memory)."""
        return self._rewrap(self.tensor.detach())

    def numpy(self) -> np.ndarray:
        """The data as a float32 numpy array `[N, width]` (copied to the CPU)."""
        return self.tensor.detach().cpu().numpy()
