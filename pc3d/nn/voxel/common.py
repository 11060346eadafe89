"""Norm settings and input checks shared by the 3D blocks (voxel encoders, BEV backbone, necks).

PointPillars and SECOND (and MMDetection3D, whose checkpoints pc3d runs) use batch norm with
`eps=1e-3` and `momentum=0.01` everywhere, not PyTorch's defaults (`1e-5`, `0.1`): the eps
changes the function computed with given weights, so it has to match to reproduce their outputs.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from pc3d.errors import ShapeError
from pc3d.nn.layers import build_norm, check_norm

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def set_bn_hyperparameters(
    module: nn.Module, eps: float = BN_EPS, momentum: float = BN_MOMENTUM
) -> nn.Module:
    """Set `eps` and `momentum` of every batch-norm layer in `module` (in place); returns `module`."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eps = eps
            m.momentum = momentum
    return module


def build_norm_3d(norm: str, channels: int, dim: int = 2) -> nn.Module:
    """`pc3d.nn.layers.build_norm` with the PointPillars/SECOND batch-norm settings.

    Args:
        norm: `"bn"`, `"gn"` or `"none"` (identity).
        channels: features normalised.
        dim: 1 for `Tensor[N, C]` features, 2 for `Tensor[B, C, H, W]` maps.

    Returns:
        The norm layer (`BatchNorm1d`/`BatchNorm2d` with eps 1e-3, momentum 0.01 for `"bn"`).
    """
    check_norm(norm, ("bn", "gn", "none"))
    return set_bn_hyperparameters(build_norm(norm, channels, dim))


def check_voxel_batch(voxels: Tensor, num_points: Tensor, coords: Tensor, owner: str) -> None:
    """Raise `ShapeError` unless the hard-voxel inputs agree.

    Args:
        voxels: `Tensor[V, M, C]` points per voxel, zero padded.
        num_points: `Tensor[V]` points stored per voxel.
        coords: `IntTensor[V, 4]` as batch, z, y, x.
        owner: the module named in the message.
    """
    if voxels.dim() != 3:
        raise ShapeError(f"{owner} expects voxels of shape (V, max_points, C), got {tuple(voxels.shape)}")
    v = voxels.shape[0]
    if num_points.shape != (v,):
        raise ShapeError(
            f"{owner} expects num_points of shape ({v},) for {v} voxels, got {tuple(num_points.shape)}"
        )
    check_coords(coords, v, owner)


def check_coords(coords: Tensor, rows: int, owner: str) -> None:
    """Raise `ShapeError` unless `coords` is `Tensor[rows, 4]` (batch, z, y, x)."""
    if coords.dim() != 2 or coords.shape != (rows, 4):
        raise ShapeError(
            f"{owner} expects coords of shape ({rows}, 4) as (batch, z, y, x), got {tuple(coords.shape)}"
        )


def init_bev_weights(module: nn.Module) -> None:
    """He-normal (fan-out, ReLU gain) `Conv2d`/`ConvTranspose2d` weights, zero biases, unit/zero norms."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
