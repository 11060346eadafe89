"""Off-screen Open3D rendering of a real KITTI frame, checked on the pixels.

Where a box should appear is worked out here from the box corners of `pc3d.structures` (not
`pc3d.vis`) and the view's pinhole camera; box colours are chosen so that no point can share them
(see `pc3d.vis.geometry`), so "colour present near the box and absent elsewhere" is exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import pc3d.vis
from pc3d.errors import FormatError, ShapeError
from pc3d.vis import geometry
from pc3d.vis.camera import Camera, Region

from .conftest import Frame

pytestmark = [pytest.mark.display, pytest.mark.usefixtures("renderer")]

SIZE = (640, 360)
# Render time follows the point count (Mesa's software vertex path); tests about geometry rather
# than density use every 4th return of the real scan.
EVERY = 4


def _mask(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.all(img == np.asarray(color, dtype=np.uint8), axis=-1)


def _project_px(cam: Camera, xyz: np.ndarray) -> np.ndarray:
    """Pinhole projection written out here (independent of `Camera.project`): pixels [N, 2]."""
    pc = xyz.reshape(-1, 3) @ cam.extrinsic[:3, :3].T + cam.extrinsic[:3, 3]
    k = cam.intrinsic
    return np.stack(
        [k[0, 0] * pc[:, 0] / pc[:, 2] + k[0, 2], k[1, 1] * pc[:, 1] / pc[:, 2] + k[1, 2]], axis=1
    )


def _bev(frame: Frame, **kwargs: object) -> tuple[np.ndarray, Camera]:
    """Render the frame framing the front half of the whole scan (not just the boxes)."""
    gt = pc3d.vis.BoxSet(frame.camera_boxes, "camera", frame.types)
    kwargs.setdefault("boxes", gt)
    region = pc3d.vis.scene_region(frame.points, frame.lidar_corners, "lidar", forward_only=True)
    kwargs = {
        "view": "bev",
        "size": SIZE,
        "lidar2cam": frame.lidar2cam,
        "legend": False,
        "region": region,
        **kwargs,
    }
    img = pc3d.vis.render(frame.points, **kwargs)
    scene = pc3d.vis.build_scene(frame.points, kwargs["boxes"], kwargs.get("pred"), lidar2cam=frame.lidar2cam)
    cam, _ = pc3d.vis.scene_camera(scene, str(kwargs["view"]), SIZE, region)
    return img, cam


def test_bev_real_frame_boxes_where_projected(frame1: Frame) -> None:
    img, cam = _bev(frame1)
    assert img.shape == (SIZE[1], SIZE[0], 3) and img.dtype == np.uint8
    # Not blank: the background plus a lot of coloured points.
    background = _mask(img, geometry.BACKGROUND)
    assert 0.02 < (~background).mean() < 0.9
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50

    all_near = np.zeros(img.shape[:2], dtype=bool)
    rows, cols = np.indices(img.shape[:2])
    for corners, name in zip(frame1.lidar_corners, frame1.types, strict=True):
        px = _project_px(cam, corners)
        lo, hi = px.min(axis=0) - 3, px.max(axis=0) + 3
        near = (cols >= lo[0]) & (cols <= hi[0]) & (rows >= lo[1]) & (rows <= hi[1])
        all_near |= near
        drawn = _mask(img, geometry.class_color(name, "gt"))
        # The outline is there: at least the box's projected perimeter in pixels ...
        perimeter = 2 * ((hi - lo) - 6).sum()
        assert (drawn & near).sum() >= perimeter, name
    # ... and no box colour appears anywhere else.
    for name in set(frame1.types):
        assert not (_mask(img, geometry.class_color(name, "gt")) & ~all_near).any(), name


def test_gt_and_pred_colours_both_appear(frame1: Frame) -> None:
    shifted = frame1.camera_boxes + np.array([1.5, 0.0, 1.0, 0.0, 0.0, 0.0, 0.3])
    pred = pc3d.vis.BoxSet(shifted, "camera", frame1.types, scores=np.array([0.9, 0.8, 0.2]))
    img, _ = _bev(frame1, pred=pred)
    for name in frame1.types:
        assert _mask(img, geometry.class_color(name, "gt")).sum() > 20, name
        assert _mask(img, geometry.class_color(name, "pred")).sum() > 20, name
    # A score threshold hides the low-scoring cyclist prediction, and only that.
    kept, _ = _bev(frame1, pred=pred, score_thr=0.5)
    assert _mask(kept, geometry.class_color("Cyclist", "pred")).sum() == 0
    assert _mask(kept, geometry.class_color("Car", "pred")).sum() > 20


def _extent(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(mask)
    return int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)


def test_bev_box_turned_90_degrees_swaps_its_extent(frame1: Frame) -> None:
    region = Region(forward=(0.0, 60.0), left=(-17.0, 17.0), up=(-2.0, 2.0))
    color = geometry.class_color("Truck", "gt")
    spans = {}
    for yaw in (0.0, np.pi / 2, np.pi):
        box = pc3d.vis.BoxSet(np.array([[30.0, 0.0, -1.7, 12.0, 3.0, 3.0, yaw]]), "lidar", ["Truck"])
        img = pc3d.vis.render(frame1.points[::EVERY], boxes=box, size=SIZE, legend=False, region=region)
        mask = _mask(img, color)
        spans[yaw] = _extent(mask)
        cam = pc3d.vis.view_camera("bev", region, SIZE)
        centre = _project_px(cam, np.array([30.0, 0.0, -0.2]))[0]
        # Heading mark: a line from the centre to the front face, so the box's inside is drawn
        # only on its front half (right of the centre for yaw 0, left for yaw pi).
        r0, c0 = int(round(centre[1])), int(round(centre[0]))
        inner = mask[r0 - 3 : r0 + 4]
        right = inner[:, c0 + 5 : c0 + 30].sum()
        left = inner[:, c0 - 30 : c0 - 4].sum()
        if yaw == 0.0:
            assert right > 0 and left == 0
        elif yaw == np.pi:
            assert left > 0 and right == 0
    ppm = SIZE[0] / 60.0 / 1.04  # pixels per metre at this region (4% margin), about
    w0, h0 = spans[0.0]
    w90, h90 = spans[np.pi / 2]
    assert w0 > 3 * h0 and h90 > 3 * w90  # long along the image's width, then its height
    assert w0 == pytest.approx(12.0 * ppm, rel=0.1) and h90 == pytest.approx(12.0 * ppm, rel=0.1)
    assert (w0, h0) == pytest.approx((h90, w90), abs=3)


@pytest.mark.parametrize("view", ["front", "orbit"])
def test_perspective_views_draw_boxes_where_projected(frame1: Frame, view: str) -> None:
    img, cam = _bev(frame1, view=view)
    assert (~_mask(img, geometry.BACKGROUND)).mean() > 0.01
    px = _project_px(cam, frame1.lidar_corners[0])  # the truck
    lo, hi = px.min(axis=0) - 3, px.max(axis=0) + 3
    mask = _mask(img, geometry.class_color("Truck", "gt"))
    rows, cols = np.nonzero(mask)
    assert len(rows) > 20
    assert (cols >= lo[0]).all() and (cols <= hi[0]).all() and (rows >= lo[1]).all() and (rows <= hi[1]).all()


def test_render_is_deterministic_and_writes_the_png(frame1: Frame, tmp_path) -> None:
    out = tmp_path / "sub" / "shot.png"
    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    points = frame1.points[::EVERY]
    first = pc3d.vis.render(points, gt, out=out, size=SIZE, lidar2cam=frame1.lidar2cam, labels=True)
    second = pc3d.vis.render(points, gt, size=SIZE, lidar2cam=frame1.lidar2cam, labels=True)
    assert np.array_equal(first, second)
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), first)
    # The legend panel (top left) holds one swatch per class.
    panel = first[: SIZE[1] // 4, : SIZE[0] // 3]
    for name in frame1.types:
        assert _mask(panel, geometry.class_color(name, "gt")).sum() >= 50, name


def test_color_by_label_and_intensity(frame1: Frame) -> None:
    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    common = {"size": SIZE, "lidar2cam": frame1.lidar2cam, "legend": False, "forward_only": True}
    by_height = pc3d.vis.render(frame1.points, gt, **common)
    by_label = pc3d.vis.render(frame1.points, gt, color_by="label", **common)
    truck = geometry.class_color("Truck", "gt")
    # The truck's 71 returns take its colour (in BEV many fall under its outline) ...
    assert _mask(by_label, truck).sum() > _mask(by_height, truck).sum() + 20
    # ... and points outside every box turn grey.
    assert (
        _mask(by_label, geometry.GREY_POINT).sum() > 1000 and _mask(by_height, geometry.GREY_POINT).sum() == 0
    )
    by_intensity = pc3d.vis.render(frame1.points, gt, color_by="intensity", **common)
    assert not np.array_equal(by_intensity, by_height)
    with pytest.raises(ShapeError, match="4th point column"):
        pc3d.vis.render(frame1.points[:, :3], gt, color_by="intensity", **common)


def test_bad_input_is_named(frame1: Frame) -> None:
    with pytest.raises(FormatError, match="unknown view 'top'"):
        pc3d.vis.render(frame1.points, view="top")
    with pytest.raises(ShapeError, match=r"boxes.*\(M, 7\+\)"):
        pc3d.vis.render(frame1.points, boxes=np.zeros((2, 5)))
    with pytest.raises(ShapeError, match=r"points.*\(N, 3\+\)"):
        pc3d.vis.render(np.zeros((10, 2)))
    bad = frame1.points[:100].copy()
    bad[7, 1] = np.nan
    with pytest.raises(FormatError, match="row 7"):
        pc3d.vis.render(bad)
    with pytest.raises(FormatError, match="LiDAR->camera calibration"):
        pc3d.vis.render(frame1.points, boxes=pc3d.vis.BoxSet(frame1.camera_boxes, "camera"))
    with pytest.raises(FormatError, match="WIDTHxHEIGHT"):
        pc3d.vis.render(frame1.points, size="big")
    with pytest.raises(FormatError, match="must be a .png"):
        pc3d.vis.render(frame1.points, out="shot.jpg")
    with pytest.raises(ShapeError, match="3 boxes but 2 labels"):
        pc3d.vis.BoxSet(frame1.camera_boxes, "camera", ["Car", "Van"])
    with pytest.raises(ShapeError, match="nothing to frame"):
        pc3d.vis.render(np.zeros((0, 3)))


def test_show_opens_the_same_scene_in_a_window(frame1: Frame, monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("the interactive window needs a display: run under xvfb-run")
    shots = []

    def grab(vis) -> None:  # instead of blocking in vis.run(): one frame, then return
        vis.poll_events()
        vis.update_renderer()
        shots.append(np.asarray(vis.capture_screen_float_buffer(do_render=True)))

    monkeypatch.setattr(pc3d.vis.backend, "run_window", grab)
    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    pc3d.vis.show(frame1.points[::EVERY], gt, size=SIZE, lidar2cam=frame1.lidar2cam)
    assert len(shots) == 1 and shots[0].shape == (SIZE[1], SIZE[0], 3)
    img = np.rint(shots[0] * 255).astype(np.uint8)
    assert _mask(img, geometry.class_color("Truck", "gt")).sum() > 20


def test_show_image_opens_the_camera_view_in_a_window(frame1: Frame, monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("the interactive window needs a display: run under xvfb-run")
    shots = []

    def grab(vis) -> None:
        vis.poll_events()
        vis.update_renderer()
        shots.append(
            np.rint(np.asarray(vis.capture_screen_float_buffer(do_render=True)) * 255).astype(np.uint8)
        )

    monkeypatch.setattr(pc3d.vis.backend, "run_window", grab)
    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    drawn = pc3d.vis.render_camera_view(frame1.image_path, gt, projection=frame1.P2, legend=False)
    pc3d.vis.show_image(drawn)
    assert len(shots) == 1 and shots[0].shape == drawn.shape
    # The window shows the drawn image (up to resampling by the image shader).
    assert np.abs(shots[0].astype(int) - drawn.astype(int)).mean() < 10


def test_show_without_display_says_what_to_do(frame1: Frame, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(pc3d.vis.DisplayUnavailableError, match="--out shot.png"):
        pc3d.vis.show(frame1.points)


def test_depth_frame_renders_like_the_same_scene_in_lidar(frame1: Frame) -> None:
    # LiDAR -> Depth is a turn about z ((x, y, z) -> (-y, x, z)); forward is +x in one, +y in the
    # other, so the BEV pictures coincide.
    from pc3d.structures import convert_points

    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    lidar_gt = pc3d.vis.convert_box_set(gt, "lidar", frame1.lidar2cam)
    depth_gt = pc3d.vis.convert_box_set(lidar_gt, "depth")
    points = frame1.points[::EVERY]
    depth_pts = convert_points(points, "lidar", "depth")
    common = {"size": SIZE, "legend": False, "forward_only": True}
    lidar_img = pc3d.vis.render(points, lidar_gt, **common)
    depth_img = pc3d.vis.render(depth_pts, depth_gt, mode="depth", **common)
    assert np.mean(np.any(lidar_img != depth_img, axis=-1)) < 0.01
    truck = geometry.class_color("Truck", "gt")
    assert _mask(depth_img, truck).sum() == pytest.approx(_mask(lidar_img, truck).sum(), rel=0.05)


def test_camera_frame_cloud_renders_like_lidar(frame1: Frame) -> None:
    # The same scan and labels in rectified camera coordinates (y down, z forward): the BEV
    # puts each box on the same spot (the calibration only adds a small turn and offset).
    points = frame1.points[::EVERY]
    xyz = points[:, :3] @ frame1.lidar2cam[:3, :3].T + frame1.lidar2cam[:3, 3]
    cam_pts = np.concatenate([xyz, points[:, 3:]], axis=1)
    gt = pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types)
    common = {"size": SIZE, "legend": False, "forward_only": True}
    lidar_img = pc3d.vis.render(points, gt, lidar2cam=frame1.lidar2cam, **common)
    camera_img = pc3d.vis.render(cam_pts, gt, mode="camera", **common)
    for name in frame1.types:
        a = np.argwhere(_mask(lidar_img, geometry.class_color(name, "gt")))
        b = np.argwhere(_mask(camera_img, geometry.class_color(name, "gt")))
        assert len(b) == pytest.approx(len(a), rel=0.15), name
        assert np.abs(a.mean(axis=0) - b.mean(axis=0)).max() < 3.0, name


def test_egl_without_display_gives_the_same_picture_as_xvfb(frame1: Frame, tmp_path) -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("compares the X display (Xvfb) with EGL: run under xvfb-run")
    points = frame1.points[::EVERY]
    boxes = {
        "mode": "lidar",
        "boxes": pc3d.vis.convert_box_set(
            pc3d.vis.BoxSet(frame1.camera_boxes, "camera", frame1.types), "lidar", frame1.lidar2cam
        ).boxes.tolist(),
        "labels": frame1.types,
    }
    np.save(tmp_path / "points.npy", points)
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    here = pc3d.vis.render(points, boxes, size=(400, 200), labels=True, forward_only=True)
    code = (
        "import json, sys, numpy as np, pc3d.vis\n"
        "d = sys.argv[1]\n"
        "img = pc3d.vis.render(np.load(d + '/points.npy'), json.load(open(d + '/boxes.json')),\n"
        "                      size=(400, 200), labels=True, forward_only=True)\n"
        "np.save(d + '/egl.npy', img)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "XDG_RUNTIME_DIR" not in run.stderr  # the harmless Wayland probe noise is filtered
    assert np.array_equal(np.load(tmp_path / "egl.npy"), here)
