"""Fixtures for the visualisation tests: a real KITTI frame and a check that rendering is possible."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"


@dataclass(frozen=True)
class Frame:
    points: np.ndarray  # float32 [N, 4]
    lidar2cam: np.ndarray  # [4, 4]
    P2: np.ndarray  # [4, 4]
    types: list[str]
    camera_boxes: np.ndarray  # [M, 7] KITTI labels as camera boxes (l, h, w)
    lidar_corners: np.ndarray  # [M, 8, 3] corners from pc3d.structures (not pc3d.vis)
    bbox2d: np.ndarray  # [M, 4] label_2 image boxes
    image_path: Path | None


def load_frame(frame_id: str) -> Frame:
    from pc3d.io import load_kitti_frame

    frame = load_kitti_frame(KITTI, frame_id)
    labels = frame.labels.objects()
    lidar = labels.to_lidar_boxes(frame.calib)
    return Frame(
        points=frame.points.array,
        lidar2cam=frame.calib.lidar_to_cam,
        P2=frame.calib.P2,
        types=[str(t) for t in labels.types],
        camera_boxes=labels.to_camera_boxes().tensor.numpy().astype(np.float64),
        lidar_corners=lidar.corners.numpy().astype(np.float64),
        bbox2d=labels.bbox2d.astype(np.float64),
        image_path=frame.image_path,
    )


@pytest.fixture(scope="session")
def frame1() -> Frame:
    return load_frame("000001")
