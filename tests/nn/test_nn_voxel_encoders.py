"""Voxel encoders and the pillar scatter: hand-computed decorations, pooling, placement, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.voxel import (  # as users import them (pc3d.nn re-exports the same list)
    BN_EPS,
    DynamicPillarFeatureNet,
    DynamicSimpleVFE,
    HardSimpleVFE,
    PFNLayer,
    PillarFeatureNet,
    PointPillarsScatter,
)
from pc3d.ops import dynamic_voxelize, hard_voxelize

VOXEL = (0.2, 0.2, 4.0)
RANGE = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)

# One pillar at (batch 0, z 0, y 200, x 5): centre (5 * 0.2 + 0.1, 200 * 0.2 + 0.1 - 40, 0 * 4 + 2 - 3)
# = (1.1, 0.1, -1.0); two points and one padding row. Mean of the points: (1.04, 0.16, -0.9).
POINTS = [[1.02, 0.18, -0.5, 0.3], [1.06, 0.14, -1.3, 0.7]]
CENTRE_OFFSETS = [[-0.08, 0.08, 0.5], [-0.04, 0.04, -0.3]]
CLUSTER_OFFSETS = [[-0.02, 0.02, 0.4], [0.02, -0.02, -0.4]]


def one_pillar() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    voxels = torch.zeros(1, 3, 4)
    voxels[0, :2] = torch.tensor(POINTS)
    return voxels, torch.tensor([2], dtype=torch.int32), torch.tensor([[0, 0, 200, 5]], dtype=torch.int32)


def test_legacy_decoration_replaces_xyz_by_pillar_centre_offsets() -> None:
    net = PillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE)
    decorated = net.decorate(*one_pillar())
    expected = torch.zeros(1, 3, 10)
    for i in range(2):
        expected[0, i] = torch.tensor(
            [*CENTRE_OFFSETS[i], POINTS[i][3], *CLUSTER_OFFSETS[i], *CENTRE_OFFSETS[i]]
        )
    torch.testing.assert_close(decorated, expected, atol=1e-5, rtol=0)  # float32 centre near y = 40
    assert net.decorated_channels == 10 and net.pfn_layers[0].linear.in_features == 10


def test_non_legacy_decoration_keeps_raw_points_and_distance() -> None:
    net = PillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE, legacy=False, with_distance=True)
    decorated = net.decorate(*one_pillar())
    for i in range(2):
        norm = math.sqrt(sum(v * v for v in POINTS[i][:3]))
        row = torch.tensor([*POINTS[i], *CLUSTER_OFFSETS[i], *CENTRE_OFFSETS[i], norm])
        torch.testing.assert_close(decorated[0, i], row, atol=1e-5, rtol=0)
    assert torch.equal(decorated[0, 2], torch.zeros(11))  # padding row zeroed


def test_legacy_distance_is_to_the_pillar_centre() -> None:
    net = PillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE, with_distance=True)
    decorated = net.decorate(*one_pillar())
    assert decorated[0, 0, -1].item() == pytest.approx(
        math.sqrt(sum(v * v for v in CENTRE_OFFSETS[0])), abs=1e-6
    )


def test_max_pooling_counts_the_padding_row_like_mmdetection3d() -> None:
    layer = PFNLayer(3, 3, last_layer=True).eval()
    with torch.no_grad():
        layer.linear.weight.copy_(torch.eye(3))
        layer.norm.bias.fill_(0.5)  # BN(0) = 0.5: the zero padding row pools to 0.5
    inputs = torch.tensor([[[1.0, -2.0, -3.0], [0.0, -1.0, 0.2], [0.0, 0.0, 0.0]]])
    out = layer(inputs, torch.tensor([2]))
    scale = 1 / math.sqrt(1 + BN_EPS)
    expected = torch.tensor([[[1.0 * scale + 0.5, 0.5, 0.2 * scale + 0.5]]])
    torch.testing.assert_close(out, expected)


def test_average_pooling_and_two_layers() -> None:
    layer = PFNLayer(2, 4, last_layer=False, mode="avg").eval()
    out = layer(torch.randn(5, 6, 2), torch.full((5,), 6))
    assert out.shape == (5, 6, 4)
    torch.testing.assert_close(out[:, :, 2:], out[:, :, :2].mean(dim=1, keepdim=True).expand(-1, 6, -1))
    net = PillarFeatureNet(feat_channels=(32, 64), voxel_size=VOXEL, point_cloud_range=RANGE).eval()
    voxels, num_points, coords = one_pillar()
    assert net(voxels, num_points, coords).shape == (1, 64) and net.out_channels == 64


def test_pillar_net_matches_mmdetection3d_layout_and_bn_settings() -> None:
    net = PillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["pfn_layers.0.linear.weight"] == (64, 10)
    assert "pfn_layers.0.linear.bias" not in shapes and "pfn_layers.0.norm.running_var" in shapes
    assert net.pfn_layers[0].norm.eps == 1e-3 and net.pfn_layers[0].norm.momentum == 0.01


def kitti_points() -> torch.Tensor:
    torch.manual_seed(0)
    xyz = torch.rand(3000, 3) * torch.tensor([8.0, 8.0, 3.0]) + torch.tensor([10.0, -4.0, -2.5])
    return torch.cat([xyz, torch.rand(3000, 1)], dim=1)


def test_dynamic_pillar_net_equals_hard_one_when_every_point_fits() -> None:
    points = kitti_points()
    voxels, coords, num_points = hard_voxelize(
        points, VOXEL, RANGE, max_points=64, max_voxels=100000, backend="torch"
    )
    assert int(num_points.max()) < 64  # every point kept
    coords = nn.functional.pad(coords, (1, 0))
    hard = PillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE, legacy=False).eval()
    dynamic = DynamicPillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE).eval()
    with torch.no_grad():
        dynamic.pfn_layers[0][0].weight.copy_(hard.pfn_layers[0].linear.weight)
    # Default BN statistics map the zero padding row to 0, so it never wins the max.
    expected = hard(voxels, num_points, coords)
    point_coords = nn.functional.pad(dynamic_voxelize(points, VOXEL, RANGE), (1, 0))
    features, voxel_coords = dynamic(points, point_coords)
    order = torch.argsort(((coords[:, 1] * 400 + coords[:, 2]) * 352 + coords[:, 3]).long())
    assert torch.equal(voxel_coords, coords[order])
    torch.testing.assert_close(features, expected[order], atol=1e-5, rtol=1e-5)


def test_dynamic_pillar_net_two_layers_and_ignored_points() -> None:
    net = DynamicPillarFeatureNet(
        feat_channels=(16, 32), voxel_size=VOXEL, point_cloud_range=RANGE, mode="avg"
    ).eval()
    points = torch.tensor(
        [[1.0, 0.1, -1.0, 0.5], [1.05, 0.12, -0.9, 0.1], [9.0, 3.0, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0]]
    )
    coords = torch.tensor(
        [[0, 0, 200, 5], [0, 0, 200, 5], [1, 0, 215, 45], [-1, -1, -1, -1]], dtype=torch.int32
    )
    features, voxel_coords = net(points, coords)
    assert features.shape == (2, 32) and voxel_coords.tolist() == [[0, 0, 200, 5], [1, 0, 215, 45]]
    assert net.pfn_layers[1][0].in_features == 32  # point features next to the pooled ones


def test_hard_simple_vfe_mean_of_stored_points() -> None:
    voxels, num_points, coords = one_pillar()
    mean = HardSimpleVFE()(voxels, num_points, coords)
    torch.testing.assert_close(mean, torch.tensor([[1.04, 0.16, -0.9, 0.5]]))
    assert HardSimpleVFE(num_features=3)(voxels, num_points).shape == (1, 3)


def test_dynamic_simple_vfe_mean_per_voxel() -> None:
    points = torch.tensor(
        [[1.0, 2.0, 3.0, 4.0], [3.0, 2.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0], [7.0, 7.0, 7.0, 7.0]]
    )
    coords = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 2], [-1, -1, -1, -1]], dtype=torch.int32)
    features, voxel_coords = DynamicSimpleVFE()(points, coords)
    assert voxel_coords.tolist() == [[0, 0, 0, 2], [0, 0, 1, 1]]
    torch.testing.assert_close(features, torch.tensor([[5.0, 5.0, 5.0, 5.0], [2.0, 2.0, 2.0, 2.0]]))


def test_scatter_places_each_pillar_in_its_cell_and_sample() -> None:
    scatter = PointPillarsScatter(3, (4, 5))
    features = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    coords = torch.tensor([[0, 0, 0, 0], [0, 0, 3, 4], [1, 0, 2, 1]], dtype=torch.int32)
    canvas = scatter(features, coords)
    assert canvas.shape == (2, 3, 4, 5) and canvas.is_contiguous()
    assert canvas[0, :, 0, 0].tolist() == [1, 2, 3] and canvas[0, :, 3, 4].tolist() == [4, 5, 6]
    assert canvas[1, :, 2, 1].tolist() == [7, 8, 9]
    assert canvas.abs().sum().item() == features.sum().item()  # nothing else written
    assert scatter(features, coords, batch_size=3).shape == (3, 3, 4, 5)
    assert scatter(features[:0], coords[:0]).shape == (1, 3, 4, 5)


def test_scatter_rejects_coordinates_outside_the_canvas() -> None:
    scatter = PointPillarsScatter(3, (4, 5))
    with pytest.raises(ShapeError, match=r"row 1 \[0, 0, 2, 5\]"):
        scatter(torch.ones(2, 3), torch.tensor([[0, 0, 0, 0], [0, 0, 2, 5]]))
    with pytest.raises(ShapeError, match="batch size 1"):
        scatter(torch.ones(1, 3), torch.tensor([[1, 0, 0, 0]]), batch_size=1)
    with pytest.raises(ShapeError, match=r"\(V, 3\)"):
        scatter(torch.ones(2, 4), torch.zeros(2, 4, dtype=torch.int32))
    with pytest.raises(FormatError, match="output_shape"):
        PointPillarsScatter(3, (4,))


def test_bad_inputs_name_the_problem() -> None:
    net = PillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE)
    voxels, num_points, coords = one_pillar()
    with pytest.raises(ShapeError, match="coords of shape"):
        net(voxels, num_points, coords[:, 1:])
    with pytest.raises(ShapeError, match="4 features per point"):
        net(voxels[:, :, :3], num_points, coords)
    with pytest.raises(FormatError, match="mode"):
        PillarFeatureNet(mode="sum")
    with pytest.raises(FormatError, match="feat_channels"):
        PillarFeatureNet(feat_channels=())


def test_gradients_flow_through_pillar_net_and_scatter() -> None:
    points = kitti_points()
    voxels, coords, num_points = hard_voxelize(
        points, VOXEL, RANGE, max_points=8, max_voxels=1000, backend="torch"
    )
    coords = nn.functional.pad(coords, (1, 0))
    net = PillarFeatureNet(voxel_size=VOXEL, point_cloud_range=RANGE).train()
    canvas = PointPillarsScatter(64, (400, 352))(net(voxels, num_points, coords), coords)
    canvas.square().mean().backward()
    assert (
        net.pfn_layers[0].linear.weight.grad is not None
        and net.pfn_layers[0].linear.weight.grad.abs().sum() > 0
    )
    dynamic = DynamicPillarFeatureNet(
        feat_channels=(8, 16), voxel_size=VOXEL, point_cloud_range=RANGE
    ).train()
    point_coords = nn.functional.pad(dynamic_voxelize(points, VOXEL, RANGE), (1, 0))
    features, _ = dynamic(points, point_coords)
    features.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dynamic.parameters())
