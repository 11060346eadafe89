"""pc3d.ops against its peers: spconv's PointToVoxel, shapely 2, a sequential greedy NMS, Open3D.

Every row times pc3d and its peer in the same run on the same input. Inputs are the real KITTI
scan `tests/data/kitti/training/velodyne/000001.bin` (120k points) and seeded synthetic boxes:
a KITTI-like scene (1000 car-sized boxes spread over 70 x 80 m), a dense pile (1000 boxes all
overlapping), and detector-like output (10k boxes jittered around 100 objects).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import device_sync, median_time, row, torch_suite
from pc3d.ops import (
    box_iou_bev,
    dynamic_voxelize,
    hard_voxelize,
    nms_2d,
    nms_bev,
    points_in_boxes_first,
    voxel_scatter,
)

ROOT = Path(__file__).resolve().parents[2]
SCAN = ROOT / "tests" / "data" / "kitti" / "training" / "velodyne" / "000001.bin"
PILLAR = ([0.16, 0.16, 4.0], [0.0, -39.68, -3.0, 69.12, 39.68, 1.0], 32, 40000)
SECOND = ([0.05, 0.05, 0.1], [0.0, -40.0, -3.0, 70.4, 40.0, 1.0], 5, 40000)


def _scene_boxes(n: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * torch.tensor([70.4, 80.0]) - torch.tensor([0.0, 40.0])
    size = torch.tensor([3.9, 1.6]) * (0.8 + 0.4 * torch.rand(n, 2, generator=g))
    z = torch.full((n, 1), -1.7)
    h = 1.5 + 0.2 * torch.rand(n, 1, generator=g)
    yaw = torch.rand(n, 1, generator=g) * 2 * math.pi - math.pi
    return torch.cat([xy, z, size, h, yaw], dim=1)


# Like clustered_boxes of tests/ops/_reference.py, kept apart: a benchmark does not import the test
# suite, and this workload fixes z and the height.
def _clustered(n: int, objects: int, g: torch.Generator, spread: float) -> tuple[torch.Tensor, torch.Tensor]:
    centres = torch.rand(objects, 2, generator=g) * torch.tensor([70.0, 80.0]) - torch.tensor([0.0, 40.0])
    heading = torch.rand(objects, generator=g) * 2 * math.pi - math.pi
    obj = torch.randint(0, objects, (n,), generator=g)
    xy = centres[obj] + torch.randn(n, 2, generator=g) * spread
    size = torch.tensor([3.9, 1.6]) * (0.8 + 0.4 * torch.rand(n, 2, generator=g))
    yaw = heading[obj] + torch.randn(n, generator=g) * 0.2
    boxes = torch.cat([xy, torch.full((n, 1), -1.7), size, torch.full((n, 1), 1.6), yaw[:, None]], dim=1)
    # Detector-like scores: the box nearest its object scores highest, plus noise.
    scores = torch.exp(-(xy - centres[obj]).norm(dim=1)) * 0.8 + 0.2 * torch.rand(n, generator=g)
    return boxes, scores


def _polygons(boxes: torch.Tensor) -> np.ndarray:
    import shapely

    b = boxes[:, [0, 1, 3, 4, 6]].double().cpu().numpy()
    c, s = np.cos(b[:, 4]), np.sin(b[:, 4])
    hx, hy = b[:, 2] / 2, b[:, 3] / 2
    ux, uy = np.stack([hx, -hx, -hx, hx], 1), np.stack([hy, hy, -hy, -hy], 1)
    return shapely.polygons(
        np.stack(
            [b[:, :1] + ux * c[:, None] - uy * s[:, None], b[:, 1:2] + ux * s[:, None] + uy * c[:, None]], -1
        )
    )


def _shapely_iou_all_pairs(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Shapely 2, vectorised over all N x M pairs (no pruning)."""
    import shapely

    i, j = np.meshgrid(np.arange(len(pa)), np.arange(len(pb)), indexing="ij")
    inter = shapely.area(shapely.intersection(pa[i.ravel()], pb[j.ravel()]))
    union = shapely.area(pa)[i.ravel()] + shapely.area(pb)[j.ravel()] - inter
    return (inter / np.maximum(union, 1e-12)).reshape(len(pa), len(pb))


