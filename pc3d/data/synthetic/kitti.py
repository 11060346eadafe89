"""Synthetic LiDAR data sets written in the KITTI layout, so every pc3d tool reads them.

``write_synthetic_kitti(out, scenes=N, seed=S)`` writes::

    out/training/velodyne/000000.bin ...   float32 x, y, z, intensity per point
    out/training/label_2/000000.txt ...    KITTI labels (camera frame), DontCare for hidden objects
    out/training/calib/000000.txt ...      one fixed KITTI-like calibration
    out/training/semantic/000000.label     (with ``point_labels=True``) uint32 class per point
    out/ImageSets/{train,val,trainval}.txt the split (``val_fraction`` of the frames to val)

Scene ``i`` of seed ``S`` depends on ``(S, i)`` only, so ``--scenes 400`` holds the 200 scenes of
``--scenes 200`` plus 200 more. The labels carry what the KITTI protocol needs: the 2D box (the
3D box projected with ``P2`` and clipped to a 1242 x 375 image), truncation (the share of the
projected box outside the image), occlusion (0/1/2 from the share of the object's rays that reach
it first: >= 0.8, >= 0.4, less) and alpha. An object that no ray reaches is written as DontCare.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pc3d.data.synthetic.scene import SceneLayout, SceneSettings, sample_layout
from pc3d.data.synthetic.sensor import LidarSensor, Sweep, cast_rays
from pc3d.errors import FormatError
from pc3d.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "IMAGE_SIZE",
    "SYNTHETIC_CALIB_TEXT",
    "SyntheticFrame",
    "generate_frame",
    "iter_frames",
    "write_synthetic_kitti",
]

#: (width, height) of the virtual camera image the 2D boxes are clipped to (KITTI's).
IMAGE_SIZE = (1242, 375)

# KITTI's usual left-colour-camera intrinsics and an ideal LiDAR -> camera mounting (camera 0.27 m
# behind and 0.08 m below the LiDAR, axes x right, y down, z forward).
_P2 = "7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03"
_P0 = "7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00"
_TR = "0.0 -1.0 0.0 0.0 0.0 0.0 -1.0 -0.08 1.0 0.0 0.0 -0.27"
SYNTHETIC_CALIB_TEXT = (
    f"P0: {_P0}\nP1: {_P0}\nP2: {_P2}\nP3: {_P2}\n"
    "R0_rect: 1.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 1.0\n"
    f"Tr_velo_to_cam: {_TR}\nTr_imu_to_velo: 1.0 0.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 0.0 1.0 0.0\n"
)


def _matrix(text: str, rows: int) -> np.ndarray:
    values = np.array([float(v) for v in text.split()]).reshape(rows, -1)
    out = np.eye(4)
    out[: values.shape[0], : values.shape[1]] = values
    return out


_LIDAR_TO_CAM = _matrix(_TR, 3)
_CAM_TO_IMG = _matrix(_P2, 3)


@dataclass
class SyntheticFrame:
    """One generated frame.

    Attributes:
        layout: the scene geometry; ``sweep``: the simulated returns.
        label_text: its KITTI ``label_2`` file; ``num_points``: points per labelled object.
    """

    layout: SceneLayout
    sweep: Sweep
    label_text: str
    num_points: np.ndarray


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of seed ``seed`` (independent of the scene count)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _camera_boxes(boxes: np.ndarray) -> np.ndarray:
    """LiDAR boxes ``[N, 7]`` -> KITTI camera boxes ``x, y, z, l, h, w, ry`` with the fixed calib."""
    centre = np.concatenate([boxes[:, :3], np.ones((boxes.shape[0], 1))], axis=1) @ _LIDAR_TO_CAM.T
    # The mounting is a pure axis permutation: yaw about LiDAR z maps to -yaw - pi/2 about camera y.
    ry = -boxes[:, 6] - math.pi / 2
    ry = (ry + math.pi) % (2 * math.pi) - math.pi
    return np.concatenate([centre[:, :3], boxes[:, [3, 5, 4]], ry[:, None]], axis=1)


def _corners_camera(cam: np.ndarray) -> np.ndarray:
    """Corners ``[N, 8, 3]`` of KITTI camera boxes (bottom centre, y down)."""
    length, height, width = cam[:, 3:4], cam[:, 4:5], cam[:, 5:6]
    unit = np.array(
        [
            [0.5, 0, 0.5],
            [0.5, 0, -0.5],
            [-0.5, 0, -0.5],
            [-0.5, 0, 0.5],
            [0.5, -1, 0.5],
            [0.5, -1, -0.5],
            [-0.5, -1, -0.5],
            [-0.5, -1, 0.5],
        ]
    )
    local = unit[None] * np.stack([length, height, width], axis=-1)
    cos_r, sin_r = np.cos(cam[:, 6])[:, None], np.sin(cam[:, 6])[:, None]
    x = local[..., 0] * cos_r + local[..., 2] * sin_r
    z = -local[..., 0] * sin_r + local[..., 2] * cos_r
    return np.stack([x, local[..., 1], z], axis=-1) + cam[:, None, :3]


def _project(cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unclipped and clipped 2D boxes ``[N, 4]`` of camera boxes in front of the camera."""
    corners = _corners_camera(cam)
    homo = corners @ _CAM_TO_IMG[:3, :3].T + _CAM_TO_IMG[:3, 3]
    depth = np.maximum(homo[..., 2], 0.1)
    uv = homo[..., :2] / depth[..., None]
    raw = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
    width, height = IMAGE_SIZE
    clipped = np.clip(raw, 0.0, [width - 1, height - 1, width - 1, height - 1])
    return raw, clipped


