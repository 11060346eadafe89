"""Batch-norm folding and the inference copy (`pc3d.nn.fuse`): same outputs as the plain modules.

The MMDetection3D reference checkpoint tests (skipped without `../shared/reference/mmdet3d`) run
the optimised PointPillars and SECOND on frame 000008 and compare with the plain pc3d models and with
MMDetection3D's own raw head outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pc3d.errors import Pc3dError
from pc3d.nn import SECONDFPN, PillarFeatureNet, PointPillarsScatter, SECONDBackbone, load_mmdet3d_checkpoint
from pc3d.nn.fuse import fold_batch_norm, fuse_conv_bn, optimize_for_inference
from pc3d.nn.winograd import WinogradConv2d
from pc3d.ops import hard_voxelize


def randomise_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every batch norm."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 2 - 0.5)  # some negative scales
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
    return module


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), (2, 4, 9, 7)),
        (nn.Conv2d(4, 6, 1, bias=True), (2, 4, 5, 5)),
        (nn.ConvTranspose2d(4, 6, 2, stride=2, bias=False), (2, 4, 5, 3)),
        (nn.Linear(10, 6, bias=False), (7, 10)),
    ],
)
def test_fold_batch_norm_matches_layer_then_norm(layer: nn.Module, shape: tuple[int, ...]) -> None:
    norm = randomise_norms(
        nn.BatchNorm2d(6, eps=1e-3) if len(shape) == 4 else nn.BatchNorm1d(6, eps=1e-3)
    ).eval()
    x = torch.randn(*shape)
    fused = fold_batch_norm(layer, norm)  # type: ignore[arg-type]
    assert type(fused) is type(layer) and fused.bias is not None
    torch.testing.assert_close(fused(x), norm(layer(x)), atol=1e-5, rtol=1e-5)


def test_fold_batch_norm_rejects_mismatched_channels_and_training_models() -> None:
    with pytest.raises(Pc3dError, match="5 output channels"):
        fold_batch_norm(nn.Conv2d(3, 5, 1), nn.BatchNorm2d(4))
    with pytest.raises(Pc3dError, match="eval"):
        fuse_conv_bn(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))


def test_bev_backbone_and_neck_optimised_equal_plain_and_run_channels_last() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        SECONDBackbone(8, (8, 16, 32), (1, 2, 2), (2, 2, 2)), SECONDFPN((8, 16, 32), (8, 8, 8), (1, 2, 4))
    )
    model = randomise_norms(model).eval()
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 8, 32, 24)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def pillar_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(3000, 4, generator=gen) * torch.tensor([20.0, 20.0, 4.0, 1.0]) + torch.tensor(
        [0.0, -10.0, -3.0, 0.0]
    )
    voxels, coords, num_points = hard_voxelize(
        points, (0.5, 0.5, 4.0), (0.0, -10.0, -3.0, 20.0, 10.0, 1.0), 4, 10000
    )
    assert int(num_points.min()) < 4 and int(num_points.max()) == 4  # padded and full pillars
    return voxels, num_points, F.pad(coords, (1, 0))


def test_pillar_feature_net_folded_path_equals_plain() -> None:
    torch.manual_seed(0)
    net = randomise_norms(
        PillarFeatureNet(
            4, (16,), voxel_size=(0.5, 0.5, 4.0), point_cloud_range=(0.0, -10.0, -3.0, 20.0, 10.0, 1.0)
        )
    )
    net = net.eval()
    assert not net.folded_path_applies()  # the norm is still there
    fast = optimize_for_inference(net)
    assert isinstance(fast, PillarFeatureNet) and fast.folded_path_applies()
    voxels, num_points, coords = pillar_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            fast(voxels, num_points, coords), net(voxels, num_points, coords), atol=1e-4, rtol=1e-4
        )


@pytest.mark.parametrize(
    "kwargs", [{"legacy": False}, {"with_distance": True}, {"feat_channels": (8, 16)}, {"mode": "avg"}]
)
def test_pillar_feature_net_folded_path_only_where_it_is_exact(kwargs: dict) -> None:
    net = PillarFeatureNet(4, **kwargs).eval()
    fast = optimize_for_inference(net)
    assert isinstance(fast, PillarFeatureNet) and not fast.folded_path_applies()
    voxels, num_points, coords = pillar_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            fast(voxels, num_points, coords), net(voxels, num_points, coords), atol=1e-4, rtol=1e-4
        )


def test_scatter_channels_last_gives_the_same_canvas() -> None:
    features = torch.randn(5, 3)
    coords = torch.tensor([[0, 0, 1, 2], [0, 0, 3, 0], [1, 0, 0, 0], [1, 0, 3, 4], [0, 0, 2, 2]])
    plain = PointPillarsScatter(3, (4, 5))(features, coords, 2)
    fast = PointPillarsScatter(3, (4, 5), channels_last=True)(features, coords, 2)
    assert fast.shape == plain.shape == (2, 3, 4, 5)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fast, plain)
    assert torch.equal(fast[1, :, 3, 4], features[3])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pointpillars_kitti-3class", "second_kitti-3class"])
def test_optimised_mmdet3d_detectors_equal_plain_and_mmdetection3d(name: str) -> None:
    parity = pytest.importorskip(
        "tests.nn.test_mmdet3d_parity", reason="tests/ is not importable as a package"
    )
    if name.startswith("second"):
        pytest.importorskip("spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2")
    if not (parity.REFERENCE.is_dir() and parity.FRAME.is_file()):
        pytest.skip(f"MMDetection3D reference not found ({parity.REFERENCE})")
    config = parity.load_config(name)
    reference = np.load(parity.REFERENCE / f"{name}_seed0_000008.npz")
    model = parity.VoxelNetConvs(config["model"]).eval()
    load_mmdet3d_checkpoint(model, parity.REFERENCE / f"{name}_seed0.pth")
    fast = optimize_for_inference(model)
    _, voxels, coords, num_points = parity.frame_voxels(config)
    with torch.no_grad():
        plain = model(voxels, num_points, coords, batch_size=1)
        got = fast(voxels, num_points, coords, batch_size=1)
    if name.startswith("pointpillars"):
        assert fast.voxel_encoder.folded_path_applies()
    # Winograd convs (128 channels and up) and empty-tile skipping are in use.
    assert any(isinstance(m, WinogradConv2d) for m in fast.modules()) and fast.backbone.skip_empty
    for key, a, b in zip(("cls_score_0", "bbox_pred_0", "dir_cls_pred_0"), plain, got, strict=True):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        assert (b - torch.from_numpy(reference[key])).abs().max().item() < 1e-4, key
