"""SECOND's sparse middle encoder."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.sparse.backend import import_spconv, set_sparse_conv_algo
from pc3d.nn.sparse.layers import sparse_conv_block, sparse_to_dense
from pc3d.nn.sparse.tables import Triple, conv_output_shape, triple
from pc3d.nn.voxel.common import check_coords

__all__ = ["SparseEncoder"]


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
        self.sparse_shape = triple(sparse_shape)
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
        if features.shape[0] == 0:
            # No voxel in the whole batch: no active site anywhere, so every layer's output is empty
            # and the dense map is zeros (sparse convs need at least one site to run).
            return features.new_zeros(batch_size, self.out_channels, *self.output_shape[1:])
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
