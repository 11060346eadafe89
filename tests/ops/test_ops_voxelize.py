"""Voxelization: equal to spconv's PointToVoxel on a real KITTI scan; dynamic voxelize and scatter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import dynamic_voxelize, hard_voxelize, voxel_grid, voxel_scatter

SCAN = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training" / "velodyne" / "000001.bin"
# (voxel_size, point_cloud_range, max_points, max_voxels) of PointPillars and SECOND.
PILLAR = ([0.16, 0.16, 4.0], [0.0, -39.68, -3.0, 69.12, 39.68, 1.0], 32, 40000)
SECOND = ([0.05, 0.05, 0.1], [0.0, -40.0, -3.0, 70.4, 40.0, 1.0], 5, 40000)


@pytest.fixture(scope="module")
def scan() -> torch.Tensor:
    return torch.from_numpy(np.fromfile(SCAN, dtype=np.float32).reshape(-1, 4))


def _spconv(points: torch.Tensor, voxel_size, rng, max_points, max_voxels):
    utils = pytest.importorskip("spconv.pytorch.utils")
    gen = utils.PointToVoxel(voxel_size, rng, points.shape[1], max_voxels, max_points)
    voxels, coords, num, point_voxel = gen.generate_voxel_with_id(points)
    return voxels, coords, num, point_voxel


@pytest.mark.parametrize("setting", [PILLAR, SECOND], ids=["pillar", "second"])
@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_hard_voxelize_equals_spconv_on_a_real_scan(scan: torch.Tensor, setting, backend: str) -> None:
    voxels, coords, num, _ = _spconv(scan, *setting)
    ours = hard_voxelize(scan, *setting, backend=backend)
    # Same voxels in the same order (first appearance), same points in each, same padding.
    assert torch.equal(ours.coords, coords) and ours.coords.dtype == torch.int32
    assert torch.equal(ours.num_points, num) and ours.num_points.dtype == torch.int32
    assert torch.equal(ours.voxels, voxels)
    assert 10000 < len(coords) <= 40000 and int(num.max()) == setting[2]


def test_second_setting_hits_max_voxels_and_stays_equal(scan: torch.Tensor) -> None:
    """With a small cap the later voxels are dropped, their points too; earlier voxels still fill."""
    small = (SECOND[0], SECOND[1], 3, 5000)
    voxels, coords, num, _ = _spconv(scan, *small)
    ours = hard_voxelize(scan, *small, backend="torch")
    assert len(coords) == 5000
    assert (
        torch.equal(ours.coords, coords)
        and torch.equal(ours.num_points, num)
        and torch.equal(ours.voxels, voxels)
    )


def test_reused_spconv_voxelizer_leaves_nothing_behind(scan: torch.Tensor) -> None:
    """The cached spconv generator skips its full buffer clear: a smaller scan after a larger one
    (fewer voxels, fewer points per voxel) must still get zero padding, and outputs must not
    share memory with the generator's buffer."""
    pytest.importorskip("spconv.pytorch.utils")
    first = hard_voxelize(scan, *PILLAR, backend="spconv")
    kept = first.voxels.clone()
    g = torch.Generator().manual_seed(3)
    for size in (60000, 5000, len(scan)):
        part = scan[torch.randperm(len(scan), generator=g)[:size]]
        ours = hard_voxelize(part, *PILLAR, backend="spconv")
        ref = hard_voxelize(part, *PILLAR, backend="torch")
        assert torch.equal(ours.voxels, ref.voxels) and torch.equal(ours.coords, ref.coords)
        assert torch.equal(ours.num_points, ref.num_points)
    assert torch.equal(first.voxels, kept)


def test_shuffled_scan_matches_spconv_too(scan: torch.Tensor) -> None:
    perm = torch.randperm(len(scan), generator=torch.Generator().manual_seed(0))
    shuffled = scan[perm]
    voxels, coords, num, _ = _spconv(shuffled, *PILLAR)
    ours = hard_voxelize(shuffled, *PILLAR, backend="torch")
    assert (
        torch.equal(ours.coords, coords)
        and torch.equal(ours.voxels, voxels)
        and torch.equal(ours.num_points, num)
    )


