"""Inference-time folding of batch norm into the layer before it (conv, transposed conv, linear).

In eval mode a batch norm is a fixed per-channel affine map
``y = (x - mean) / sqrt(var + eps) * gamma + beta``, so a ``Conv2d``/``ConvTranspose2d``/``Linear``
followed by it computes the same function as one layer with scaled weights and a bias:
``W' = W * s`` (per output channel), ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``.
That saves one full pass over every feature map, which on the CPU is a large share of a
PointPillars-size BEV network (its maps are 64 x 248 x 216 floats and more).

:func:`fuse_conv_bn` folds every ``(layer, BatchNorm)`` pair that follows each other inside an
``nn.Sequential`` (``ConvNormAct``, SECOND's backbone blocks and FPN deblocks) and every module that
holds a ``linear`` and a ``norm`` attribute (PointPillars' ``PFNLayer``); the norm becomes an
``nn.Identity``. The folded model is for inference only: it no longer trains like the original.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from pc3d.errors import Pc3dError
from pc3d.nn.layers import FrozenBatchNorm2d
from pc3d.nn.winograd import use_winograd

__all__ = [
    "fold_batch_norm",
    "fuse_conv_bn",
    "has_inference_copy",
    "inference_copy",
    "optimize_for_inference",
    "to_channels_last",
]

_Foldable = nn.Conv2d | nn.ConvTranspose2d | nn.Linear
_Norm = _BatchNorm | FrozenBatchNorm2d


def _norm_scale_shift(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` of an eval-mode batch norm: ``y = x * scale + shift``."""
    mean, var = norm.running_mean, norm.running_var
    if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor):
        raise Pc3dError(
            f"{type(norm).__name__} without running statistics (track_running_stats=False) cannot be folded"
        )
    scale = torch.rsqrt(var.double() + float(norm.eps))  # type: ignore[arg-type]
    weight, bias = norm.weight, norm.bias
    if isinstance(weight, torch.Tensor):
        scale = scale * weight.double()
    shift = -mean.double() * scale
    if isinstance(bias, torch.Tensor):
        shift = shift + bias.double()
    return scale, shift


@torch.no_grad()
def fold_batch_norm(layer: _Foldable, norm: nn.Module) -> _Foldable:
    """A copy of ``layer`` that computes ``norm(layer(x))`` of the eval-mode ``norm``.

    Args:
        layer: ``Conv2d``, ``ConvTranspose2d`` (groups 1) or ``Linear``.
        norm: ``BatchNorm1d/2d`` or ``FrozenBatchNorm2d`` over ``layer``'s output channels.

    Returns:
        A new layer of the same type, with a bias, on the same device and dtype.

    Raises:
        Pc3dError: the norm has no running statistics, the channels differ, or a grouped
            transposed conv.
    """
    scale, shift = _norm_scale_shift(norm)
    weight = layer.weight.detach().double()
    if isinstance(layer, nn.ConvTranspose2d):
        if layer.groups != 1:
            raise Pc3dError("fold_batch_norm: grouped ConvTranspose2d is not supported")
        axis = 1  # weight (C_in, C_out, kH, kW)
    else:
        axis = 0  # Conv2d (C_out, C_in, kH, kW); Linear (C_out, C_in)
    if weight.shape[axis] != scale.shape[0]:
        raise Pc3dError(
            f"fold_batch_norm: {type(layer).__name__} has {weight.shape[axis]} output channels, "
            f"{type(norm).__name__} normalises {scale.shape[0]}"
        )
    view = [1] * weight.dim()
    view[axis] = -1
    bias = layer.bias.detach().double() if layer.bias is not None else torch.zeros_like(shift)
    fused = _empty_like(layer)
    fused.weight.copy_((weight * scale.view(view)).to(layer.weight.dtype))
    assert fused.bias is not None
    fused.bias.copy_((bias * scale + shift).to(layer.weight.dtype))
    return fused


def _empty_like(layer: _Foldable) -> _Foldable:
    """A layer of the same type and geometry as ``layer``, with a bias."""
    factory = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, layer.out_features, bias=True, **factory)
    kwargs = {
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
        "bias": True,
        "padding_mode": layer.padding_mode,
        **factory,
    }
    if isinstance(layer, nn.ConvTranspose2d):
        return nn.ConvTranspose2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,  # type: ignore[arg-type]
            output_padding=layer.output_padding,  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )
    return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, **kwargs)  # type: ignore[arg-type]


