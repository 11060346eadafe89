"""3x3 convolutions by Winograd's minimal filtering F(2x2, 3x3), for wide layers on the CPU.

A 3x3 conv with stride 1 computes each 2 x 2 block of outputs from a 4 x 4 block of inputs. In the
Winograd domain (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) that
is 16 element-wise products instead of 36 multiply-adds per channel pair, so the conv becomes 16
matrix products `[blocks, C_in] @ [C_in, C_out]` with 2.25 times fewer multiply-adds, between an
input and an output transform made of additions. oneDNN on a CPU without AVX-512 computes the
direct conv, which on this network is as fast as the CPU's matrix products go; the transforms
cost memory passes, so the Winograd form pays only for wide layers: at 256 channels it takes
about two thirds of the direct conv's time on a 2-core AVX2 CPU, at 128 channels about the same
(``python tools/bench.py models``, docs/benchmarks.md). Results agree with the direct conv to
float rounding (the transforms add a few ulps: 3e-5 on outputs of magnitude 10 in the tests).

:class:`WinogradConv2d` is a ``Conv2d`` (same parameters and state-dict keys) that computes this
way at inference on the CPU; :func:`use_winograd` puts it in place of the wide 3x3 convs of an
inference copy (:func:`pc3d.nn.fuse.optimize_for_inference`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MIN_CHANNELS", "WinogradConv2d", "transform_weight", "use_winograd", "winograd_conv3x3"]

#: Narrowest conv (input and output channels) that :func:`use_winograd` replaces.
MIN_CHANNELS = 256

# G, the F(2x2, 3x3) filter transform: U = G w G^T per (out, in) channel pair.
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def transform_weight(weight: Tensor) -> Tensor:
    """`Tensor[C_out, C_in, 3, 3]` -> `Tensor[16, C_in, C_out]`, the weight in the Winograd domain.

    Computed in float64 and rounded once to the weight's dtype.
    """
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("xa,oiab,yb->xyio", g, weight.double(), g)  # [4, 4, C_in, C_out]
    return u.reshape(16, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def winograd_conv3x3(x: Tensor, weight16: Tensor, bias: Tensor | None) -> Tensor:
    """A 3x3 conv with stride 1 and zero padding 1: `Tensor[B, C_in, H, W]` -> `Tensor[B, C_out, H, W]`.

    Args:
        x: the input map (channels-last memory is read without a copy).
        weight16: the weight from :func:`transform_weight`.
        bias: `Tensor[C_out]` or None.

    Returns:
        The output map, channels-last.
    """
    batch, channels, height, width = x.shape
    out_channels = weight16.shape[2]
    n_h, n_w = (height + 1) // 2, (width + 1) // 2
    cells = x.permute(0, 2, 3, 1)  # [B, H, W, C]
    padded = F.pad(cells, (0, 0, 1, 2 * n_w + 1 - width, 1, 2 * n_h + 1 - height))  # [B, 2nH+2, 2nW+2, C]
    # Input transform B^T d B, rows then columns; a 4-row block starts at every even row, so its
    # rows are even[t], odd[t], even[t + 1], odd[t + 1].
    rows = _input_rows(padded[:, 0::2], padded[:, 1::2], dim=1, axis=0)  # [4, B, nH, 2nW+2, C]
    blocks = _input_rows(
        rows[:, :, :, 0::2], rows[:, :, :, 1::2], dim=3, axis=1
    )  # [4 rows, 4 cols, B, nH, nW, C]
    products = torch.bmm(blocks.view(16, -1, channels), weight16).view(4, 4, batch, n_h, n_w, out_channels)
    # Output transform A^T m A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], rows then columns.
    top = products[0] + products[1] + products[2]  # [4 columns, B, nH, nW, C_out]
    bottom = products[1] - products[2] - products[3]
    out = x.new_empty(batch, n_h, 2, n_w, 2, out_channels)  # [B, nH, row in block, nW, column, C_out]
    for row, m in ((0, top), (1, bottom)):
        left, right = out[:, :, row, :, 0], out[:, :, row, :, 1]
        torch.add(m[0], m[1], out=left)
        left.add_(m[2])
        torch.sub(m[1], m[2], out=right)
        right.sub_(m[3])
    if bias is not None:
        out += bias
    result = out.view(batch, 2 * n_h, 2 * n_w, out_channels)[:, :height, :width].permute(0, 3, 1, 2)
    return result.contiguous(memory_format=torch.channels_last)


def _input_rows(even: Tensor, odd: Tensor, dim: int, axis: int) -> Tensor:
    """B^T along ``dim`` over the 4-blocks ``(even[t], odd[t], even[t + 1], odd[t + 1])``.

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]; the four transformed rows
    are stacked on a new axis ``axis`` of the result.
    """
    count = odd.shape[dim] - 1
    e0, e1 = even.narrow(dim, 0, count), even.narrow(dim, 1, count)
    o0, o1 = odd.narrow(dim, 0, count), odd.narrow(dim, 1, count)
    shape = list(e0.shape)
    shape.insert(axis, 4)
    out = even.new_empty(shape)
    parts = out.movedim(axis, 0)
    torch.sub(e0, e1, out=parts[0])
    torch.add(o0, e1, out=parts[1])
    torch.sub(e1, o0, out=parts[2])
    torch.sub(o0, o1, out=parts[3])
    return out


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride-1, padding-1 ``Conv2d`` computed by F(2x2, 3x3) at inference on the CPU.

    Parameters and state-dict keys are a ``Conv2d``'s. While training, with gradients enabled or on
    another device it is the plain conv. The transformed weight is kept and rebuilt when the
    weight changes.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._transformed: tuple[int, int, Tensor] | None = None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> WinogradConv2d:
        """The same conv (sharing its parameters) as a :class:`WinogradConv2d`."""
        new = cls(
            conv.in_channels, conv.out_channels, 3, padding=1, bias=conv.bias is not None, device="meta"
        )
        new.weight = conv.weight
        new.bias = conv.bias
        new.train(conv.training)
        return new

    def forward(self, x: Tensor) -> Tensor:
        """The conv of ``x``; Winograd's form on the CPU at inference."""
        if self.training or torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        key = (self.weight._version, self.weight.data_ptr())
        if self._transformed is None or self._transformed[:2] != key:
            self._transformed = (*key, transform_weight(self.weight))
        return winograd_conv3x3(x, self._transformed[2], self.bias)


def applies(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain 3x3, stride-1, padding-1 ``Conv2d`` of at least :data:`MIN_CHANNELS` channels."""
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and min(conv.in_channels, conv.out_channels) >= MIN_CHANNELS
    )


def use_winograd(model: nn.Module) -> nn.Module:
    """Replace, in place, every wide 3x3 conv of ``model`` (:func:`applies`) by a :class:`WinogradConv2d`.

    Returns:
        ``model``.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if applies(child):
                setattr(parent, name, WinogradConv2d.from_conv(child))  # type: ignore[arg-type]
    return model