def test_hand_made_example() -> None:
    # 1 m voxels over [0, 3) x [0, 2) x [0, 1): grid 3 x 2 x 1.
    points = torch.tensor(
        [
            [2.5, 0.5, 0.5, 10.0],  # voxel (x2, y0) appears first
            [0.5, 1.5, 0.5, 11.0],  # voxel (x0, y1)
            [2.2, 0.1, 0.9, 12.0],  # (x2, y0) again
            [9.0, 0.5, 0.5, 13.0],  # outside x
            [2.9, 0.9, 0.1, 14.0],  # (x2, y0): third point, over max_points=2
            [1.5, 0.5, 0.5, 15.0],  # (x1, y0): third voxel, over max_voxels=2
            [0.0, 0.0, 0.0, 16.0],  # range minimum is inside: (x0, y0) -- also over max_voxels
            [3.0, 1.0, 0.5, 17.0],  # range maximum in x is outside
            [0.6, 1.4, 0.2, 18.0],  # (x0, y1) again
        ]
    )
    out = hard_voxelize(points, [1, 1, 1], [0, 0, 0, 3, 2, 1], max_points=2, max_voxels=2, backend="torch")
    assert out.coords.tolist() == [[0, 0, 2], [0, 1, 0]]  # z, y, x
    assert out.num_points.tolist() == [2, 2]
    assert out.voxels[:, :, 3].tolist() == [[10.0, 12.0], [11.0, 18.0]]
    assert out.voxels.shape == (2, 2, 4)
    again = hard_voxelize(points, [1, 1, 1], [0, 0, 0, 3, 2, 1], max_points=2, max_voxels=2)
    assert all(torch.equal(a, b) for a, b in zip(out, again))  # deterministic, backends agree
    padded = hard_voxelize(
        points, [1, 1, 1], [0, 0, 0, 3, 2, 1], max_points=4, max_voxels=10, backend="torch"
    )
    assert padded.num_points.tolist() == [3, 2, 1, 1]
    assert torch.equal(padded.voxels[1, 2:], torch.zeros(2, 4))  # zero padding


@pytest.mark.parametrize("setting", [PILLAR, SECOND], ids=["pillar", "second"])
def test_float64_points_match_spconv_double_arithmetic(scan: torch.Tensor, setting) -> None:
    """float64 points take the torch path (spconv's buffers are float32) with spconv's float64
    arithmetic: the same voxels as spconv fed float64 points."""
    points = scan.double()
    voxels, coords, num, _ = _spconv(points, *setting)
    ours = hard_voxelize(points, *setting)
    assert ours.voxels.dtype == torch.float64
    assert torch.equal(ours.coords, coords) and torch.equal(ours.num_points, num)
    assert torch.equal(ours.voxels.float(), voxels)


def test_dynamic_voxelize_matches_spconv_point_ids(scan: torch.Tensor) -> None:
    coords = dynamic_voxelize(scan, *PILLAR[:2])
    assert coords.shape == (len(scan), 3) and coords.dtype == torch.int32
    outside = (coords == -1).all(dim=1)
    assert torch.equal(outside, (coords < 0).any(dim=1))  # whole rows are -1
    # spconv with no caps reports the voxel of every point; map it to coordinates.
    _, sp_coords, _, point_voxel = _spconv(scan, PILLAR[0], PILLAR[1], 1, 200000)
    assert torch.equal(outside, point_voxel < 0)
    assert torch.equal(coords[~outside], sp_coords[point_voxel[~outside]])


