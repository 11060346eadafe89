"""What the default view frames (the boxes), `--range`/`--center`/`--zoom`, and box labels that
never cover each other."""

from __future__ import annotations

import numpy as np
import pytest

import pc3d.vis
from pc3d.errors import FormatError
from pc3d.vis import geometry, layout
from pc3d.vis.camera import Region, boxes_region, reframe
from pc3d.vis.overlays import box_label_rects, overlay_rects

from .conftest import Frame

SIZE = (640, 360)


def _mask(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.all(img == np.asarray(color, dtype=np.uint8), axis=-1)


def _width(mask: np.ndarray) -> int:
    cols = np.nonzero(mask.any(axis=0))[0]
    return int(cols.max() - cols.min() + 1)


def test_boxes_region_holds_the_boxes_plus_a_margin() -> None:
    corners = pc3d.vis.BoxSet(np.array([[50.0, 10.0, -1.0, 4.0, 2.0, 1.5, 0.0]]), "lidar").corners()
    points = np.array([[0.0, 0.0, -2.0], [200.0, 100.0, 3.0]] * 20)
    region = boxes_region(corners, points, "lidar")
    assert region.forward == pytest.approx((48.0 - 3.2, 52.0 + 3.2))
    assert region.left == pytest.approx((9.0 - 3.1, 11.0 + 3.1))
    assert region.up[0] <= -2.0 and region.up[1] >= 3.0  # the camera height follows the cloud


def test_reframe_range_center_and_zoom() -> None:
    base = Region((0.0, 40.0), (-10.0, 10.0), (-2.0, 1.0))
    assert reframe(base, extent=(10, -5, 30, 5)) == Region((10.0, 30.0), (-5.0, 5.0), (-2.0, 1.0))
    assert reframe(base, center=(5.0, 2.0)) == Region((-15.0, 25.0), (-8.0, 12.0), (-2.0, 1.0))
    assert reframe(base, zoom=2.0) == Region((10.0, 30.0), (-5.0, 5.0), (-2.0, 1.0))
    for bad in (
        {"extent": (10, 0, 5, 1)},
        {"zoom": 0.0},
        {"zoom": float("nan")},
        {"center": (1.0, float("inf"))},
    ):
        with pytest.raises(FormatError):
            reframe(base, **bad)  # type: ignore[arg-type]


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_default_view_frames_the_boxes_so_cars_are_larger(frame1: Frame) -> None:
    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    points = frame1.points[::4]
    common = {"size": SIZE, "lidar2cam": frame1.lidar2cam, "legend": False}
    whole = pc3d.vis.scene_region(points, frame1.lidar_corners, "lidar")
    framed = pc3d.vis.render(points, gt, **common)
    cloud = pc3d.vis.render(points, gt, region=whole, **common)
    car = geometry.class_color("Car", "gt")
    assert _width(_mask(framed, car)) > 1.8 * _width(_mask(cloud, car))
    # Every box is still in the picture, whole.
    scene = pc3d.vis.build_scene(points, gt, lidar2cam=frame1.lidar2cam)
    cam, _ = pc3d.vis.scene_camera(scene, "bev", SIZE)
    uv, _ = cam.project(frame1.lidar_corners.reshape(-1, 3))
    assert (uv >= 0).all() and (uv[:, 0] < SIZE[0]).all() and (uv[:, 1] < SIZE[1]).all()
    # Zoom 2 on the car doubles it.
    centre = frame1.lidar_corners[1].mean(axis=0)[:2]
    zoomed = pc3d.vis.render(points, gt, center=centre, zoom=2.0, **common)
    assert _width(_mask(zoomed, car)) == pytest.approx(2 * _width(_mask(framed, car)), rel=0.1)
    # A range puts its centre in the middle of the picture.
    ranged = pc3d.vis.render(
        points, gt, bev_range=(centre[0] - 5, centre[1] - 5, centre[0] + 5, centre[1] + 5), **common
    )
    rows, cols = np.nonzero(_mask(ranged, car))
    assert abs(cols.mean() - SIZE[0] / 2) < 15 and abs(rows.mean() - SIZE[1] / 2) < 15


def test_place_labels_stacks_colliding_labels_and_keeps_out_of_the_legend() -> None:
    anchors = np.array([[100.0, 100.0], [100.0, 100.0], [102.0, 98.0], [5.0, 5.0]])
    sizes = np.array([[40.0, 12.0], [60.0, 12.0], [50.0, 12.0], [30.0, 12.0]])
    legend = np.array([[0.0, 0.0, 50.0, 40.0]])
    rects = layout.place_labels(anchors, sizes, (200, 150), avoid=legend)
    assert np.isfinite(rects).all()
    hits = layout.overlaps(rects, rects)
    assert not (hits & ~np.eye(len(rects), dtype=bool)).any()
    assert not layout.overlaps(rects, legend).any()
    np.testing.assert_allclose(rects[:, 2:] - rects[:, :2], sizes)  # sizes kept
    assert rects[:, [0, 1]].min() >= 0 and rects[:, 2].max() <= 199 and rects[:, 3].max() <= 149
    # The first label sits centred just above its anchor.
    np.testing.assert_allclose(rects[0], [80.0, 86.0, 120.0, 98.0])
    # Anchors off the picture get no label.
    assert np.isnan(layout.place_labels(np.array([[-5.0, 3.0]]), np.array([[10.0, 10.0]]), (50, 50))).all()


def test_gt_and_prediction_labels_of_the_same_box_do_not_intersect() -> None:
    boxes = np.array(
        [
            [20.0, 0.0, -1.0, 4.0, 1.8, 1.5, 0.0],
            [20.5, 0.2, -1.0, 4.0, 1.8, 1.5, 0.1],
            [35.0, -3.0, -1.0, 4.0, 1.8, 1.5, 0.0],
        ]
    )
    gt = pc3d.vis.BoxSet(boxes, "lidar", ["Car", "Car", "Van"])
    pred = pc3d.vis.BoxSet(
        boxes + [0.2, 0.1, 0, 0, 0, 0, 0.05], "lidar", ["Car", "Car", "Van"], np.array([0.9, 0.8, 0.7])
    )
    points = np.random.default_rng(0).uniform([-5.0, -15.0, -2.0], [40.0, 15.0, 0.5], size=(500, 3))
    scene = pc3d.vis.build_scene(points, gt, pred)
    for view in ("bev", "front", "orbit"):
        cam, region = pc3d.vis.scene_camera(scene, view, SIZE)
        avoid = overlay_rects((SIZE[1], SIZE[0], 3), scene, cam, region, view, True, True)
        rects = box_label_rects((SIZE[1], SIZE[0], 3), scene, cam, avoid)
        drawn = rects[np.isfinite(rects).all(axis=1)]
        # The front view looks ahead from inside the scene: the nearest boxes are behind it.
        assert len(drawn) == (2 if view == "front" else 6), view
        hits = layout.overlaps(drawn, drawn)
        assert not (hits & ~np.eye(len(drawn), dtype=bool)).any(), view
        assert not layout.overlaps(drawn, avoid).any(), view


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_both_labels_of_co_located_boxes_are_drawn() -> None:
    box = np.array([[20.0, 0.0, -1.0, 4.0, 1.8, 1.5, 0.0]])
    points = np.random.default_rng(0).uniform([0.0, -15.0, -2.0], [40.0, 15.0, 0.5], size=(300, 3))
    img = pc3d.vis.render(
        points,
        {"boxes": box, "labels": ["Car"]},
        {"boxes": box, "labels": ["Car"], "scores": [0.9]},
        size=SIZE,
        labels=True,
        legend=False,
    )
    only_gt = pc3d.vis.render(points, {"boxes": box, "labels": ["Car"]}, size=SIZE, labels=True, legend=False)

    # Label text is anti-aliased: look for pixels near each colour.
    def near(picture: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
        return np.abs(picture.astype(int) - color).max(axis=-1) < 90

    gt_color, pred_color = geometry.class_color("Car", "gt"), geometry.class_color("Car", "pred")
    # The prediction's outline covers the GT's, so GT green left in the picture is its label text.
    gt_rows = np.nonzero(near(img, gt_color).any(axis=1))[0]
    assert len(gt_rows) > 3
    assert near(img, pred_color).sum() > near(only_gt, pred_color).sum() + 5
    # Stacked: the prediction's label sits above the GT's (placed first, right above the box).
    pred_rows = np.nonzero(near(img, pred_color).any(axis=1))[0]
    assert pred_rows.min() < gt_rows.min() - 5
