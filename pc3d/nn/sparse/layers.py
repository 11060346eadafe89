"""Sparse-conv layers and blocks (spconv modules) and the sparse tensor helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from pc3d.errors import FormatError
from pc3d.nn.sparse.backend import import_spconv
from pc3d.nn.sparse.cpu import run_sparse_conv
from pc3d.nn.sparse.tables import Triple
from pc3d.nn.voxel.common import build_norm_3d

__all__ = [
    "SparseConvBlock",
    "sparse_conv",
    "sparse_conv_block",
    "sparse_conv_tensor",
    "sparse_inverse_conv",
    "sparse_to_dense",
]


class SparseConvBlock(nn.Sequential):
    """`(sparse conv, norm, activation)` over a spconv `SparseConvTensor` (children `0`, `1`, `2`).

    The norm and activation act on the active sites' features `Tensor[N, C]`.
    """

    def forward(self, x: Any) -> Any:
        """`SparseConvTensor` in, `SparseConvTensor` out (new sites for a strided conv)."""
        x = run_sparse_conv(self[0], x)
        if x.features.shape[0] == 0:  # nothing active: batch norm cannot take an empty batch
            return x
        return x.replace_feature(self[2](self[1](x.features)))


def sparse_conv_block(
    conv_type: str,
    in_channels: int,
    out_channels: int,
    kernel_size: Triple,
    stride: Triple,
    padding: Triple,
    indice_key: str,
) -> SparseConvBlock:
    """`SparseConvBlock(sparse_conv(...) without bias, BatchNorm1d (eps 1e-3, momentum 0.01), ReLU)`.

    Args:
        conv_type: the conv's type, `"SubMConv3d"` or `"SparseConv3d"` (see `sparse_conv`).
        in_channels: the conv's input features.
        out_channels: the conv's (and the block's) output features.
        kernel_size: the conv's kernel (see `sparse_conv` for this and the next two).
        stride: the conv's stride.
        padding: the conv's padding.
        indice_key: the conv's key for sharing index pairs.

    Raises:
        FormatError: an unknown `conv_type`.
    """
    # No bias: the batch norm right after it would cancel one.
    conv = sparse_conv(conv_type, in_channels, out_channels, kernel_size, stride, padding, indice_key)
    return SparseConvBlock(conv, build_norm_3d("bn", out_channels, dim=1), nn.ReLU(inplace=True))


def sparse_to_dense(x: Any) -> Tensor:
    """A `SparseConvTensor` as `Tensor[B, C, D, H, W]`, zeros at inactive sites (one `index_put`)."""
    features, indices = x.features, x.indices.long()
    depth, height, width = (int(s) for s in x.spatial_shape)
    dense = features.new_zeros(int(x.batch_size), features.shape[1], depth, height, width)
    dense.permute(0, 2, 3, 4, 1)[indices[:, 0], indices[:, 1], indices[:, 2], indices[:, 3]] = features
    return dense


def sparse_conv_tensor(
    features: Tensor, coords: Tensor, spatial_shape: Sequence[int], batch_size: int
) -> Any:
    """A spconv `SparseConvTensor` of active sites.

    Args:
        features: `Tensor[V, C]`, one row per site.
        coords: `IntTensor[V, 4]` (batch, z, y, x), unique rows inside `spatial_shape`.
        spatial_shape: `(D, H, W)` cells.
        batch_size: samples B.

    Returns:
        The sparse tensor (coordinates stored as int32, as spconv wants them).
    """
    return import_spconv().SparseConvTensor(
        features, coords.int(), [int(s) for s in spatial_shape], int(batch_size)
    )


def sparse_conv(
    conv_type: str,
    in_channels: int,
    out_channels: int,
    kernel_size: Triple,
    stride: Triple = 1,
    padding: Triple = 0,
    indice_key: str | None = None,
    bias: bool = False,
) -> nn.Module:
    """One spconv 3D convolution layer, without norm or activation (wrap it in a `SparseConvBlock`).

    Args:
        conv_type: `"SubMConv3d"` (submanifold: output sites = input sites) or `"SparseConv3d"`.
        in_channels: input features.
        out_channels: output features.
        kernel_size: `k` or `(kD, kH, kW)`.
        stride: `s` or `(sD, sH, sW)`.
        padding: `p` or `(pD, pH, pW)`.
        indice_key: spconv's key for sharing index pairs; a strided conv's key is what its
            inverse conv (`sparse_inverse_conv`) names.
        bias: add a learnt bias.

    Raises:
        FormatError: an unknown `conv_type`.
    """
    if conv_type not in ("SubMConv3d", "SparseConv3d"):
        raise FormatError(f"conv_type must be 'SubMConv3d' or 'SparseConv3d', got {conv_type!r}")
    conv_class = getattr(import_spconv(), conv_type)
    module: nn.Module = conv_class(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        bias=bias,
        indice_key=indice_key,
    )
    return module


def sparse_inverse_conv(
    in_channels: int, out_channels: int, kernel_size: Triple, indice_key: str, bias: bool = False
) -> nn.Module:
    """A spconv `SparseInverseConv3d`: the up-sampling twin of the strided conv keyed `indice_key`.

    Its output sites are exactly the input sites of that strided conv (in their row order), so a
    decoder stage lines up with the encoder stage it skips from. Run it with
    `run_sparse_inverse_conv`.

    Args:
        in_channels: input (coarse) features.
        out_channels: output (fine) features.
        kernel_size: must equal the strided conv's.
        indice_key: the strided conv's `indice_key`.
        bias: add a learnt bias.
    """
    module: nn.Module = import_spconv().SparseInverseConv3d(
        in_channels, out_channels, kernel_size, indice_key=indice_key, bias=bias
    )
    return module
