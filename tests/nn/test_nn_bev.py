"""SECOND's BEV backbone and FPN neck: shapes, strides, MMDetection3D layout, BN settings, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import SECONDFPN, SECONDBackbone


def pointpillars_backbone() -> SECONDBackbone:
    return SECONDBackbone(
        in_channels=64, out_channels=(64, 128, 256), layer_nums=(3, 5, 5), layer_strides=(2, 2, 2)
    )


def test_pointpillars_backbone_shapes_and_strides() -> None:
    backbone = pointpillars_backbone().eval()
    outs = backbone(torch.randn(2, 64, 64, 48))
    assert [tuple(o.shape) for o in outs] == [(2, 64, 32, 24), (2, 128, 16, 12), (2, 256, 8, 6)]
    assert backbone.out_channels == (64, 128, 256) and backbone.out_strides == (2, 4, 8)


def test_second_backbone_stride_one_stage() -> None:
    backbone = SECONDBackbone(
        in_channels=256, out_channels=(128, 256), layer_nums=(5, 5), layer_strides=(1, 2)
    ).eval()
    outs = backbone(torch.randn(1, 256, 20, 16))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 20, 16), (1, 256, 10, 8)]
    assert backbone.out_strides == (1, 2)


def test_backbone_layout_matches_mmdetection3d() -> None:
    backbone = pointpillars_backbone()
    shapes = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    # Stage 0: (conv, bn, relu) x 4 -> conv at 0, 3, 6, 9, bn at 1, 4, 7, 10; no conv bias.
    assert shapes["blocks.0.0.weight"] == (64, 64, 3, 3) and shapes["blocks.0.10.running_var"] == (64,)
    assert shapes["blocks.1.0.weight"] == (128, 64, 3, 3) and shapes["blocks.2.16.weight"] == (256,)
    assert "blocks.0.0.bias" not in shapes and len(backbone.blocks[2]) == 18
    assert backbone.blocks[0][0].stride == (2, 2) and backbone.blocks[0][3].stride == (1, 1)
    norms = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 16 and all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)


def test_fpn_upsamples_every_level_to_one_stride_and_concatenates() -> None:
    backbone = pointpillars_backbone().eval()
    neck = SECONDFPN(
        in_channels=(64, 128, 256), out_channels=(128, 128, 128), upsample_strides=(1, 2, 4)
    ).eval()
    out = neck(backbone(torch.randn(2, 64, 64, 48)))
    assert out.shape == (2, 384, 32, 24) and neck.out_channels == 384
    shapes = {k: tuple(v.shape) for k, v in neck.state_dict().items()}
    assert shapes["deblocks.0.0.weight"] == (64, 128, 1, 1)  # ConvTranspose2d: (C_in, C_out, k, k)
    assert shapes["deblocks.2.0.weight"] == (256, 128, 4, 4) and "deblocks.2.0.bias" not in shapes
    assert isinstance(neck.deblocks[1][0], nn.ConvTranspose2d) and neck.deblocks[1][1].eps == 1e-3


def test_fpn_concatenation_keeps_level_order() -> None:
    neck = SECONDFPN(in_channels=(2, 2), out_channels=(3, 5), upsample_strides=(1, 2)).eval()
    with torch.no_grad():
        for deblock in neck.deblocks:
            deblock[0].weight.zero_()
            deblock[1].bias.fill_(1.0)
        neck.deblocks[1][1].bias.fill_(2.0)
    out = neck([torch.randn(1, 2, 4, 4), torch.randn(1, 2, 2, 2)])
    assert out.shape == (1, 8, 4, 4)
    assert torch.all(out[:, :3] == 1.0) and torch.all(out[:, 3:] == 2.0)


def test_fpn_fractional_stride_and_conv_for_stride_one() -> None:
    neck = SECONDFPN(
        in_channels=(8, 16), out_channels=(4, 4), upsample_strides=(0.5, 1), use_conv_for_no_stride=True
    ).eval()
    assert isinstance(neck.deblocks[0][0], nn.Conv2d) and neck.deblocks[0][0].stride == (2, 2)
    assert isinstance(neck.deblocks[1][0], nn.Conv2d) and neck.deblocks[1][0].kernel_size == (1, 1)
    assert neck([torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)]).shape == (1, 8, 4, 4)


def test_bad_configurations_and_inputs() -> None:
    with pytest.raises(FormatError, match="same non-zero length"):
        SECONDBackbone(out_channels=(64, 128), layer_nums=(3,), layer_strides=(2, 2))
    with pytest.raises(FormatError, match="same non-zero length"):
        SECONDFPN(in_channels=(64,), out_channels=(128, 128), upsample_strides=(1, 2))
    with pytest.raises(FormatError, match="> 0"):
        SECONDFPN(in_channels=(64,), out_channels=(128,), upsample_strides=(0,))
    with pytest.raises(ShapeError, match=r"\(B, 64, H, W\)"):
        pointpillars_backbone()(torch.randn(1, 32, 8, 8))
    neck = SECONDFPN(in_channels=(4, 4), out_channels=(4, 4), upsample_strides=(1, 2))
    with pytest.raises(ShapeError, match="2 levels"):
        neck([torch.randn(1, 4, 4, 4)])
    with pytest.raises(ShapeError, match="different sizes"):
        neck([torch.randn(1, 4, 5, 5), torch.randn(1, 4, 2, 2)])


def test_gradients_flow_through_backbone_and_neck() -> None:
    backbone = pointpillars_backbone().train()
    backbone.init_weights()
    neck = SECONDFPN(
        in_channels=(64, 128, 256), out_channels=(128, 128, 128), upsample_strides=(1, 2, 4)
    ).train()
    neck.init_weights()
    x = torch.randn(2, 64, 32, 32, requires_grad=True)
    neck(backbone(x)).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in [*backbone.parameters(), *neck.parameters()])