def _label_text(layout: SceneLayout, sweep: Sweep, num_points: np.ndarray) -> str:
    if layout.boxes.shape[0] == 0:
        return ""
    cam = _camera_boxes(layout.boxes)
    raw, clipped = _project(cam)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    truncated = np.clip(1.0 - area(clipped) / np.maximum(area(raw), 1e-6), 0.0, 1.0)
    occluded = np.where(sweep.visible_fraction >= 0.8, 0, np.where(sweep.visible_fraction >= 0.4, 1, 2))
    alpha = cam[:, 6] - np.arctan2(cam[:, 0], cam[:, 2])
    alpha = (alpha + math.pi) % (2 * math.pi) - math.pi
    lines = []
    for i in range(cam.shape[0]):  # one line per object: file formatting
        kind = str(layout.types[i]) if num_points[i] > 0 else "DontCare"
        x1, y1, x2, y2 = clipped[i]
        if kind == "DontCare":
            lines.append(
                f"DontCare -1 -1 -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} -1 -1 -1 -1000 -1000 -1000 -10"
            )
            continue
        x, y, z, length, height, width, ry = cam[i]
        lines.append(
            f"{kind} {truncated[i]:.2f} {int(occluded[i])} {alpha[i]:.2f} {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
            f"{height:.2f} {width:.2f} {length:.2f} {x:.2f} {y:.2f} {z:.2f} {ry:.2f}"
        )
    return "".join(line + "\n" for line in lines)


def generate_frame(
    seed: int, index: int, settings: SceneSettings | None = None, sensor: LidarSensor | None = None
) -> SyntheticFrame:
    """Scene ``index`` of seed ``seed``: layout, sweep and KITTI label text."""
    rng = frame_rng(seed, index)
    settings = settings or SceneSettings()
    sensor = sensor or LidarSensor(fov_deg=max(settings.fov_deg + 10.0, 90.0))
    layout = sample_layout(rng, settings)
    sweep = cast_rays(layout, sensor, rng)
    owners = sweep.owner[sweep.owner >= 0]
    num_points = np.bincount(owners, minlength=layout.boxes.shape[0])
    return SyntheticFrame(layout, sweep, _label_text(layout, sweep, num_points), num_points)


def iter_frames(
    seed: int, scenes: int, settings: SceneSettings | None = None
) -> Iterator[tuple[str, SyntheticFrame]]:
    """``(frame_id, frame)`` for scenes ``0 .. scenes - 1`` of ``seed``."""
    for index in range(scenes):
        yield f"{index:06d}", generate_frame(seed, index, settings)


def _frame_pair(job: tuple[int, int, SceneSettings | None]) -> tuple[str, SyntheticFrame]:
    seed, index, settings = job
    return f"{index:06d}", generate_frame(seed, index, settings)


def write_synthetic_kitti(
    out: str | os.PathLike[str],
    scenes: int,
    seed: int = 0,
    val_fraction: float = 0.2,
    point_labels: bool = False,
    settings: SceneSettings | None = None,
    progress: bool = False,
    workers: int = 1,
) -> Path:
    """Write ``scenes`` synthetic frames in the KITTI layout under ``out`` (see the module
    docstring) and return ``out``; ``workers`` processes generate scenes in parallel (the
    output does not depend on their number).

    Raises:
        FormatError: ``scenes`` < 1 or ``val_fraction`` outside [0, 1).
    """
    if int(scenes) < 1:
        raise FormatError(f"--scenes must be at least 1, got {scenes}")
    if not 0.0 <= val_fraction < 1.0:
        raise FormatError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    root = Path(out)
    training = root / "training"
    frames: Iterable[tuple[str, SyntheticFrame]]
    if workers > 1:
        # Scenes are independent (their generator depends on (seed, index) only): the same data
        # whatever the number of processes.
        pool = ProcessPoolExecutor(max_workers=workers)
        frames = pool.map(_frame_pair, [(seed, i, settings) for i in range(int(scenes))], chunksize=4)
    else:
        frames = iter_frames(seed, int(scenes), settings)
    if progress:  # on a terminal only: a log file gets no bar lines
        from pc3d.engine.logging import terminal_progress

        frames = terminal_progress(frames, "pc3d data synth", unit="scene", total=int(scenes))
    ids = []
    for frame_id, frame in frames:
        atomic_write_bytes(training / "velodyne" / f"{frame_id}.bin", frame.sweep.points.tobytes())
        atomic_write_text(training / "label_2" / f"{frame_id}.txt", frame.label_text)
        atomic_write_text(training / "calib" / f"{frame_id}.txt", SYNTHETIC_CALIB_TEXT)
        if point_labels:
            atomic_write_bytes(
                training / "semantic" / f"{frame_id}.label", frame.sweep.semantic.astype("<u4").tobytes()
            )
        ids.append(frame_id)
    num_val = int(round(len(ids) * val_fraction))
    # Every k-th frame goes to val, so both splits cover the same seed's variety.
    val_mask = np.zeros(len(ids), dtype=bool)
    if num_val:
        val_mask[np.linspace(0, len(ids) - 1, num_val).round().astype(int)] = True
    splits = {
        "train": [i for i, v in zip(ids, val_mask) if not v],
        "val": [i for i, v in zip(ids, val_mask) if v],
        "trainval": ids,
    }
    for name, members in splits.items():
        atomic_write_text(root / "ImageSets" / f"{name}.txt", "".join(m + "\n" for m in members))
    return root
