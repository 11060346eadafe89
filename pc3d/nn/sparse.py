"""Sparse 3D convolution on spconv 2: SECOND's sparse middle encoder.

This is the one module of pc3d that imports spconv (`spconv.pytorch`), lazily: importing
`pc3d.nn` never needs it, building a `SparseEncoder` does, and then a missing spconv raises
`MissingDependencyError` with the package to install (`pip install spconv` for the CPU,
`spconv-cu120` etc. for CUDA).

Weights live in spconv's modules (`SubMConv3d`, `SparseConv3d`; layout `(C_out, kD, kH, kW,
C_in)` for every algorithm). On CUDA spconv computes the convolutions with the algorithm it picks
(implicit GEMM); `set_sparse_conv_algo` is the one place that sets every layer's algorithm for a
device (`sparse_conv_algo`: `ConvAlgo.Native` on the CPU, spconv's default elsewhere), and
`SparseEncoder.forward` calls it when the input's device changes. On the CPU pc3d computes the
convolutions itself (`sparse_conv_cpu`, torch gathers and GEMMs): spconv 2.3.8's CPU kernels
give wrong sums on more than one thread and cannot run a backward pass without CUDA.

Coordinates are `(batch, z, y, x)` and spatial shapes `(D, H, W)` = `(z, y, x)` cell counts, as
`pc3d.ops.hard_voxelize` returns them (prepend the batch column).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, MissingDependencyError, ShapeError
from pc3d.nn.voxel.common import build_norm_3d, check_coords

SPCONV_INSTALL_HINT = (
    "pip install spconv (CPU), or the build matching your CUDA, e.g. pip install spconv-cu120"
)
DEFAULT_ALGO_ATTRIBUTE = "pc3d_default_algo"

Triple = int | Sequence[int]


def import_spconv() -> ModuleType:
    """`spconv.pytorch`, or `MissingDependencyError` naming the package to install."""
    try:
        import spconv.pytorch as spconv_pytorch
    except ImportError as err:
        raise MissingDependencyError(
            f"sparse convolution (SparseEncoder) needs spconv 2: {SPCONV_INSTALL_HINT}"
        ) from err
    return spconv_pytorch


def sparse_conv_algo(device: torch.device | str, default: Any) -> Any:
    """The spconv algorithm for a layer on `device`: `ConvAlgo.Native` on the CPU, else `default`.

    Args:
        device: where the layer runs.
        default: the algorithm spconv chose when the layer was built (its CUDA default).
    """
    if torch.device(device).type == "cpu":
        return import_spconv().ConvAlgo.Native
    return default


def set_sparse_conv_algo(module: nn.Module, device: torch.device | str) -> None:
    """Give every spconv convolution in `module` the algorithm `sparse_conv_algo` picks for `device`.

    The algorithm spconv chose at construction is remembered on each layer (attribute
    `pc3d_default_algo`), so moving a module back to CUDA restores spconv's own choice.
    """
    convolution = import_spconv().conv.SparseConvolution
    for layer in module.modules():
        if isinstance(layer, convolution):
            default = layer.__dict__.setdefault(DEFAULT_ALGO_ATTRIBUTE, layer.algo)
            layer.algo = sparse_conv_algo(device, default)


def _kernel_offsets(kernel_size: Sequence[int], dilation: Sequence[int], device: torch.device) -> Tensor:
    """`LongTensor[K, 3]`: `k * dilation` per axis for every kernel position, in spconv's weight order."""
    axes = [torch.arange(int(k), device=device) * int(d) for k, d in zip(kernel_size, dilation, strict=True)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def _site_keys(batch: Tensor, zyx: Tensor, shape: Sequence[int]) -> Tensor:
    """One int64 key per site, ordered like (batch, z, y, x)."""
    return ((batch * shape[0] + zyx[..., 0]) * shape[1] + zyx[..., 1]) * shape[2] + zyx[..., 2]


def _submanifold_table(
    indices: Tensor, shape: Sequence[int], kernel_size: Sequence[int], dilation: Sequence[int]
) -> Tensor:
    """`LongTensor[N, K]`: the input row each site reads at each kernel position, `N` where none.

    A submanifold conv's outputs are its inputs; output `o` reads the input at `o + (k - centre)`.
    With an odd kernel the pairs are symmetric (`o` reads `i` at `k` exactly when `i` reads `o` at
    the mirrored position `K - 1 - k`), so only the first half of the positions is searched (one
    sort and one `searchsorted`), the other half is its mirror and the centre is the site itself.
    """
    n, device = indices.shape[0], indices.device
    offsets = _kernel_offsets(kernel_size, dilation, device)
    count = offsets.shape[0]
    centre = torch.tensor(
        [(int(k) // 2) * int(d) for k, d in zip(kernel_size, dilation, strict=True)], device=device
    )
    symmetric = all(int(k) % 2 == 1 for k in kernel_size)
    searched = count // 2 if symmetric else count
    keys = _site_keys(indices[:, 0], indices[:, 1:], shape)
    sorted_keys, order = torch.sort(keys)
    query = indices[None, :, 1:] + (offsets[:searched] - centre)[:, None, :]  # [searched, N, 3]
    inside = ((query >= 0) & (query < query.new_tensor(list(shape)))).all(dim=-1)
    query_keys = _site_keys(indices[None, :, 0], query, shape)
    position = torch.searchsorted(sorted_keys, query_keys).clamp_(max=max(n - 1, 0))
    found = inside & (sorted_keys[position] == query_keys)
    kernel, out_rows = found.nonzero(as_tuple=True)
    in_rows = order[position[kernel, out_rows]]
    table = torch.full((n, count), n, dtype=torch.long, device=device)
    table[out_rows, kernel] = in_rows
    if symmetric:
        table[in_rows, count - 1 - kernel] = out_rows
        table[:, count // 2] = torch.arange(n, device=device)
    return table


def _strided_table(
    indices: Tensor,
    shape: Sequence[int],
    out_shape: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[Tensor, Tensor]:
    """A (non-submanifold) sparse conv's `LongTensor[M, K]` table (input rows, `N` where none) and
    its output sites `LongTensor[M, 4]` (sorted by (batch, z, y, x)).

    Output `o` reads the input at `o * stride - padding + k`, so input `i` reaches
    `o = (i + padding - k) / stride` where that divides exactly and lands inside `out_shape`. The
    test is made per axis (`[N, k_axis]`) and combined by broadcasting, never on `[K, N, 3]`.
    """
    n, device = indices.shape[0], indices.device
    zyx = indices[:, 1:]
    valid_axes, out_axes = [], []
    for axis in range(3):
        k = torch.arange(int(kernel_size[axis]), device=device) * int(dilation[axis])
        scaled = zyx[:, axis, None] + int(padding[axis]) - k  # [N, k_axis]
        out = torch.div(scaled, int(stride[axis]), rounding_mode="floor")
        valid_axes.append((out * int(stride[axis]) == scaled) & (out >= 0) & (out < int(out_shape[axis])))
        out_axes.append(out)
    kz, ky, kx = (int(k) for k in kernel_size)
    valid = (
        valid_axes[0][:, :, None, None] & valid_axes[1][:, None, :, None] & valid_axes[2][:, None, None, :]
    )
    in_rows, kernel = valid.reshape(n, kz * ky * kx).nonzero(as_tuple=True)
    out_zyx = torch.stack(
        (
            out_axes[0][in_rows, kernel // (ky * kx)],
            out_axes[1][in_rows, (kernel // kx) % ky],
            out_axes[2][in_rows, kernel % kx],
        ),
        dim=1,
    )
    batch = indices[in_rows, 0]
    unique_keys, out_rows = torch.unique(_site_keys(batch, out_zyx, out_shape), return_inverse=True)
    out_indices = torch.empty(unique_keys.numel(), 4, dtype=torch.long, device=device)
    out_indices[out_rows, 0] = batch
    out_indices[out_rows, 1:] = out_zyx
    table = torch.full((unique_keys.numel(), kz * ky * kx), n, dtype=torch.long, device=device)
    table[out_rows, kernel] = in_rows
    return table, out_indices


def _convolve_table(features: Tensor, weight: Tensor, table: Tensor) -> Tensor:
    """`out[o] = sum_k weight[:, k] @ features[table[o, k]]`, skipping `table[o, k] == N`.

    One GEMM per kernel position over the pairs that exist (`_accumulate_pairs`). One GEMM over
    every output's gathered neighbourhood (`[M, K * C_in]`, zeros where none) was measured too: it
    does twice the arithmetic (SECOND's KITTI layers have 20% to 60% of their neighbours), was only
    about 5% faster on SECOND's encoder at inference (2-core CPU), and what backward keeps of it
    is K times the features (1 GB for one layer on a batch of six KITTI frames).

    Args:
        features: `Tensor[N, C_in]`.
        weight: `Tensor[C_out, K, C_in]`.
        table: `LongTensor[M, K]` of rows of `features`, `N` for "no input".

    Returns:
        `Tensor[M, C_out]`.
    """
    by_position = table.t()
    kernel, out_rows = (by_position < features.shape[0]).nonzero(as_tuple=True)  # grouped by position
    in_rows = by_position[kernel, out_rows]
    return _accumulate_pairs(features, weight, in_rows, out_rows, kernel, table.shape[0])


def sparse_conv_cpu(conv: Any, x: Any) -> Any:
    """A spconv `SubMConv3d`/`SparseConv3d` computed with torch ops (gathers and GEMMs).

    Same function as spconv's convolution (same weights, same active output sites), on any number
    of threads and with autograd; used for every sparse conv on the CPU, where spconv 2.3.8's own
    kernels are unusable: its CPU scatter-add shares two row pointers between OpenMP threads
    (`GatherCPU::scatter_add`: with more than one thread, sums go to wrong rows, differently on
    every run) and its CPU backward asks for a CUDA stream (fails on a CPU-only torch). Each
    layer's neighbour table (`[M, K]`: the input row every output reads at every kernel position)
    comes from one sort and `searchsorted` (submanifold) or one `unique` (strided); see
    `_convolve_table` for how the sums are made.

    Args:
        conv: a spconv 3D convolution (not transposed, not inverse), weight `(C_out, kD, kH, kW, C_in)`.
        x: its input `SparseConvTensor`.

    Returns:
        The output `SparseConvTensor` (output sites in (batch, z, y, x) order).
    """
    spconv = import_spconv()
    if conv.transposed or conv.inverse:
        raise FormatError(
            f"{type(conv).__name__}: transposed and inverse sparse convs are not supported on the CPU"
        )
    features, indices = x.features, x.indices.long()
    shape = [int(v) for v in x.spatial_shape]
    if indices.shape[0] == 0:
        raise ShapeError(f"{type(conv).__name__}: the sparse tensor has no active sites")
    indice_dict = dict(x.indice_dict)
    if conv.subm:
        # Submanifold layers sharing an indice key on the same sites share their table (as spconv
        # shares its pairs).
        cache_key = f"pc3d:{conv.indice_key}:{list(conv.kernel_size)}:{list(conv.dilation)}"
        cached = indice_dict.get(cache_key)
        if cached is not None and cached[0] is x.indices:
            table = cached[1]
        else:
            table = _submanifold_table(indices, shape, conv.kernel_size, conv.dilation)
            if conv.indice_key is not None:
                indice_dict[cache_key] = (x.indices, table)
        out_indices, out_shape = x.indices, shape
    else:
        out_shape = list(conv_output_shape(shape, conv.kernel_size, conv.stride, conv.padding, conv.dilation))
        table, strided_indices = _strided_table(
            indices, shape, out_shape, conv.kernel_size, conv.stride, conv.padding, conv.dilation
        )
        out_indices = strided_indices.int()
    weight = conv.weight.reshape(conv.out_channels, table.shape[1], conv.in_channels)
    out = _convolve_table(features, weight, table)
    if conv.bias is not None:
        out = out + conv.bias
    return spconv.SparseConvTensor(out, out_indices, out_shape, x.batch_size, indice_dict=indice_dict)


def run_sparse_conv(conv: nn.Module, x: Any) -> Any:
    """`conv(x)` for a spconv convolution: `sparse_conv_cpu` on the CPU, spconv itself elsewhere."""
    if x.features.device.type == "cpu":
        return sparse_conv_cpu(conv, x)
    return conv(x)


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


def _triple(value: Triple) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    values = tuple(int(v) for v in value)
    if len(values) != 3:
        raise FormatError(f"expected an int or 3 ints (z, y, x), got {value!r}")
    return (values[0], values[1], values[2])


def conv_output_shape(
    shape: Sequence[int], kernel_size: Triple, stride: Triple, padding: Triple, dilation: Triple = 1
) -> tuple[int, int, int]:
    """Spatial shape `(D, H, W)` after a (non-submanifold) sparse conv: `(n + 2p - d(k - 1) - 1) // s + 1` per axis."""
    k, s, p, d = _triple(kernel_size), _triple(stride), _triple(padding), _triple(dilation)
    out = tuple((int(n) + 2 * p[a] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a, n in enumerate(shape))
    return (out[0], out[1], out[2])


class SparseEncoder(nn.Module):
    """SECOND's sparse middle encoder: voxel features -> BEV map `Tensor[B, C_out * D_out, H_out, W_out]`.

    `conv_input` (submanifold 3x3x3), then the `encoder_layers` stages (`encoder_layer1` ...): every
    stage but the first starts with a stride-2 `SparseConv3d`, all other layers are submanifold;
    `conv_out` (kernel (3, 1, 1), stride (2, 1, 1)) squeezes the height, and the dense result's
    channels and height are merged into BEV channels. Every conv is followed by BatchNorm1d (eps
    1e-3, momentum 0.01) and ReLU. Module names and weight shapes follow MMDetection3D's
    `SparseEncoder` (`conv_input.0.weight`, `encoder_layers.encoder_layer2.0.0.weight`, ...).

    Args:
        in_channels: voxel feature channels (4 for `HardSimpleVFE` on x, y, z, r).
        sparse_shape: `(D, H, W)` grid, z-y-x; SECOND pads the voxel grid's 40 z cells to 41.
        base_channels: `conv_input` output channels.
        output_channels: `conv_out` output channels.
        encoder_channels: output channels of every layer, per stage.
        encoder_paddings: padding of every layer, per stage (int or `(z, y, x)`).

    Attributes:
        output_shape: `(D_out, H_out, W_out)` after `conv_out` (`(2, 200, 176)` for KITTI).
        out_channels: BEV channels, `output_channels * D_out` (256 for KITTI).
    """

    def __init__(
        self,
        in_channels: int = 4,
        sparse_shape: Sequence[int] = (41, 1600, 1408),
        base_channels: int = 16,
        output_channels: int = 128,
        encoder_channels: Sequence[Sequence[int]] = ((16,), (32, 32, 32), (64, 64, 64), (64, 64, 64)),
        encoder_paddings: Sequence[Sequence[Triple]] = ((1,), (1, 1, 1), (1, 1, 1), ((0, 1, 1), 1, 1)),
    ) -> None:
        super().__init__()
        import_spconv()
        if len(encoder_channels) != len(encoder_paddings) or any(
            len(c) != len(p) for c, p in zip(encoder_channels, encoder_paddings, strict=False)
        ):
            raise FormatError(
                f"encoder_paddings {encoder_paddings!r} must match encoder_channels {encoder_channels!r} layer for layer"
            )
        self.in_channels = in_channels
        self.sparse_shape = _triple(sparse_shape)
        # Shapes for KITTI's SECOND (sparse_shape [41, 1600, 1408]), channels in brackets:
        # conv_input      SubM 3                          [41, 1600, 1408] -> [41, 1600, 1408] (16)
        # encoder_layer1  SubM 3                          [41, 1600, 1408] -> [41, 1600, 1408] (16)
        # encoder_layer2  SpConv 3/2 pad 1, SubM x2       [41, 1600, 1408] -> [21, 800, 704]   (32)
        # encoder_layer3  SpConv 3/2 pad 1, SubM x2       [21, 800, 704]   -> [11, 400, 352]   (64)
        # encoder_layer4  SpConv 3/2 pad (0,1,1), SubM x2 [11, 400, 352]   -> [5, 200, 176]    (64)
        # conv_out        SpConv (3,1,1)/(2,1,1)          [5, 200, 176]    -> [2, 200, 176]    (128)
        self.conv_input = sparse_conv_block("SubMConv3d", in_channels, base_channels, 3, 1, 1, "subm1")
        shape = self.sparse_shape
        stages = []
        channels = base_channels
        for i, (stage_channels, stage_paddings) in enumerate(
            zip(encoder_channels, encoder_paddings, strict=True)
        ):
            layers = []
            for j, (out_channels, padding) in enumerate(zip(stage_channels, stage_paddings, strict=True)):
                if i > 0 and j == 0:  # the stage's downsampling conv
                    layers.append(
                        sparse_conv_block(
                            "SparseConv3d", channels, out_channels, 3, 2, padding, f"spconv{i + 1}"
                        )
                    )
                    shape = conv_output_shape(shape, 3, 2, padding)
                else:
                    layers.append(
                        sparse_conv_block("SubMConv3d", channels, out_channels, 3, 1, padding, f"subm{i + 1}")
                    )
                channels = out_channels
            stages.append((f"encoder_layer{i + 1}", nn.Sequential(*layers)))
        self.encoder_layers = nn.Sequential(OrderedDict(stages))
        self.conv_out = sparse_conv_block(
            "SparseConv3d", channels, output_channels, (3, 1, 1), (2, 1, 1), 0, "spconv_down2"
        )
        self.output_shape = conv_output_shape(shape, (3, 1, 1), (2, 1, 1), 0)
        self.out_channels = output_channels * self.output_shape[0]
        self._algo_device: torch.device | None = None

    def forward(self, features: Tensor, coords: Tensor, batch_size: int) -> Tensor:
        """Encode voxels into a BEV map.

        Args:
            features: `Tensor[V, in_channels]` (e.g. `HardSimpleVFE` output).
            coords: `IntTensor[V, 4]` (batch, z, y, x) inside `sparse_shape`, unique rows.
            batch_size: samples B.

        Returns:
            `Tensor[B, out_channels, H_out, W_out]` (KITTI: `[B, 256, 200, 176]`).
        """
        self._check(features, coords, batch_size)
        if self._algo_device != features.device:
            set_sparse_conv_algo(self, features.device)
            self._algo_device = features.device
        spconv = import_spconv()
        x = spconv.SparseConvTensor(features, coords.int(), list(self.sparse_shape), batch_size)
        x = self.conv_input(x)  # [41, 1600, 1408] -> [41, 1600, 1408]
        # encoder_layer1..4: [41, 1600, 1408] -> [41, 1600, 1408] -> [21, 800, 704] -> [11, 400, 352] -> [5, 200, 176]
        x = self.encoder_layers(x)
        x = self.conv_out(x)  # [5, 200, 176] -> [2, 200, 176]
        dense = sparse_to_dense(x)  # [B, 128, 2, 200, 176]
        b, c, d, h, w = dense.shape
        return dense.view(b, c * d, h, w)  # [B, 256, 200, 176]: height folded into channels

    def _check(self, features: Tensor, coords: Tensor, batch_size: int) -> None:
        if features.dim() != 2 or features.shape[1] != self.in_channels:
            raise ShapeError(
                f"SparseEncoder expects features of shape (V, {self.in_channels}), got {tuple(features.shape)}"
            )
        check_coords(coords, features.shape[0], "SparseEncoder")
        if coords.shape[0] == 0:
            return
        limits = coords.new_tensor([batch_size, *self.sparse_shape])
        outside = ((coords < 0) | (coords >= limits)).any(dim=1)
        if bool(outside.any()):
            row = int(outside.nonzero()[0, 0])
            raise ShapeError(
                f"SparseEncoder: coords row {row} {coords[row].tolist()} (batch, z, y, x) is outside batch size "
                f"{batch_size} and sparse_shape {list(self.sparse_shape)}"
            )


# -- Builders for encoder-decoder networks (sparse U-Nets): plain layers and inverse convolutions --


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


def _accumulate_pairs(
    features: Tensor, weight: Tensor, in_rows: Tensor, out_rows: Tensor, kernel: Tensor, num_out: int
) -> Tensor:
    """`out[o] += weight[:, k] @ features[i]` for every pair `(i, o, k)`; pairs grouped by `k`."""
    out = features.new_zeros(num_out, weight.shape[0])
    counts = torch.bincount(kernel, minlength=weight.shape[1]).tolist()
    # One unbind, not a `weight[:, k]` per position: each indexing's backward would zero-fill a
    # whole weight-sized gradient (27 of them per layer), which dominates layers with few sites.
    per_position = weight.unbind(dim=1)
    start = 0
    for position, count in enumerate(counts):  # a loop over kernel positions, not over sites
        if count:
            rows = slice(start, start + count)
            out.index_add_(
                0, out_rows[rows], features.index_select(0, in_rows[rows]) @ per_position[position].t()
            )
        start += count
    return out


def sparse_inverse_conv_cpu(conv: Any, x: Any, fine: Any, down: Any) -> Any:
    """A spconv `SparseInverseConv3d` computed with torch ops (the CPU path, with autograd).

    The inverse conv reuses the index pairs of the strided conv `down` with input and output
    swapped, each pair keeping its kernel position: for every pair (fine site `i`, coarse site
    `o`, kernel position `k`) of `down`, `out[i] += W[:, k] @ x[o]`. That is spconv's rule, and
    the transpose of `down`'s sparsity pattern (a dense `conv_transpose3d` read at the fine sites).

    Args:
        conv: the inverse conv, weight `(C_out, kD, kH, kW, C_in)`, same kernel size as `down`.
        x: its coarse input `SparseConvTensor`, holding the output sites of `down` (any row order).
        fine: the `SparseConvTensor` that `down` took; its sites (and row order) are the output's.
        down: the strided spconv conv this one inverts (its kernel, stride, padding, dilation).

    Returns:
        `SparseConvTensor` with `fine`'s indices, spatial shape and batch size.

    Raises:
        FormatError: kernel sizes that differ.
        ShapeError: `x` lacks sites that `down` produces from `fine` (not its output).
    """
    if tuple(conv.kernel_size) != tuple(down.kernel_size):
        raise FormatError(
            f"inverse conv kernel {tuple(conv.kernel_size)} differs from its strided conv's {tuple(down.kernel_size)}"
        )
    fine_indices = fine.indices.long()
    fine_shape, coarse_shape = [int(v) for v in fine.spatial_shape], [int(v) for v in x.spatial_shape]
    table, sites = _strided_table(
        fine_indices, fine_shape, coarse_shape, down.kernel_size, down.stride, down.padding, down.dilation
    )
    coarse = x.indices.long()
    sorted_keys, order = torch.sort(_site_keys(coarse[:, 0], coarse[:, 1:], coarse_shape))
    wanted = _site_keys(sites[:, 0], sites[:, 1:], coarse_shape)
    position = torch.searchsorted(sorted_keys, wanted).clamp_(max=max(sorted_keys.numel() - 1, 0))
    if sorted_keys.numel() == 0 or not bool((sorted_keys[position] == wanted).all()):
        raise ShapeError(
            f"{type(conv).__name__} (indice_key {conv.indice_key!r}): the coarse tensor does not hold the output "
            "sites of its strided conv; pass the tensor that conv produced (after submanifold layers only)"
        )
    # Transpose `down`'s table: fine site i reads coarse site o at position k where `down`'s o read i at k
    # (for a given i and k there is at most one such o).
    num_fine, num_coarse = fine_indices.shape[0], coarse.shape[0]
    slots, kernel = (table < num_fine).nonzero(as_tuple=True)
    inverse = torch.full((num_fine, table.shape[1]), num_coarse, dtype=torch.long, device=table.device)
    inverse[table[slots, kernel], kernel] = order[position][slots]
    weight = conv.weight.reshape(conv.out_channels, table.shape[1], conv.in_channels)
    out = _convolve_table(x.features, weight, inverse)
    if conv.bias is not None:
        out = out + conv.bias
    # The coarse tensor's index dict holds the fine level's submanifold pairs: later layers reuse them.
    return import_spconv().SparseConvTensor(
        out, fine.indices, list(fine.spatial_shape), fine.batch_size, indice_dict=dict(x.indice_dict)
    )


def run_sparse_inverse_conv(conv: Any, x: Any, fine: Any, down: Any) -> Any:
    """`conv(x)` for a spconv inverse conv: `sparse_inverse_conv_cpu` on the CPU, spconv elsewhere.

    Args:
        conv: a `sparse_inverse_conv` layer.
        x: the coarse `SparseConvTensor`.
        fine: the tensor the paired strided conv `down` took (spconv finds it by `indice_key`
            on CUDA; the CPU path reads it from here).
        down: the paired strided conv.

    Returns:
        The fine `SparseConvTensor` (the sites of `fine`, in its row order).
    """
    if x.features.device.type == "cpu":
        return sparse_inverse_conv_cpu(conv, x, fine, down)
    return conv(x)