def _foldable_pair(layer: nn.Module, norm: nn.Module) -> bool:
    return isinstance(layer, _Foldable) and isinstance(norm, _Norm)


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every batch norm into the conv/linear layer before it, in place; returns ``module``.

    Pairs are found inside ``nn.Sequential`` containers (consecutive children) and in modules
    with ``linear`` and ``norm`` attributes; each folded norm is replaced by ``nn.Identity``, so
    module names and the forward code stay as they were. Call it on a model in eval mode: the
    running statistics are baked into the weights.

    Args:
        module: the model (or any sub-module).

    Returns:
        ``module``, folded.

    Raises:
        Pc3dError: ``module`` is in training mode.
    """
    if module.training:
        raise Pc3dError("fuse_conv_bn: call model.eval() first; a folded model cannot train")
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for first, second in zip(names, names[1:], strict=False):
                layer, norm = parent._modules[first], parent._modules[second]
                if layer is not None and norm is not None and _foldable_pair(layer, norm):
                    parent._modules[first] = fold_batch_norm(layer, norm)  # type: ignore[arg-type]
                    parent._modules[second] = nn.Identity()
        linear, batch_norm = getattr(parent, "linear", None), getattr(parent, "norm", None)
        if (
            isinstance(linear, nn.Module)
            and isinstance(batch_norm, nn.Module)
            and _foldable_pair(linear, batch_norm)
        ):
            parent.linear = fold_batch_norm(linear, batch_norm)  # type: ignore[arg-type]
            parent.norm = nn.Identity()
    return module


#: Boolean module attributes the inference copy switches on: shortcuts that hold only without
#: autograd (:class:`pc3d.nn.SECONDBackbone`'s empty BEV tiles; an anchor head's box channels
#: computed only at its candidate anchors, a centre head's regression only at its heatmap peaks).
INFERENCE_FLAGS = ("skip_empty", "regress_candidates_only")


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An inference copy of ``model``: eval mode, batch norms folded, 2D maps channels-last.

    The copy computes the same outputs as ``model.eval()`` (to float rounding) and shares no
    tensors with it. Channels-last: every 4D conv weight is stored NHWC, so the convs (and the
    maps they produce, down to the head's outputs) run in that layout, which oneDNN and cuDNN
    compute several times faster than NCHW for these shapes; modules with a ``channels_last``
    attribute (:class:`pc3d.nn.PointPillarsScatter`) are told to produce that layout directly.
    On the CPU, 3x3 convs of 128 channels or more compute by Winograd's F(4x4, 3x3)
    (:mod:`pc3d.nn.winograd`), and modules with a ``skip_empty`` attribute
    (:class:`pc3d.nn.SECONDBackbone`) skip the empty tiles of a sparse BEV map
    (:mod:`pc3d.nn.empty_skip`); modules with a ``regress_candidates_only`` attribute (the det3d
    anchor and centre heads) compute their box channels only where their class scores pick candidates.

    Args:
        model: any module (a detector, a backbone).
        channels_last: also switch the 2D maps to channels-last.

    Returns:
        The optimised copy, in eval mode, without gradients.
    """
    fast = copy.deepcopy(model).eval()
    fuse_conv_bn(fast)
    if channels_last:
        to_channels_last(fast)
    use_winograd(fast)
    for module in fast.modules():
        for flag in INFERENCE_FLAGS:
            if isinstance(getattr(module, flag, None), bool):
                setattr(module, flag, True)
    fast.eval()  # the folded layers are new modules, built in training mode
    fast.requires_grad_(False)
    return fast


def has_inference_copy(model: nn.Module) -> bool:
    """Whether ``model`` makes its own inference copy (an ``optimize_for_inference()`` method)."""
    return callable(getattr(model, "optimize_for_inference", None))


def inference_copy(model: nn.Module) -> nn.Module | None:
    """``model.optimize_for_inference()`` where the model has it (the 3D detectors), else None.

    Models are not given the generic :func:`optimize_for_inference` pass unasked: a plugin's model
    may read its maps in a layout that channels-last would break.
    """
    return model.optimize_for_inference() if has_inference_copy(model) else None  # type: ignore[operator]


def to_channels_last(model: nn.Module) -> nn.Module:
    """Switch ``model``'s 2D maps to channels-last memory, in place, for training or inference.

    Every ``Conv2d``/``ConvTranspose2d`` weight is stored NHWC (a conv whose weight is
    channels-last produces channels-last maps, which the next conv then reads without a layout
    change) and every module with a boolean ``channels_last`` attribute
    (:class:`pc3d.nn.PointPillarsScatter`) is told to produce that layout. Values, shapes,
    parameter names and state dicts are unchanged; only strides differ. On a 2-core CPU a step of
    the small synthetic-data PointPillars takes about a tenth less time (``tools/bench.py models``
    has the training row of the KITTI models).

    Args:
        model: any module.

    Returns:
        ``model``.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if isinstance(getattr(module, "channels_last", None), bool):
            module.channels_last = True  # type: ignore[assignment]
    return model
