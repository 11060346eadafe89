"""Small building blocks shared by the backbones and necks: norm layers and conv-norm-act.

`norm` is chosen by name everywhere in `pc3d.nn`:

- `"bn"`: `BatchNorm` (1d for the MLP, 2d for convs), trained as usual;
- `"frozen_bn"`: `FrozenBatchNorm2d` -- a fixed affine map from the BN statistics and
  parameters (buffers, never trained, never updated), for fine-tuning with tiny batches;
- `"gn"`: `GroupNorm` with `gcd(channels, gn_groups)` groups (always divides the channels, so a
  6-channel LeNet layer and a 256-channel FPN layer take the same setting);
- `"none"`: no norm; the preceding conv/linear layer then carries a bias.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError

NormKind = Literal["bn", "frozen_bn", "gn", "none"]
NORM_KINDS: tuple[str, ...] = ("bn", "frozen_bn", "gn", "none")


def check_norm(norm: str, allowed: tuple[str, ...] = NORM_KINDS) -> str:
    """Return `norm` when it is one of `allowed`, else raise `FormatError` listing them."""
    if norm not in allowed:
        raise FormatError(f"norm must be one of {', '.join(map(repr, allowed))}, got {norm!r}")
    return norm


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (all buffers, no gradients).

    `y = (x - running_mean) / sqrt(running_var + eps) * weight + bias` per channel, in train and
    eval mode alike. Loads a `BatchNorm2d` state dict (its `num_batches_tracked` is dropped).
    `Tensor[B, C, H, W] -> Tensor[B, C, H, W]`.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        # Buffers, declared for the type checker (nn.Module's __getattr__ is typed loosely).
        self.weight: Tensor
        self.bias: Tensor
        self.running_mean: Tensor
        self.running_var: Tensor
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # A BatchNorm2d checkpoint carries a counter this layer has no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def build_norm(norm: str, channels: int, dim: int = 2, gn_groups: int = 32) -> nn.Module:
    """The norm layer named by `norm` for `channels` features (`nn.Identity` for `"none"`).

    `dim` is 1 for `Tensor[B, C]` features (the MLP) and 2 for `Tensor[B, C, H, W]` maps.
    """
    check_norm(norm)
    if norm == "none":
        return nn.Identity()
    if norm == "gn":
        return nn.GroupNorm(math.gcd(channels, gn_groups), channels)
    if dim == 1:
        if norm == "frozen_bn":
            raise FormatError("norm 'frozen_bn' is for conv feature maps; use 'bn' or 'none' for the MLP")
        return nn.BatchNorm1d(channels)
    return FrozenBatchNorm2d(channels) if norm == "frozen_bn" else nn.BatchNorm2d(channels)


class ConvNormAct(nn.Sequential):
    """`Conv2d -> norm -> activation`; the conv has a bias only when there is no norm.

    `Tensor[B, in_channels, H, W] -> Tensor[B, out_channels, H', W']` with the usual conv
    arithmetic (`padding` defaults to `kernel_size // 2`, so stride 1 keeps the size).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        norm: str = "bn",
        activation: str = "relu",
        gn_groups: int = 32,
    ) -> None:
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if padding is None else padding,
            bias=norm == "none",
        )
        super().__init__(conv, build_norm(norm, out_channels, 2, gn_groups), build_activation(activation))
        self.out_channels = out_channels


def build_activation(activation: str) -> nn.Module:
    """`"relu"`, `"tanh"` or `"none"` (identity) as a module."""
    if activation == "relu":
        return nn.ReLU(inplace=True)
    if activation == "tanh":
        return nn.Tanh()
    if activation == "none":
        return nn.Identity()
    raise FormatError(f"activation must be one of 'relu', 'tanh', 'none', got {activation!r}")


def init_weights(module: nn.Module) -> None:
    """He-normal convs (fan-out, ReLU gain), unit/zero norms, N(0, 0.01) linears, zero biases.

    Every backbone starts from this: nothing is pretrained (pc3d downloads no weights).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
