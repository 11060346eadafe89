"""Camera view (boxes projected onto the KITTI image with P2) and the numpy line drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import pc3d.vis
from pc3d.errors import FormatError, ShapeError
from pc3d.vis import geometry, image

from .conftest import Frame


def test_draw_segments_exact_pixels() -> None:
    canvas = np.zeros((20, 30, 3), dtype=np.uint8)
    out = image.draw_segments(
        canvas,
        np.array([[[2.0, 5.0], [12.0, 5.0]], [[20.0, 2.0], [20.0, 50.0]]]),
        np.array([[255, 0, 0], [0, 255, 0]]),
        width=1,
    )
    red = np.argwhere(np.all(out == [255, 0, 0], axis=-1))
    assert set(map(tuple, red)) == {(5, c) for c in range(2, 13)}
    green = np.argwhere(np.all(out == [0, 255, 0], axis=-1))
    assert set(map(tuple, green)) == {(r, 20) for r in range(2, 20)}  # clipped at the image border
    assert canvas.sum() == 0  # the input is left alone


def test_clip_segments_drops_outside_and_cuts_crossing() -> None:
    segs = np.array([[[-10.0, 5.0], [10.0, 5.0]], [[-10.0, -10.0], [-5.0, -1.0]], [[1.0, 1.0], [2.0, 2.0]]])
    clipped, keep = image.clip_segments(segs, (0.0, 0.0), (8.0, 8.0))
    assert keep.tolist() == [True, False, True]
    np.testing.assert_allclose(clipped[0], [[0.0, 5.0], [8.0, 5.0]])
    np.testing.assert_allclose(clipped[2], segs[2])


def test_project_segments_cuts_at_the_near_plane() -> None:
    proj = np.array([[100.0, 0.0, 50.0, 0.0], [0.0, 100.0, 50.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    segs = np.array([[[0.0, 0.0, -5.0], [0.0, 0.0, 5.0]], [[1.0, 0.0, -2.0], [1.0, 0.0, -1.0]]])
    pix, visible = image.project_segments(segs, proj)
    assert visible.tolist() == [True, False]
    np.testing.assert_allclose(pix[0, 0], [50.0, 50.0])  # cut at z = NEAR_PLANE on the axis
    np.testing.assert_allclose(pix[0, 1], [50.0, 50.0])
    with pytest.raises(ShapeError, match="3x4 or 4x4"):
        image.check_projection(np.eye(3))


def test_camera_view_draws_each_box_inside_its_label_bbox(frame1: Frame, tmp_path) -> None:
    base = np.asarray(Image.open(frame1.image_path).convert("RGB"))
    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    out = tmp_path / "cam.png"
    drawn = pc3d.vis.render_camera_view(frame1.image_path, gt, projection=frame1.P2, legend=False, out=out)
    assert drawn.shape == base.shape
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), drawn)
    changed = np.any(drawn != base, axis=-1)
    rows, cols = np.nonzero(changed)
    # Every changed pixel belongs to one of the label's 2D boxes (grown by the line width and
    # the usual gap between KITTI's 2D box and the projected 3D box).
    margin = 8
    in_some = np.zeros(len(rows), dtype=bool)
    for (x1, y1, x2, y2), name in zip(frame1.bbox2d, frame1.types, strict=True):
        color = geometry.class_color(name, "gt")
        inside = (cols >= x1 - margin) & (cols <= x2 + margin) & (rows >= y1 - margin) & (rows <= y2 + margin)
        in_some |= inside
        is_color = np.all(drawn[rows, cols] == color, axis=-1)
        # The class colour is drawn inside this box: at least its outline's worth of pixels.
        assert (is_color & inside).sum() >= (x2 - x1 + y2 - y1), name
    assert in_some.all(), "box lines drawn outside every label's 2D box"


def test_camera_view_lidar_boxes_through_calibration(frame1: Frame) -> None:
    # The same boxes given in LiDAR coordinates land on the same pixels once converted back.
    lidar = pc3d.vis.convert_box_set(
        pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types), "lidar", frame1.lidar2cam
    )
    from_cam = pc3d.vis.render_camera_view(
        frame1.image_path, pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types), projection=frame1.P2
    )
    from_lidar = pc3d.vis.render_camera_view(
        frame1.image_path, lidar, projection=frame1.P2, lidar2cam=frame1.lidar2cam
    )
    assert np.mean(np.any(from_cam != from_lidar, axis=-1)) < 1e-3
    with pytest.raises(FormatError, match="LiDAR->camera calibration"):
        pc3d.vis.render_camera_view(frame1.image_path, lidar, projection=frame1.P2)


def test_camera_view_bad_input(frame1: Frame, tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        pc3d.vis.render_camera_view(tmp_path / "missing.png", None, projection=frame1.P2)
    not_png = tmp_path / "x.png"
    not_png.write_text("not an image")
    with pytest.raises(FormatError, match="not a readable image"):
        pc3d.vis.render_camera_view(not_png, None, projection=frame1.P2)
    with pytest.raises(ShapeError, match=r"\(M, 7\+\)"):
        pc3d.vis.render_camera_view(frame1.image_path, np.zeros((2, 6)), projection=frame1.P2)
