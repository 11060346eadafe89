"""Fixtures for the visualisation tests: a real KITTI frame and a check that rendering is possible."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def renderer() -> None:
    """Skip (saying why) when no OpenGL context can be had at all; otherwise nothing."""
    import pc3d.vis
    from pc3d.errors import MissingDependencyError

    try:
        pc3d.vis.render(np.zeros((1, 3)), size=(32, 32), legend=False)
    except (pc3d.vis.DisplayUnavailableError, MissingDependencyError) as err:
        # `make test` (and so CI) installs everything rendering needs: there it must not skip.
        if os.environ.get("PC3D_REQUIRE_RENDER") == "1":
            pytest.fail(f"rendering is required (PC3D_REQUIRE_RENDER=1) but failed: {err}")
        pytest.skip(f"cannot render here: {err}")
