"""Structures suite: box corners, LiDAR -> Camera conversion and points-in-boxes.

Sizes: 100k random LiDAR boxes for corners/conversion; a full KITTI frame (velodyne 000001, about
120k points) with 150 boxes (its 3 labelled objects plus 147 random ones spread over the scan) for
points-in-boxes. The peer is a straightforward vectorised numpy implementation of the same
formula, written here and run on the same inputs in the same process; every row checks that both
give the same answer before timing them. On the CPU both run on one thread (numpy's elementwise
kernels are single-threaded), so the ratio compares the code, not the thread count.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import device_sync, median_time, row, torch_suite
from pc3d.io.kitti import read_kitti_calib, read_kitti_labels
from pc3d.structures import LiDARBoxes3D, LiDARPoints, convert_boxes

KITTI = Path(__file__).resolve().parents[2] / "tests" / "data" / "kitti" / "training"
NUM_BOXES = 100_000
NUM_SCENE_BOXES = 150

_UNIT = np.array(
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1], [1, 1, 1], [1, 1, 0]], np.float32
)


# ------------------------------------------------------------------------------ numpy peers
def numpy_corners(boxes: np.ndarray) -> np.ndarray:
    """`[N, 8, 3]` corners of z-up bottom-centre boxes `[N, 7]`."""
    local = boxes[:, None, 3:6] * (_UNIT - np.array([0.5, 0.5, 0.0], np.float32))
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin
    y = local[..., 0] * sin + local[..., 1] * cos
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, :3]


def numpy_lidar_to_camera(boxes: np.ndarray, rt: np.ndarray) -> np.ndarray:
    """LiDAR boxes `[N, 7]` -> camera boxes with a 4x4 `rt`, heading carried as a vector."""
    # Contiguous operands: numpy's matmul takes a path ~100x slower on strided views here.
    rot_t = np.ascontiguousarray(rt[:3, :3].T)
    out = np.empty_like(boxes)
    out[:, :3] = np.ascontiguousarray(boxes[:, :3]) @ rot_t + rt[:3, 3]
    out[:, 3:6] = boxes[:, [3, 5, 4]]
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(len(boxes), boxes.dtype)], axis=1)
    turned = heading @ rot_t
    yaw = np.arctan2(-turned[:, 2], turned[:, 0])
    out[:, 6] = yaw - np.floor(yaw / (2 * np.pi) + 0.5) * 2 * np.pi
    return out


def numpy_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Index of the first z-up box holding each point, -1 for none (broadcast over all pairs)."""
    offset = points[:, None, :3] - boxes[None, :, :3]  # [N, M, 3]
    cos, sin = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    u = offset[..., 0] * cos + offset[..., 1] * sin
    v = -offset[..., 0] * sin + offset[..., 1] * cos
    inside = (np.abs(u) <= boxes[:, 3] / 2) & (np.abs(v) <= boxes[:, 4] / 2)
    inside &= (offset[..., 2] >= 0) & (offset[..., 2] <= boxes[:, 5])
    return np.where(inside.any(axis=1), inside.argmax(axis=1), -1)


# ------------------------------------------------------------------------------ inputs
def random_boxes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    boxes = np.empty((n, 7), np.float32)
    boxes[:, 0] = rng.uniform(0, 70, n)
    boxes[:, 1] = rng.uniform(-40, 40, n)
    boxes[:, 2] = rng.uniform(-2.5, -0.5, n)
    boxes[:, 3:6] = rng.uniform(0.5, 5.0, (n, 3))
    boxes[:, 6] = rng.uniform(-math.pi, math.pi, n)
    return boxes


def kitti_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points `[N, 4]`, LiDAR boxes `[150, 7]` and the frame's LiDAR -> camera matrix."""
    points = np.fromfile(KITTI / "velodyne" / "000001.bin", dtype=np.float32).reshape(-1, 4)
    calib = read_kitti_calib(KITTI / "calib" / "000001.txt")
    lidar = read_kitti_labels(KITTI / "label_2" / "000001.txt").to_lidar_boxes(calib).numpy()
    extra = random_boxes(NUM_SCENE_BOXES - len(lidar), seed=1)
    return points, np.concatenate([lidar, extra]), calib.lidar_to_cam


def _check(name: str, ours: np.ndarray, peer: np.ndarray, atol: float) -> None:
    if ours.shape != peer.shape or not np.allclose(ours, peer, atol=atol):
        worst = np.abs(ours - peer).max() if ours.shape == peer.shape else "shape"
        raise AssertionError(f"{name}: pc3d and the numpy peer disagree ({worst})")


@torch_suite(threads=1)
def run(dev: torch.device) -> list[dict]:
    """Time every op for pc3d and its numpy peer; on the CPU torch gets one thread, like numpy."""
    sync = device_sync(dev)
    rows = []

    boxes_np = random_boxes(NUM_BOXES, seed=0)
    boxes = LiDARBoxes3D(torch.from_numpy(boxes_np).to(dev))
    _check("corners", boxes.corners.cpu().numpy(), numpy_corners(boxes_np), atol=1e-4)
    ours = median_time(lambda: boxes.corners, repeats=9, sync=sync)
    peer = median_time(lambda: numpy_corners(boxes_np), repeats=9)
    rows.append(row("corners (LiDAR)", f"{NUM_BOXES // 1000}k boxes", ours, "numpy broadcast", peer))

    points_np, scene_np, lidar_to_cam = kitti_scene()
    converted = boxes.convert_to("camera", lidar_to_cam)
    expected = numpy_lidar_to_camera(boxes_np, lidar_to_cam.astype(np.float32))
    _check("convert", converted.tensor.cpu().numpy(), expected, atol=1e-3)
    ours = median_time(lambda: boxes.convert_to("camera", lidar_to_cam), repeats=9, sync=sync)
    peer = median_time(lambda: numpy_lidar_to_camera(boxes_np, lidar_to_cam.astype(np.float32)), repeats=9)
    rows.append(row("LiDAR -> Camera, KITTI rt_mat", f"{NUM_BOXES // 1000}k boxes", ours, "numpy", peer))
    tensor = boxes.tensor
    ours = median_time(lambda: convert_boxes(tensor, "lidar", "camera", lidar_to_cam), repeats=9, sync=sync)
    rows.append(row("convert_boxes on a raw tensor", f"{NUM_BOXES // 1000}k boxes", ours, "numpy", peer))

    points = LiDARPoints(torch.from_numpy(points_np).to(dev), attribute_dims={"intensity": 3})
    scene = LiDARBoxes3D(torch.from_numpy(scene_np).to(dev))
    size = f"{len(points_np) // 1000}k pts x {len(scene_np)} boxes"
    _check(
        "points_in_boxes",
        scene.points_in_boxes(points).cpu().numpy(),
        numpy_points_in_boxes(points_np, scene_np),
        0,
    )
    ours = median_time(lambda: scene.points_in_boxes(points), repeats=5, sync=sync)
    peer = median_time(lambda: numpy_points_in_boxes(points_np, scene_np), repeats=5)
    rows.append(row("points_in_boxes (LiDAR)", size, ours, "numpy broadcast", peer))

    # Camera boxes and points go through the z-up view first: the cost of that detour.
    cam_scene = scene.convert_to("camera")
    cam_points = points.convert_to("camera")
    ours = median_time(lambda: cam_scene.points_in_boxes(cam_points), repeats=5, sync=sync)
    rows.append(row("points_in_boxes (Camera)", size, ours, "numpy broadcast (LiDAR)", peer))
    return rows