def _shapely_iou_strtree(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Shapely 2 with its STRtree finding the intersecting pairs first, then vectorised areas."""
    import shapely

    tree = shapely.STRtree(pb)
    i, j = tree.query(pa, predicate="intersects")
    out = np.zeros((len(pa), len(pb)))
    inter = shapely.area(shapely.intersection(pa[i], pb[j]))
    out[i, j] = inter / np.maximum(shapely.area(pa[i]) + shapely.area(pb[j]) - inter, 1e-12)
    return out


def _greedy_reference(boxes: torch.Tensor, scores: torch.Tensor, thr: float, iou_row) -> torch.Tensor:
    """The textbook sweep: for each box by score, keep it unless suppressed, then suppress the
    later boxes it overlaps (IoU of the kept box against all later boxes, vectorised)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for k in range(len(order)):
        if suppressed[k]:
            continue
        keep.append(k)
        if k + 1 < len(order):
            suppressed[k + 1 :] |= iou_row(ranked[k : k + 1], ranked[k + 1 :]) > thr
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def _iou_2d_row(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-12)


def _open3d_points_in_boxes(points: np.ndarray, boxes: np.ndarray):
    import open3d as o3d

    cloud = o3d.utility.Vector3dVector(points)

    def run() -> list:
        out = []
        for b in boxes:
            rot = o3d.geometry.get_rotation_matrix_from_xyz([0.0, 0.0, float(b[6])])
            obb = o3d.geometry.OrientedBoundingBox(b[:3] + np.array([0.0, 0.0, b[5] / 2]), rot, b[3:6])
            out.append(obb.get_point_indices_within_bounding_box(cloud))
        return out

    return run


def _alternating_medians(
    fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median wall times of `fn_a` and `fn_b` called alternately, so that both see the same load
    (the machine is shared: a ratio of two back-to-back medians drifts with the load)."""
    fn_a(), fn_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def _voxelize_rows(scan: torch.Tensor, dev: torch.device) -> list[dict]:
    """hard_voxelize on the real scan vs spconv's PointToVoxel, built once as users do."""
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError:
        print("spconv is not installed: voxelization rows skipped")
        return []
    sync = device_sync(dev)
    rows = []
    for name, (size, rng, max_points, max_voxels) in (("pillar", PILLAR), ("SECOND", SECOND)):
        label = f"KITTI 000001 ({len(scan)} pts), {name}"
        generator = PointToVoxel(size, rng, 4, max_voxels, max_points, device=dev)

        peer_call = partial(generator, scan)
        auto_call = partial(hard_voxelize, scan, size, rng, max_points, max_voxels)

        if dev.type == "cpu":
            auto, peer = _alternating_medians(auto_call, peer_call, repeats=100)
        else:
            peer = median_time(peer_call, repeats=20, sync=sync)
            auto = median_time(auto_call, repeats=20, sync=sync)
        rows.append(
            row(
                f"hard_voxelize (auto -> {'spconv' if dev.type == 'cpu' else 'torch'})",
                label,
                auto,
                "spconv PointToVoxel",
                peer,
            )
        )
        if dev.type == "cpu":
            ours = median_time(
                partial(hard_voxelize, scan, size, rng, max_points, max_voxels, backend="torch"), repeats=20
            )
            rows.append(row("hard_voxelize (torch path)", label, ours, "spconv PointToVoxel", peer))
    return rows


def _dynamic_rows(scan: torch.Tensor, scan_cpu: torch.Tensor, sync: Callable[[], None] | None) -> list[dict]:
    """Dynamic voxelization and per-voxel mean, vs numpy doing the same arithmetic."""
    size, rng = PILLAR[0], PILLAR[1]
    pts_np = scan_cpu.numpy()
    size32, lo32 = np.float32(size), np.float32(rng[:3])
    grid = np.array([432, 496, 1])

    def numpy_dynamic() -> np.ndarray:
        idx = np.floor((pts_np[:, :3] - lo32) / size32)
        ok = ((idx >= 0) & (idx < grid)).all(axis=1)
        out = idx[:, ::-1].astype(np.int32)
        out[~ok] = -1
        return out

    rows = []
    ours = median_time(lambda: dynamic_voxelize(scan, size, rng), repeats=20, sync=sync)
    rows.append(
        row(
            "dynamic_voxelize",
            "KITTI 000001, pillar grid",
            ours,
            "numpy, same arithmetic",
            median_time(numpy_dynamic, repeats=20),
        )
    )
    coords = dynamic_voxelize(scan, size, rng)
    coords_np = numpy_dynamic()

    def numpy_scatter_mean() -> np.ndarray:
        valid = coords_np[:, 0] >= 0
        keys, inverse = np.unique(coords_np[valid], axis=0, return_inverse=True)
        sums = np.zeros((len(keys), 4))
        np.add.at(sums, inverse.reshape(-1), pts_np[valid])
        return sums / np.bincount(inverse.reshape(-1))[:, None]

    ours = median_time(lambda: voxel_scatter(scan, coords, "mean"), repeats=20, sync=sync)
    rows.append(
        row(
            "voxel_scatter mean",
            "KITTI 000001, pillar grid",
            ours,
            "numpy unique + add.at",
            median_time(numpy_scatter_mean, repeats=5),
        )
    )
    return rows


def _iou_rows(g: torch.Generator, dev: torch.device, sync: Callable[[], None] | None) -> list[dict]:
    """BEV IoU 1000 x 1000 vs shapely 2."""
    a, b = _scene_boxes(1000, g), _scene_boxes(1000, g)
    pile, _ = _clustered(2000, 1, g, spread=0.5)
    rows = []
    for label, x, y in (
        ("1000x1000, KITTI-like scene", a, b),
        ("1000x1000, all overlapping", pile[:1000], pile[1000:]),
    ):
        pa, pb = _polygons(x), _polygons(y)
        xd, yd = x.to(dev), y.to(dev)
        ours = median_time(partial(box_iou_bev, xd, yd), repeats=5, sync=sync)
        shapely_all = median_time(partial(_shapely_iou_all_pairs, pa, pb), repeats=1, warmup=0)
        rows.append(row("box_iou_bev", label, ours, "shapely 2 vectorised", shapely_all))
        shapely_tree = median_time(partial(_shapely_iou_strtree, pa, pb), repeats=3)
        rows.append(row("box_iou_bev", label, ours, "shapely 2 STRtree + vectorised", shapely_tree))
    return rows


def _nms_rows(g: torch.Generator, dev: torch.device, sync: Callable[[], None] | None) -> list[dict]:
    """Rotated and 2D NMS of 10k detector-like boxes vs the sequential greedy sweep."""
    boxes, scores = _clustered(10000, 100, g, spread=0.8)
    boxes, scores = boxes.to(dev), scores.to(dev)

    def sweep_bev() -> torch.Tensor:
        return _greedy_reference(boxes.double(), scores, 0.1, lambda p, q: box_iou_bev(p, q)[0])

    assert torch.equal(nms_bev(boxes, scores, 0.1), sweep_bev())
    ours = median_time(lambda: nms_bev(boxes, scores, 0.1), repeats=5, sync=sync)
    peer = median_time(sweep_bev, repeats=1, warmup=0, sync=sync)
    rows = [
        row(
            "nms_bev (IoU > 0.1)",
            "10k boxes around 100 objects",
            ours,
            "greedy sweep, pc3d IoU per kept box",
            peer,
        )
    ]
    xyxy = torch.cat([boxes[:, :2] - boxes[:, 3:5] / 2, boxes[:, :2] + boxes[:, 3:5] / 2], dim=1)
    assert torch.equal(nms_2d(xyxy, scores, 0.5), _greedy_reference(xyxy.double(), scores, 0.5, _iou_2d_row))
    ours = median_time(lambda: nms_2d(xyxy, scores, 0.5), repeats=5, sync=sync)
    peer = median_time(
        lambda: _greedy_reference(xyxy.double(), scores, 0.5, _iou_2d_row), repeats=3, sync=sync
    )
    rows.append(
        row(
            "nms_2d (IoU > 0.5)",
            "10k boxes around 100 objects",
            ours,
            "greedy sweep, vectorised IoU per kept box",
            peer,
        )
    )
    return rows


def _points_in_boxes_rows(
    scan: torch.Tensor, scan_cpu: torch.Tensor, g: torch.Generator, sync: Callable[[], None] | None
) -> list[dict]:
    """Points in 40 car-sized boxes on the real scan vs Open3D and the all-pairs test."""
    centre = scan_cpu[torch.randint(0, len(scan_cpu), (40,), generator=g), :3]
    cars = torch.cat(
        [
            centre - torch.tensor([0.0, 0.0, 0.8]),
            torch.tensor([3.9, 1.6, 1.6]).expand(40, 3),
            torch.rand(40, 1, generator=g) * 6.28,
        ],
        1,
    )
    cars_dev = cars.to(scan.device)
    ours = median_time(lambda: points_in_boxes_first(scan, cars_dev), repeats=10, sync=sync)
    rows = []
    try:
        o3d_run = _open3d_points_in_boxes(scan_cpu[:, :3].double().numpy(), cars.double().numpy())
    except ImportError:
        print("open3d is not installed: the Open3D row is skipped")
    else:
        rows.append(
            row(
                "points_in_boxes first",
                "KITTI 000001, 40 boxes",
                ours,
                "Open3D OrientedBoundingBox loop",
                median_time(o3d_run, repeats=10),
            )
        )

    def dense_all_pairs() -> torch.Tensor:
        offset = scan[:, None, :3] - cars_dev[None, :, :3]
        cos, sin = torch.cos(cars_dev[:, 6]), torch.sin(cars_dev[:, 6])
        u = offset[..., 0] * cos + offset[..., 1] * sin
        v = -offset[..., 0] * sin + offset[..., 1] * cos
        inside = (
            (u.abs() <= cars_dev[:, 3] / 2)
            & (v.abs() <= cars_dev[:, 4] / 2)
            & (offset[..., 2] >= 0)
            & (offset[..., 2] <= cars_dev[:, 5])
        )
        return torch.where(inside.any(1), inside.to(torch.uint8).argmax(1), -1)

    rows.append(
        row(
            "points_in_boxes first",
            "KITTI 000001, 40 boxes",
            ours,
            "torch all-pairs test",
            median_time(dense_all_pairs, repeats=3, sync=sync),
        )
    )
    return rows


# One thread: the peers (spconv's CPU voxelizer, shapely, the Python sweeps) use one core,
# and on a busy 2-core machine a second intra-op thread made timings swing by 5x.
@torch_suite(threads=1)
def run(dev: torch.device) -> list[dict]:
    """All rows; on the CPU with one torch thread."""
    sync = device_sync(dev)
    scan_cpu = torch.from_numpy(np.fromfile(SCAN, dtype=np.float32).reshape(-1, 4))
    scan = scan_cpu.to(dev)
    g = torch.Generator().manual_seed(0)
    rows = _voxelize_rows(scan, dev) + _dynamic_rows(scan, scan_cpu, sync)
    rows += _iou_rows(g, dev, sync) + _nms_rows(g, dev, sync)
    return rows + _points_in_boxes_rows(scan, scan_cpu, g, sync)
