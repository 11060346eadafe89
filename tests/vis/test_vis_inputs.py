"""What `pc3d.vis` accepts as boxes and points, and how it converts them (no display needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError
from pc3d.io import read_box_file
from pc3d.structures import CameraBoxes3D, CameraPoints, LiDARBoxes3D
from pc3d.vis import BoxSet, as_box_set, build_scene, geometry

from .conftest import Frame

BOX = [[10.0, 2.0, -1.6, 3.9, 1.6, 1.5, 0.3]]


def test_box_inputs_of_every_kind(tmp_path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"mode": "camera", "boxes": BOX, "labels": [0], "scores": [0.5]}))
    from_file = as_box_set(read_box_file(path), class_names=["Car"])
    assert from_file.mode == "camera" and from_file.labels == ["Car"] and from_file.scores.tolist() == [0.5]
    from_mapping = as_box_set({"boxes": BOX, "labels": ["Van"]}, mode="depth")
    assert from_mapping.mode == "depth" and from_mapping.labels == ["Van"]
    from_structure = as_box_set(CameraBoxes3D(BOX), mode="lidar")  # the structure knows better
    assert from_structure.mode == "camera"
    from_tensor = as_box_set(torch.tensor(BOX))
    assert from_tensor.mode == "lidar" and np.allclose(from_tensor.boxes, BOX)
    with pytest.raises(FormatError, match="needs the key 'boxes'"):
        as_box_set({"box": BOX})
    with pytest.raises(FormatError, match="label 3 is outside the 1 class names"):
        as_box_set({"boxes": BOX, "labels": [3]}, class_names=["Car"])
    with pytest.raises(FormatError, match="unknown coordinate system 'world'"):
        as_box_set({"boxes": BOX, "mode": "world"})


def test_camera_boxes_land_where_the_calibration_puts_them(frame1: Frame) -> None:
    # pc3d.vis converts KITTI camera boxes onto the LiDAR cloud: same corners as pc3d.structures.
    scene = build_scene(
        frame1.points, BoxSet(frame1.camera_boxes, "camera", frame1.types), lidar2cam=frame1.lidar2cam
    )
    assert scene.mode == "lidar"
    np.testing.assert_allclose(scene.corners, frame1.lidar_corners, atol=1e-3)
    # The truck holds the most returns: KITTI's boxes sit on the points.
    inside = LiDARBoxes3D(scene.gt.boxes).points_in_boxes(torch.as_tensor(frame1.points[:, :3]))
    counts = np.bincount(inside[inside >= 0].numpy(), minlength=3)
    assert counts.tolist() == [71, 9, 18]


def test_points_structure_sets_the_frame() -> None:
    pts = CameraPoints(np.array([[0.0, 1.0, 10.0], [1.0, 1.5, 12.0]]))
    scene = build_scene(pts, {"boxes": BOX, "mode": "lidar"}, lidar2cam=np.eye(4))
    assert scene.mode == "camera" and scene.gt.mode == "camera"
    with pytest.raises(FormatError, match="camera points but mode='lidar'"):
        build_scene(pts, mode="lidar")


def test_score_threshold_and_legend_counts() -> None:
    pred = BoxSet(np.array(BOX * 3), "lidar", ["Car", "Car", "Pedestrian"], np.array([0.9, 0.2, 0.6]))
    scene = build_scene(np.zeros((1, 3)), {"boxes": BOX * 2, "labels": ["Car", "Car"]}, pred, score_thr=0.5)
    assert len(scene.pred) == 2 and scene.pred.labels == ["Car", "Pedestrian"]
    assert [(e.text, e.color) for e in scene.legend] == [
        ("GT Car (2)", geometry.class_color("Car", "gt")),
        ("Pred Car (1)", geometry.class_color("Car", "pred")),
        ("Pred Pedestrian (1)", geometry.class_color("Pedestrian", "pred")),
    ]
    assert scene.legend_title == "pred score >= 0.5"
    assert scene.box_text == ["Car", "Car", "Car 0.90", "Pedestrian 0.60"]
    assert scene.segments.shape == (4 * geometry.SEGMENTS_PER_BOX, 2, 3)


@pytest.mark.parametrize("mode", ["lidar", "camera", "depth"])
def test_color_by_label_marks_points_inside_boxes(mode: str) -> None:
    # One box 4 x 2 x 1.5 (camera: l, h, w = 4, 1.5, 2) at the origin's bottom; a point at its
    # gravity centre and one 10 m away along the first axis.
    if mode == "camera":
        box, inside, outside = [0.0, 0.0, 0.0, 4.0, 1.5, 2.0, 0.0], [0.0, -0.75, 0.0], [10.0, -0.75, 0.0]
    else:
        box, inside, outside = [0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0], [0.0, 0.0, 0.75], [10.0, 0.0, 0.75]
    scene = build_scene(
        np.array([inside, outside]), {"boxes": [box], "labels": ["Car"]}, mode=mode, color_by="label"
    )
    assert scene.point_colors[0].tolist() == list(geometry.class_color("Car", "gt"))
    assert scene.point_colors[1].tolist() == list(geometry.GREY_POINT)
