"""Box wireframes, colours and the view cameras: plain numpy, no display needed."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.structures import CameraBoxes3D, DepthBoxes3D, LiDARBoxes3D, box_class
from pc3d.vis import BoxSet, build_scene, geometry
from pc3d.vis.camera import Region, scene_region, view_camera


def _corners(boxes: np.ndarray, mode: str = "lidar") -> np.ndarray:
    """Corners from `pc3d.structures` (the only implementation), as float64 `[M, 8, 3]`."""
    return box_class(mode)(boxes).corners.numpy().astype(np.float64)


def _random_boxes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-30, 30, (n, 3))
    size = rng.uniform(0.5, 6.0, (n, 3))
    yaw = rng.uniform(-np.pi, np.pi, (n, 1))
    return np.concatenate([centre, size, yaw], axis=1)


@pytest.mark.parametrize(
    ("mode", "cls"), [("lidar", LiDARBoxes3D), ("camera", CameraBoxes3D), ("depth", DepthBoxes3D)]
)
def test_scene_corners_are_the_structures_corners(mode: str, cls: type) -> None:
    boxes = _random_boxes(20, seed=1)
    scene = build_scene(np.zeros((1, 3)), BoxSet(boxes, mode), mode=mode)
    theirs = cls(torch.as_tensor(boxes, dtype=torch.float64)).corners.numpy()
    np.testing.assert_allclose(scene.corners, theirs, atol=1e-4)  # theirs are float32


@pytest.mark.parametrize("mode", ["lidar", "camera", "depth"])
def test_edge_tables_follow_the_structures_corner_order(mode: str) -> None:
    # A unit box at the origin, yaw 0: each corner sits at its CORNER_BITS minus the box's origin
    # (bottom centre), so the edges, front face and BEV tables index the right corners.
    corners = _corners(np.array([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]]), mode)[0]
    origin = np.array([0.5, 1.0, 0.5]) if mode == "camera" else np.array([0.5, 0.5, 0.0])
    np.testing.assert_allclose(corners, geometry.CORNER_BITS - origin, atol=1e-7)
    # Every edge joins corners one box size apart along exactly one axis.
    edge_vectors = corners[geometry.BOX_EDGES[:, 1]] - corners[geometry.BOX_EDGES[:, 0]]
    assert np.allclose(np.sort(np.abs(edge_vectors), axis=1), [0.0, 0.0, 1.0])


def test_corners_by_hand_and_heading_mark() -> None:
    # A 4 x 2 x 1.5 LiDAR box at (10, 5, -1) turned 90 degrees: its heading is +y.
    box = np.array([[10.0, 5.0, -1.0, 4.0, 2.0, 1.5, np.pi / 2]])
    corners = _corners(box, "lidar")[0]
    np.testing.assert_allclose(corners[4], [11.0, 7.0, -1.0], atol=1e-5)  # front-right bottom
    np.testing.assert_allclose(corners[6], [9.0, 7.0, 0.5], atol=1e-5)  # front-left top
    np.testing.assert_allclose(corners[0], [11.0, 3.0, -1.0], atol=1e-5)  # rear-right bottom
    segs = geometry.wireframe_segments(corners[None])
    assert segs.shape == (1, geometry.SEGMENTS_PER_BOX, 2, 3)
    heading = segs[0, -1]
    np.testing.assert_allclose(heading[0], [10.0, 5.0, -0.25], atol=1e-5)  # gravity centre
    np.testing.assert_allclose(heading[1], [10.0, 7.0, -0.25], atol=1e-5)  # front face centre
    # Each of the 12 edges is one box size long.
    lengths = np.linalg.norm(segs[0, :12, 1] - segs[0, :12, 0], axis=-1)
    assert sorted(np.round(lengths, 5)) == [1.5] * 4 + [2.0] * 4 + [4.0] * 4


def test_bev_outline_is_the_footprint_at_mid_height() -> None:
    box = np.array([[10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.0]])
    segs = geometry.bev_segments(_corners(box))[0]
    assert segs.shape == (geometry.BEV_SEGMENTS_PER_BOX, 2, 3)
    assert np.allclose(segs[:, :, 2], -0.25)  # all at mid-height
    ring = segs[:4, 0, :2]
    assert sorted(map(tuple, np.round(ring, 5))) == [(8.0, 4.0), (8.0, 6.0), (12.0, 4.0), (12.0, 6.0)]
    np.testing.assert_allclose(segs[4], [[10.0, 5.0, -0.25], [12.0, 5.0, -0.25]])  # heading +x
    # Camera boxes: the footprint lies in the x-z plane, halfway up (y = -height / 2).
    cam = geometry.bev_segments(
        _corners(np.array([[1.0, 1.5, 20.0, 4.0, 1.5, 2.0, 0.0]]), "camera"), "camera"
    )[0]
    assert np.allclose(cam[:, :, 1], 0.75)
    assert sorted(map(tuple, np.round(cam[:4, 0][:, [0, 2]], 5))) == [
        (-1.0, 19.0),
        (-1.0, 21.0),
        (3.0, 19.0),
        (3.0, 21.0),
    ]


def test_camera_box_heading_points_along_minus_half_pi() -> None:
    # Camera yaw -pi/2 heads along +z (forward): the front face is the far one.
    corners = _corners(np.array([[0.0, 1.5, 20.0, 4.0, 1.5, 2.0, -np.pi / 2]]), "camera")[0]
    assert np.allclose(corners[geometry.FRONT_FACE, 2], 22.0)
    assert np.allclose(corners[[0, 1, 2, 3], 2], 18.0)
    assert corners[:, 1].min() == pytest.approx(0.0) and corners[:, 1].max() == pytest.approx(1.5)


def test_colours_are_stable_distinct_and_apart_from_points() -> None:
    assert geometry.class_color("Car", "gt") == geometry.class_color("car", "gt")
    assert geometry.class_color("Car", "gt") != geometry.class_color("Car", "pred")
    assert geometry.class_color("Car", "gt") != geometry.class_color("Pedestrian", "gt")
    assert not set(geometry.GT_PALETTE) & set(geometry.PRED_PALETTE)
    # Unknown names land on the palette the same way in every process (str hashes are salted).
    code = "from pc3d.vis.geometry import class_color; print(class_color('barrier', 'pred'))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert runs == {str(geometry.class_color("barrier", "pred"))}
    assert geometry.class_color("barrier", "pred") in geometry.PRED_PALETTE
    for color in geometry.GT_PALETTE + geometry.PRED_PALETTE:
        assert 0 in color or 255 in color
    ramp = geometry.ramp_colors(np.linspace(-5, 5, 1000))
    assert ramp.min() >= geometry.POINT_MIN and ramp.max() <= geometry.POINT_MAX
    assert len(np.unique(ramp, axis=0)) > 100  # a real ramp, not a constant
    box = geometry.box_colors(["Car", "Van", "Car", "zebra"], "gt")
    assert box.shape == (4, 3) and (box[0] == box[2]).all() and (box[0] != box[1]).any()


def test_bad_boxes_name_the_problem() -> None:
    with pytest.raises(ShapeError, match=r"\(M, 7\+\).*\(3, 5\)"):
        geometry.check_boxes(np.zeros((3, 5)), "boxes")
    with pytest.raises(FormatError, match="box 1 holds NaN"):
        geometry.check_boxes(np.array([[0, 0, 0, 1, 1, 1, 0], [0, np.nan, 0, 1, 1, 1, 0]]))
    with pytest.raises(FormatError, match="negative size"):
        geometry.check_boxes(np.array([[0, 0, 0, 1, -1, 1, 0]]))
    with pytest.raises(FormatError, match="unknown coordinate system 'world'"):
        BoxSet(np.zeros((1, 7)), "world")


def test_bev_camera_maps_forward_right_and_left_up() -> None:
    region = Region(forward=(0.0, 80.0), left=(-20.0, 20.0), up=(-2.0, 2.0))
    cam = view_camera("bev", region, (800, 400), "lidar")
    uv, depth = cam.project(np.array([[40.0, 0.0, -2.0], [50.0, 0.0, -2.0], [40.0, 10.0, -2.0]]))
    assert (depth > 0).all()
    centre, ahead, left = uv
    assert centre == pytest.approx([399.5, 199.5])  # the region's middle is the image's middle
    assert ahead[0] - centre[0] == pytest.approx(100.0, rel=1e-6)  # 80 m over 800 px: 10 px/m
    assert ahead[1] == pytest.approx(centre[1])
    assert left[1] - centre[1] == pytest.approx(-100.0, rel=1e-6)  # left is up the image
    # The whole region is in the picture.
    f0, f1 = region.forward
    l0, l1 = region.left
    grid = np.array([[f, side, -2.0] for f in (f0, f1) for side in (l0, l1)])
    px, _ = cam.project(grid)
    assert (px >= -0.5).all() and (px[:, 0] <= 799.5).all() and (px[:, 1] <= 399.5).all()


def test_depth_frame_bev_keeps_forward_to_the_right() -> None:
    region = Region(forward=(0.0, 10.0), left=(-5.0, 5.0), up=(0.0, 2.0))
    cam = view_camera("bev", region, (200, 200), "depth")
    uv, _ = cam.project(np.array([[0.0, 5.0, 0.0], [0.0, 8.0, 0.0]]))  # depth +y is forward
    assert uv[1, 0] > uv[0, 0] and uv[1, 1] == pytest.approx(uv[0, 1])


@pytest.mark.parametrize("view", ["front", "orbit"])
def test_perspective_views_see_the_scene_centre(view: str) -> None:
    region = Region(forward=(0.0, 60.0), left=(-15.0, 15.0), up=(-2.0, 3.0))
    cam = view_camera(view, region, (640, 360), "lidar")
    uv, depth = cam.project(np.array([[30.0, 0.0, -2.0 if view == "front" else 0.5]]))
    assert depth[0] > 0
    assert uv[0] == pytest.approx([319.5, 179.5], abs=1e-6)


def test_scene_region_is_robust_and_holds_boxes() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-10, 10, (10_000, 3))
    pts[0] = [5000.0, 0.0, 0.0]  # one wild return must not stretch the view
    corners = _corners(np.array([[30.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]]))
    region = scene_region(pts, corners, "lidar")
    # Grown to hold the box (front at x = 32) plus a small margin; the wild return is ignored.
    assert 32.0 < region.forward[1] < 34.0
    assert -11.5 < region.forward[0] < -9.0
    assert -11.5 < region.left[0] < -9.0 and 9.0 < region.left[1] < 11.5
    again = scene_region(pts, corners, "lidar")
    assert again == region
    with pytest.raises(ShapeError, match="nothing to frame"):
        scene_region(np.zeros((0, 3)), None)
    with pytest.raises(FormatError, match="unknown view"):
        view_camera("top", region, (100, 100))


def test_ramp_gives_nan_and_inf_the_neutral_colour() -> None:
    values = np.array([0.1, np.nan, 0.5, np.inf, 0.9, -np.inf])
    colors = geometry.ramp_colors(values)
    assert colors.shape == (6, 3) and colors.dtype == np.uint8
    assert (colors[[1, 3, 5]] == geometry.GREY_POINT).all()
    # The finite values still spread over the ramp, scaled by themselves only.
    np.testing.assert_array_equal(colors[[0, 2, 4]], geometry.ramp_colors(np.array([0.1, 0.5, 0.9])))
    assert (geometry.ramp_colors(np.full(3, np.nan)) == geometry.GREY_POINT).all()
    assert geometry.ramp_colors(np.zeros(0)).shape == (0, 3)


def test_intensity_colours_survive_nan_intensities() -> None:
    points = np.array([[1.0, 0.0, 0.0, 0.2], [2.0, 0.0, 0.0, np.nan], [3.0, 0.0, 0.0, 0.8]])
    scene = build_scene(points, color_by="intensity")
    assert scene.point_colors[1].tolist() == list(geometry.GREY_POINT)
    assert scene.point_colors[0].tolist() != scene.point_colors[2].tolist()