def test_voxel_scatter_mean_and_max_against_numpy(scan: torch.Tensor) -> None:
    coords = dynamic_voxelize(scan, *PILLAR[:2])
    batch = torch.zeros(len(scan), 1, dtype=torch.int32)
    batch[len(scan) // 2 :] = 1  # two "samples" in one batch: (b, z, y, x) coordinates
    coords_b = torch.cat([batch, coords], dim=1)
    coords_b[coords[:, 0] < 0] = -1
    valid = (coords_b >= 0).all(dim=1).numpy()
    keys, inverse = np.unique(coords_b.numpy()[valid], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    feats = scan.numpy()[valid].astype(np.float64)
    sums = np.zeros((len(keys), 4))
    np.add.at(sums, inverse, feats)
    means = sums / np.bincount(inverse)[:, None]
    maxes = np.full((len(keys), 4), -np.inf)
    np.maximum.at(maxes, inverse, feats)
    for reduce, expected in (("mean", means), ("max", maxes)):
        out = voxel_scatter(scan, coords_b, reduce)
        assert np.array_equal(out.voxel_coords.numpy(), keys)  # ascending lexicographic
        assert np.allclose(out.voxel_features.numpy(), expected, atol=1e-5)
        p2v = out.point_to_voxel.numpy()
        assert (p2v[~valid] == -1).all() and np.array_equal(p2v[valid], inverse)


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_infinite_points_are_outside_not_errors(backend: str) -> None:
    points = torch.tensor(
        [[float("inf"), 0.5, 0.5], [-float("inf"), 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, float("inf"), 0.5]]
    )
    out = hard_voxelize(points, [1, 1, 1], [0, 0, 0, 2, 2, 2], 4, 10, backend=backend)
    assert out.coords.tolist() == [[0, 0, 0]] and out.num_points.tolist() == [1]
    assert dynamic_voxelize(points, [1, 1, 1], [0, 0, 0, 2, 2, 2]).tolist() == [
        [-1] * 3,
        [-1] * 3,
        [0, 0, 0],
        [-1] * 3,
    ]


def test_empty_inputs() -> None:
    empty = torch.zeros(0, 4)
    out = hard_voxelize(empty, *PILLAR)
    assert out.voxels.shape == (0, 32, 4) and out.coords.shape == (0, 3) and out.num_points.shape == (0,)
    far = torch.tensor([[500.0, 0.0, 0.0, 1.0]])  # no point in range
    out = hard_voxelize(far, *PILLAR, backend="torch")
    assert out.voxels.shape == (0, 32, 4)
    assert dynamic_voxelize(empty, *PILLAR[:2]).shape == (0, 3)
    scattered = voxel_scatter(torch.zeros(0, 5), torch.zeros(0, 3, dtype=torch.int32))
    assert scattered.voxel_features.shape == (0, 5) and scattered.voxel_coords.shape == (0, 3)
    scattered = voxel_scatter(torch.ones(2, 5), torch.full((2, 3), -1, dtype=torch.int32), "max")
    assert scattered.voxel_features.shape == (0, 5) and scattered.point_to_voxel.tolist() == [-1, -1]


def test_bad_input_names_the_field() -> None:
    points = torch.rand(10, 4)
    with pytest.raises(FormatError, match=r"voxel_size\[1\] \(y\) must be > 0"):
        hard_voxelize(points, [0.1, 0.0, 0.1], PILLAR[1], 5, 100)
    with pytest.raises(FormatError, match=r"voxel_size\[2\]"):
        dynamic_voxelize(points, [0.1, 0.1, -1], PILLAR[1])
    with pytest.raises(FormatError, match=r"point_cloud_range.*z: min 1.0 >= max 1.0"):
        hard_voxelize(points, [0.1, 0.1, 0.1], [0, 0, 1, 1, 1, 1], 5, 100)
    with pytest.raises(FormatError, match="point_cloud_range must have 6 values"):
        voxel_grid([0.1, 0.1, 0.1], [0, 0, 0, 1, 1])
    with pytest.raises(FormatError, match="voxel_size must be finite"):
        voxel_grid([0.1, float("nan"), 0.1], PILLAR[1])
    with pytest.raises(FormatError, match="max_points"):
        hard_voxelize(points, *PILLAR[:2], 0, 100)
    with pytest.raises(FormatError, match="max_voxels"):
        hard_voxelize(points, *PILLAR[:2], 5, 2.5)
    nan = points.clone()
    nan[3, 1] = float("nan")
    with pytest.raises(FormatError, match="row 3"):
        hard_voxelize(nan, *PILLAR)
    with pytest.raises(FormatError, match="NaN"):
        dynamic_voxelize(nan, *PILLAR[:2])
    with pytest.raises(ShapeError, match=r"\(N, 3\+C\)"):
        hard_voxelize(torch.rand(5, 2), *PILLAR)
    with pytest.raises(FormatError, match="reduce"):
        voxel_scatter(points, torch.zeros(10, 3, dtype=torch.int32), "sum")
    with pytest.raises(FormatError, match="backend"):
        hard_voxelize(points, *PILLAR, backend="cuda")


def test_voxel_grid_sizes() -> None:
    assert voxel_grid(*PILLAR[:2]).grid == (432, 496, 1)
    assert voxel_grid(*SECOND[:2]).grid == (1408, 1600, 40)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(scan: torch.Tensor) -> None:
    for setting in (PILLAR, SECOND):
        cpu = hard_voxelize(scan, *setting)
        gpu = hard_voxelize(scan.cuda(), *setting)
        assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, gpu))
        assert torch.equal(
            dynamic_voxelize(scan.cuda(), *setting[:2]).cpu(), dynamic_voxelize(scan, *setting[:2])
        )
    coords = dynamic_voxelize(scan, *PILLAR[:2])
    for reduce in ("mean", "max"):
        a, b = voxel_scatter(scan, coords, reduce), voxel_scatter(scan.cuda(), coords.cuda(), reduce)
        assert torch.equal(a.voxel_coords, b.voxel_coords.cpu()) and torch.equal(
            a.point_to_voxel, b.point_to_voxel.cpu()
        )
        assert torch.allclose(a.voxel_features, b.voxel_features.cpu(), atol=1e-5)
