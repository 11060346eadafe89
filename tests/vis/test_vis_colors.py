"""The colour bar of height/intensity colours and per-point class colours, checked on the pixels."""

from __future__ import annotations

import numpy as np
import pytest

import pc3d.vis
from pc3d.errors import FormatError, ShapeError
from pc3d.vis import geometry, image
from pc3d.vis.coloring import ColorScale
from pc3d.vis.overlays import color_bar_pixels, color_bar_rect, draw_color_bar

SIZE = (480, 270)


def _cloud() -> np.ndarray:
    rng = np.random.default_rng(1)
    pts = rng.uniform([0.0, -10.0, -2.0, 0.0], [30.0, 10.0, 1.0, 1.0], size=(2000, 4))
    return pts


def test_scene_scale_is_the_ramp_of_its_points() -> None:
    pts = _cloud()
    scene = pc3d.vis.build_scene(pts)
    assert scene.color_scale is not None and scene.color_scale.title == "height (m)"
    assert (scene.color_scale.lo, scene.color_scale.hi) == pytest.approx(
        tuple(np.percentile(pts[:, 2], [2, 98]))
    )
    by_intensity = pc3d.vis.build_scene(pts, color_by="intensity").color_scale
    assert by_intensity is not None and by_intensity.title == "intensity"
    assert by_intensity.hi == pytest.approx(np.percentile(pts[:, 3], 98))
    assert pc3d.vis.build_scene(pts, color_by="label").color_scale is None


def test_color_bar_pixels_are_the_ramp_with_its_end_values() -> None:
    scale = ColorScale("height (m)", -2.5, 0.9)
    canvas = np.full((270, 480, 3), geometry.BACKGROUND, dtype=np.uint8)
    out = draw_color_bar(canvas, scale)
    x0, y0, x1, y1 = color_bar_pixels(out.shape, scale)
    assert x1 - x0 > 60 and x1 < 480 and y1 < 270
    ramp = scale.colors(x1 - x0 + 1)
    np.testing.assert_array_equal(
        out[y0 : y1 + 1, x0 : x1 + 1], np.broadcast_to(ramp, (y1 - y0 + 1, *ramp.shape))
    )
    # Its ends are the colours of points at lo and hi.
    np.testing.assert_array_equal(ramp[[0, -1]], geometry.ramp_colors(np.array([-2.5, 0.9]), -2.5, 0.9))
    # Text (title and the two values) is drawn in the panel: above the bar, and below it at both ends.
    px0, py0, px1, py1 = color_bar_rect(out.shape, scale)
    assert px1 <= 480 and py1 <= 270
    bright = np.all(out > 150, axis=-1) & ~np.all(out == ramp[-1], axis=-1)
    below = bright[y1 + 1 : py1]
    assert bright[py0:y0].sum() > 30  # title
    assert below[:, x0 : x0 + 40].sum() > 20 and below[:, x1 - 40 : x1 + 1].sum() > 20  # lo, hi
    # Other values draw other digits.
    other = draw_color_bar(canvas, ColorScale("height (m)", 10.0, 99.0))
    assert not np.array_equal(other[y1 + 1 : py1], out[y1 + 1 : py1])


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_render_draws_the_color_bar_with_the_legend_only() -> None:
    pts = _cloud()
    img = pc3d.vis.render(pts, size=SIZE)
    scale = pc3d.vis.build_scene(pts).color_scale
    assert scale is not None
    x0, y0, x1, y1 = color_bar_pixels(img.shape, scale)
    np.testing.assert_array_equal(img[y0, x0 : x1 + 1], scale.colors(x1 - x0 + 1))
    bare = pc3d.vis.render(pts, size=SIZE, legend=False)
    assert not np.array_equal(bare[y0, x0 : x1 + 1], scale.colors(x1 - x0 + 1))


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_point_labels_colour_points_by_class_with_a_legend() -> None:
    pts = _cloud()
    labels = (pts[:, 0] // 10).astype(np.int64)  # three bands: classes 0, 1, 2
    labels[:50] = -1
    img = pc3d.vis.render(pts, point_labels=labels, class_names=["road", "car", "wall"], size=SIZE)
    legend = img[: SIZE[1] // 2, : SIZE[0] // 2]
    for cls in (0, 1, 2):
        color = tuple(int(c) for c in geometry.point_class_colors(np.array([cls]))[0])
        # Points of the class, and its swatch in the legend.
        assert np.all(img == color, axis=-1).sum() > 200, cls
        assert np.all(legend == color, axis=-1).sum() >= 80, cls
    scene = pc3d.vis.build_scene(pts, point_labels=labels, class_names=["road", "car", "wall"])
    assert [e.text for e in scene.legend] == [
        "ignored (50 pts)",
        f"road ({(labels == 0).sum()} pts)",
        f"car ({(labels == 1).sum()} pts)",
        f"wall ({(labels == 2).sum()} pts)",
    ]
    assert scene.color_scale is None
    # Without names the ids are shown.
    assert pc3d.vis.build_scene(pts, point_labels=labels).legend[1].text.startswith("class 0 ")


def test_point_labels_bad_input() -> None:
    pts = _cloud()
    with pytest.raises(ShapeError, match="one class id per point"):
        pc3d.vis.build_scene(pts, point_labels=np.zeros(3, dtype=np.int64))
    with pytest.raises(FormatError, match="integer class ids"):
        pc3d.vis.build_scene(pts, point_labels=np.zeros(len(pts)))
    with pytest.raises(FormatError, match="color_by 'label'"):
        pc3d.vis.build_scene(pts, color_by="height", point_labels=np.zeros(len(pts), dtype=np.int64))
    assert image.TEXT_COLOR != geometry.GREY_POINT
