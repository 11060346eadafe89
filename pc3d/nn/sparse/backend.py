"""The spconv algorithm per device, in one place; spconv itself comes from :mod:`pc3d.ops.spconv_module`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pc3d.ops.spconv_module import SPCONV_INSTALL_HINT, import_spconv

__all__ = [
    "DEFAULT_ALGO_ATTRIBUTE",
    "SPCONV_INSTALL_HINT",
    "import_spconv",
    "set_sparse_conv_algo",
    "sparse_conv_algo",
]

DEFAULT_ALGO_ATTRIBUTE = "pc3d_default_algo"


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
