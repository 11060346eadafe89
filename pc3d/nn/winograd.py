"""3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3), for wide layers on the CPU.

A 3x3 conv with stride 1 computes each 4 x 4 block of outputs from a 6 x 6 block of inputs. In the
Winograd domain (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) that
is 36 element-wise products instead of 144 multiply-adds per channel pair, so the conv becomes 36
matrix products `[blocks, C_in] @ [C_in, C_out]` with 4x fewer multiply-adds, between an input and
an output transform of a few scaled additions each. oneDNN on a CPU without AVX-512 computes the
direct conv, which on these networks runs as fast as the CPU's matrix products go; the transforms
cost memory passes, so the Winograd form pays for layers of 128 channels or more. On a 2-core AVX2
CPU (batch 1, channels-last, minimum of 7 runs): 256 channels at 62 x 54, 24.4 ms direct, 18.0 ms
F(2x2, 3x3), 13.7 ms F(4x4, 3x3); 256 at 100 x 88, 69.1 / 46.3 / 30.4 ms; 128 at 124 x 108,
27.4 / 27.1 / 19.3 ms; 64 at 248 x 216, 25.4 / 34.7 / 39.3 ms (so narrower convs stay direct).
The results agree with the direct conv to float rounding: the transforms' coefficients (up to 8
and 1/24) add about 1e-5 relative to the outputs' magnitude per layer.

:class:`WinogradConv2d` is a ``Conv2d`` (same parameters and state-dict keys) that computes this
way at inference on the CPU; :func:`use_winograd` puts it in place of the wide 3x3 convs of an
inference copy (:func:`pc3d.nn.fuse.optimize_for_inference`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MIN_CHANNELS",
    "WinogradConv2d",
    "needs_grad",
    "transform_weight",
    "use_winograd",
    "winograd_blocks",
    "winograd_conv3x3",
]

#: Narrowest conv (input and output channels) that :func:`use_winograd` replaces.
MIN_CHANNELS = 128

# G, the F(4x4, 3x3) filter transform: U = G w G^T per (out, in) channel pair.
_G = (
    (1 / 4, 0.0, 0.0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0.0, 0.0, 1.0),
)


def transform_weight(weight: Tensor) -> Tensor:
    """`Tensor[C_out, C_in, 3, 3]` -> `Tensor[36, C_in, C_out]`, the weight in the Winograd domain.

    Computed in float64 and rounded once to the weight's dtype.
    """
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("xa,oiab,yb->xyio", g, weight.double(), g)  # [6, 6, C_in, C_out]
    return u.reshape(36, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def winograd_conv3x3(x: Tensor, weight36: Tensor, bias: Tensor | None) -> Tensor:
    """A 3x3 conv with stride 1 and zero padding 1: `Tensor[B, C_in, H, W]` -> `Tensor[B, C_out, H, W]`.

    Args:
        x: the input map (channels-last memory is read without a copy).
        weight36: the weight from :func:`transform_weight`.
        bias: `Tensor[C_out]` or None.

    Returns:
        The output map, channels-last.
    """
    batch, channels, height, width = x.shape
    out_channels = weight36.shape[2]
    n_h, n_w = -(-height // 4), -(-width // 4)
    # [B, 4nH+2, 4nW+2, C]: the conv's zero padding, and zeros up to whole 4 x 4 blocks.
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 4 * n_w + 1 - width, 1, 4 * n_h + 1 - height))
    # Input transform B^T d B: block row t reads padded rows 4t .. 4t+5, then the same on columns.
    rows = _input_transform(
        [padded[:, i : i + 4 * n_h : 4] for i in range(6)],
        x.new_empty(6, batch, n_h, padded.shape[2], channels),
    )  # [6, B, nH, 4nW+2, C]
    blocks = x.new_empty(6, 6, batch, n_h, n_w, channels)  # [block row, block column, B, nH, nW, C]
    _input_transform([rows[:, :, :, i : i + 4 * n_w : 4] for i in range(6)], blocks.transpose(0, 1))
    products = torch.bmm(blocks.view(36, -1, channels), weight36).view(6, 6, batch, n_h, n_w, out_channels)
    # Output transform A^T m A, rows then columns, straight into the [B, nH, 4, nW, 4, C_out] map.
    half = _output_transform(list(products), x.new_empty(4, 6, batch, n_h, n_w, out_channels))
    out = x.new_empty(batch, n_h, 4, n_w, 4, out_channels)
    _output_transform([half[:, j] for j in range(6)], out.permute(4, 2, 0, 1, 3, 5))
    if bias is not None:
        out += bias
    result = out.view(batch, 4 * n_h, 4 * n_w, out_channels)[:, :height, :width].permute(0, 3, 1, 2)
    return result.contiguous(memory_format=torch.channels_last)


def winograd_blocks(windows: Tensor, weight36: Tensor, bias: Tensor | None) -> Tensor:
    """A 3x3 conv (no padding) of 6 x 6 windows: `Tensor[K, 6, 6, C_in]` -> `Tensor[K, 4, 4, C_out]`.

    Each window is one F(4x4, 3x3) block (used by :mod:`pc3d.nn.empty_skip` on the gathered tiles
    of a sparse map, channels last).

    Args:
        windows: the input windows, channels last.
        weight36: the weight from :func:`transform_weight`.
        bias: `Tensor[C_out]` or None.

    Returns:
        Each window's 4 x 4 outputs, channels last.
    """
    count, channels, out_channels = windows.shape[0], windows.shape[3], weight36.shape[2]
    rows = _input_transform([windows[:, i] for i in range(6)], windows.new_empty(6, count, 6, channels))
    blocks = windows.new_empty(6, 6, count, channels)  # [block row, block column, K, C]
    _input_transform([rows[:, :, j] for j in range(6)], blocks.transpose(0, 1))
    products = torch.bmm(blocks.view(36, count, channels), weight36).view(6, 6, count, out_channels)
    half = _output_transform(list(products), windows.new_empty(4, 6, count, out_channels))
    out = windows.new_empty(count, 4, 4, out_channels)
    _output_transform([half[:, j] for j in range(6)], out.permute(2, 1, 0, 3))
    if bias is not None:
        out += bias
    return out


def _input_transform(d: list[Tensor], out: Tensor) -> Tensor:
    """``out[k] = sum_i B^T[k, i] d[i]`` for F(4x4, 3x3)'s B^T, with shared partial sums.

    B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]].
    """
    d0, d1, d2, d3, d4, d5 = d
    torch.add(d4, d2, alpha=-5.0, out=out[0]).add_(d0, alpha=4.0)
    a, b = torch.add(d4, d2, alpha=-4.0), torch.add(d3, d1, alpha=-4.0)
    torch.add(a, b, out=out[1])
    torch.sub(a, b, out=out[2])
    c, e = torch.sub(d4, d2), torch.sub(d3, d1)
    torch.add(c, e, alpha=2.0, out=out[3])
    torch.add(c, e, alpha=-2.0, out=out[4])
    torch.add(d5, d3, alpha=-5.0, out=out[5]).add_(d1, alpha=4.0)
    return out


def _output_transform(m: list[Tensor], out: Tensor) -> Tensor:
    """``out[k] = sum_i A^T[k, i] m[i]`` for A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]."""
    m0, m1, m2, m3, m4, m5 = m
    s1, s2, d1, d2 = m1 + m2, m3 + m4, m1 - m2, m3 - m4
    torch.add(s1, s2, out=out[0]).add_(m0)
    torch.add(d1, d2, alpha=2.0, out=out[1])
    torch.add(s1, s2, alpha=4.0, out=out[2])
    torch.add(d1, d2, alpha=8.0, out=out[3]).add_(m5)
    return out


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride-1, padding-1 ``Conv2d`` computed by F(4x4, 3x3) at inference on the CPU.

    Parameters and state-dict keys are a ``Conv2d``'s. While training, when autograd would record
    the call (:func:`needs_grad`) or on another device it is the plain conv. The transformed weight
    is kept and rebuilt when the weight changes.
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
        if self.training or x.device.type != "cpu" or needs_grad(x, self):
            return super().forward(x)
        return winograd_conv3x3(x, self.transformed_weight(), self.bias)

    def transformed_weight(self) -> Tensor:
        """The weight in the Winograd domain (:func:`transform_weight`), kept until the weight changes."""
        key = (self.weight._version, self.weight.data_ptr())
        if self._transformed is None or self._transformed[:2] != key:
            self._transformed = (*key, transform_weight(self.weight.detach()))
        return self._transformed[2]


def needs_grad(x: Tensor, module: nn.Module) -> bool:
    """Whether autograd would record a forward of ``module`` on ``x`` (the inference paths have no backward).

    False without gradient mode, and for an inference copy (no parameter requires a gradient) run
    on an input that does not require one either.
    """
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or any(p.requires_grad for p in module.parameters())


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
