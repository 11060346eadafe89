"""Sparse 3D convolution on spconv 2: SECOND's sparse middle encoder.

This is the one module of pc3d that imports spconv (`spconv.pytorch`), lazily: importing
`pc3d.nn` never needs it, building a `SparseEncoder` does, and then a missing spconv raises
`MissingDependencyError` with the package to install (`pip install spconv` for the CPU,
`spconv-cu120` etc. for CUDA).

spconv's CPU kernels only implement `ConvAlgo.Native`, its CUDA default (implicit GEMM) only runs
on the GPU. `set_sparse_conv_algo` is the one place that picks the algorithm of every sparse conv
layer of a module for a device (`sparse_conv_algo`); `SparseEncoder.forward` calls it when the
input's device changes. spconv 2 keeps one weight layout, `(C_out, kD, kH, kW, C_in)`, for every
algorithm, so switching the algorithm never touches the weights.

Coordinates are `(batch, z, y, x)` and spatial shapes `(D, H, W)` = `(z, y, x)` cell counts, as
`pc3d.ops.hard_voxelize` returns them (prepend the batch column).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, MissingDependencyError, ShapeError
from pc3d.nn.voxel.common import build_norm_3d, check_coords

SPCONV_INSTALL_HINT = "pip install spconv (CPU), or the build matching your CUDA, e.g. pip install spconv-cu120"
DEFAULT_ALGO_ATTRIBUTE = "pc3d_default_algo"

Triple = int | Sequence[int]


def import_spconv() -> ModuleType:
    """`spconv.pytorch`, or `MissingDependencyError` naming the package to install."""
    try:
        import spconv.pytorch as spconv_pytorch
    except ImportError as err:
        raise MissingDependencyError(f"sparse convolution (SparseEncoder) needs spconv 2: {SPCONV_INSTALL_HINT}") from err
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


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the enclosed torch/OpenMP work on one CPU thread, restoring the thread count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _single_threaded_backward(node: Any) -> None:
    """Make the autograd `node` (a spconv conv's backward) run on one CPU thread."""
    saved: list[int] = []

    def before(grad_outputs: Any) -> None:
        saved.append(torch.get_num_threads())
        torch.set_num_threads(1)

    def after(grad_inputs: Any, grad_outputs: Any) -> None:
        torch.set_num_threads(saved.pop())

    node.register_prehook(before)
    node.register_hook(after)


def run_sparse_conv(conv: nn.Module, x: Any) -> Any:
    """`conv(x)` for a spconv convolution, made safe on the CPU (forward and backward).

    spconv 2's CPU convolution adds each kernel offset's products into the output with an
    OpenMP loop whose row pointers are shared between the threads (spconv 2.3.8
    `GatherCPU::scatter_add`): with more than one thread, rows are added to the wrong outputs,
    differently on every run. On the CPU the convolution and its backward therefore run on one
    thread (the rest of the network keeps all threads); on CUDA `conv(x)` runs unchanged.
    """
    if x.features.device.type != "cpu" or torch.get_num_threads() == 1:
        return conv(x)
    with single_threaded():
        out = conv(x)
    if out.features.grad_fn is not None:
        _single_threaded_backward(out.features.grad_fn)
    return out


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
    conv_type: str, in_channels: int, out_channels: int, kernel_size: Triple, stride: Triple, padding: Triple, indice_key: str
) -> SparseConvBlock:
    """`SparseConvBlock(conv (no bias), BatchNorm1d (eps 1e-3, momentum 0.01), ReLU)`.

    Args:
        conv_type: `"SubMConv3d"` (submanifold: output sites = input sites) or `"SparseConv3d"`.
        in_channels: input features.
        out_channels: output features.
        kernel_size: `k` or `(kD, kH, kW)`.
        stride: `s` or `(sD, sH, sW)`.
        padding: `p` or `(pD, pH, pW)`.
        indice_key: spconv's key for sharing the index pairs between layers of one geometry.
    """
    spconv = import_spconv()
    if conv_type not in ("SubMConv3d", "SparseConv3d"):
        raise FormatError(f"conv_type must be 'SubMConv3d' or 'SparseConv3d', got {conv_type!r}")
    conv_class = getattr(spconv, conv_type)
    conv = conv_class(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False, indice_key=indice_key)
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


def conv_output_shape(shape: Sequence[int], kernel_size: Triple, stride: Triple, padding: Triple) -> tuple[int, int, int]:
    """Spatial shape `(D, H, W)` after a (non-submanifold) sparse conv: `(n + 2p - k) // s + 1` per axis."""
    k, s, p = _triple(kernel_size), _triple(stride), _triple(padding)
    out = tuple((int(n) + 2 * p[a] - k[a]) // s[a] + 1 for a, n in enumerate(shape))
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
            raise FormatError(f"encoder_paddings {encoder_paddings!r} must match encoder_channels {encoder_channels!r} layer for layer")
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
        for i, (stage_channels, stage_paddings) in enumerate(zip(encoder_channels, encoder_paddings, strict=True)):
            layers = []
            for j, (out_channels, padding) in enumerate(zip(stage_channels, stage_paddings, strict=True)):
                if i > 0 and j == 0:  # the stage's downsampling conv
                    layers.append(sparse_conv_block("SparseConv3d", channels, out_channels, 3, 2, padding, f"spconv{i + 1}"))
                    shape = conv_output_shape(shape, 3, 2, padding)
                else:
                    layers.append(sparse_conv_block("SubMConv3d", channels, out_channels, 3, 1, padding, f"subm{i + 1}"))
                channels = out_channels
            stages.append((f"encoder_layer{i + 1}", nn.Sequential(*layers)))
        self.encoder_layers = nn.Sequential(OrderedDict(stages))
        self.conv_out = sparse_conv_block("SparseConv3d", channels, output_channels, (3, 1, 1), (2, 1, 1), 0, "spconv_down2")
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
            raise ShapeError(f"SparseEncoder expects features of shape (V, {self.in_channels}), got {tuple(features.shape)}")
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
