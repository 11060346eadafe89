"""Real KITTI frames: every labelled Car/Pedestrian/Cyclist box, converted from the rectified
camera frame to LiDAR with the frame's calibration, must hold LiDAR points of that frame, sit
where a labelled object can be, and (for well-sampled cars) point along the car's points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.structures import CameraBoxes3D, LiDARBoxes3D, LiDARPoints

from ._kitti import FRAMES_WITH_SCANS, lidar_to_cam, read_labels, read_scan

CLASSES = ("Car", "Pedestrian", "Cyclist")


def lidar_boxes(frame: str) -> tuple[list[str], LiDARBoxes3D]:
    types, boxes = read_labels(frame)
    keep = [i for i, t in enumerate(types) if t != "DontCare"]
    cam = CameraBoxes3D(boxes[keep])  # rows x, y, z, l, h, w, ry: the camera box layout
    return [types[i] for i in keep], cam.convert_to("lidar", np.linalg.inv(lidar_to_cam(frame)))


def test_every_frame_has_objects_to_check() -> None:
    counted = sum(t in CLASSES for f in FRAMES_WITH_SCANS for t in lidar_boxes(f)[0])
    assert counted >= 6


@pytest.mark.parametrize("frame", FRAMES_WITH_SCANS)
def test_labelled_boxes_hold_lidar_points(frame: str) -> None:
    types, boxes = lidar_boxes(frame)
    scan = LiDARPoints(read_scan(frame), attribute_dims={"reflectance": 3})
    counts = boxes.points_in_boxes_all(scan).sum(dim=0)
    for k, kind in enumerate(types):
        if kind not in CLASSES:
            continue
        x, y, z = boxes.bottom_center[k].tolist()
        # Labelled objects lie ahead of the car, on the road: the LiDAR sits 1.73 m up.
        assert 0 < x < 80 and abs(y) < 40 and -2.5 < z < -0.5, (frame, kind, (x, y, z))
        assert counts[k] >= 5, f"{frame} {kind} #{k} holds {int(counts[k])} points"
    # A box one metre off the label holds clearly fewer points: the check has teeth.
    for k, kind in enumerate(types):
        if kind in CLASSES and counts[k] >= 50:
            shifted = boxes[k]
            shifted.translate([0.0, 1.5, 0.0])
            assert shifted.points_in_boxes_all(scan).sum() < 0.7 * counts[k]


def principal_bev_angle(xy: np.ndarray) -> float:
    centred = xy - xy.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    major = vectors[:, -1]
    return math.atan2(major[1], major[0])


def test_car_headings_follow_their_points() -> None:
    checked = 0
    for frame in FRAMES_WITH_SCANS:
        types, boxes = lidar_boxes(frame)
        scan = torch.from_numpy(read_scan(frame))
        owner = boxes.points_in_boxes(scan)
        for k, kind in enumerate(types):
            inside = scan[owner == k, :2].numpy()
            if kind != "Car" or len(inside) < 50:
                continue
            diff = principal_bev_angle(inside) - boxes.yaw[k].item()
            diff = (diff + math.pi / 2) % math.pi - math.pi / 2  # headings agree mod pi
            assert abs(diff) < math.radians(20), f"{frame} car #{k}: {math.degrees(diff):.1f} degrees off"
            checked += 1
    assert checked >= 2
