"""Inference outputs of point segmentation: labels of one cloud, label files, a coloured render.

``pc3d infer`` on a seg config (a model whose ``task`` is ``"point_segmentation"``) calls
:func:`write_segmentation` with the built model (weights loaded), the cloud and the output path::

    paths = write_segmentation(model, points, "out/000000.label", class_names, png="out/000000.png")

Label files: ``.npy`` (int64 class index per point) or ``.label`` (uint32 per point, the
SemanticKITTI layout: raw ids through ``learning_map_inv`` when the classes are SemanticKITTI's,
else the class index), written and read back by ``pc3d.io.semseg`` (:func:`write_point_labels`,
:func:`read_point_labels`, re-exported here).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.io.semseg import LABEL_SUFFIXES, raw_ids_for, read_point_labels, write_point_labels

__all__ = [
    "LABEL_SUFFIXES",
    "SEG_PALETTE",
    "infer_segmentation",
    "raw_ids_for",
    "read_point_labels",
    "render_segmentation",
    "segmentation_colors",
    "write_point_labels",
    "write_segmentation",
]

#: Class colours by class index (cycled past 20); ignored points (-1) are grey.
SEG_PALETTE = np.array(
    [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
        [227, 119, 194], [188, 189, 34], [23, 190, 207], [174, 199, 232], [255, 187, 120], [152, 223, 138],
        [255, 152, 150], [197, 176, 213], [196, 156, 148], [247, 182, 210], [219, 219, 141], [158, 218, 229],
        [57, 59, 121], [132, 60, 57],
    ],
    dtype=np.uint8,
)  # fmt: skip
_IGNORED = np.array([128, 128, 128], dtype=np.uint8)


def _as_tensor(points: Any) -> Tensor:
    tensor = getattr(points, "tensor", points)  # a pc3d.structures points object holds a tensor
    tensor = torch.as_tensor(np.asarray(tensor) if not isinstance(tensor, Tensor) else tensor)
    if tensor.ndim != 2 or tensor.shape[1] < 3:
        raise ShapeError(f"points: expected [N, 3+C] (x, y, z first), got {tuple(tensor.shape)}")
    return tensor.float()


@torch.no_grad()
def infer_segmentation(model: nn.Module, points: Any) -> np.ndarray:
    """The class of every point of one cloud.

    Args:
        model: a point segmentor (``predict(points=[Tensor[N, C]]) -> [Long[N]]``).
        points: ``[N, C]`` array or tensor, or a ``pc3d.structures`` points object.

    Returns:
        ``int64[N]`` class indices; -1 for a point with a NaN or infinite value, which the model
        does not read (dropped with a ``NonFinitePointsWarning``, as ``pc3d infer`` does).

    Raises:
        FormatError: a model without ``predict``, or one that is not a point segmentor.
        ShapeError: points that are not ``[N, 3+C]``.
    """
    from pc3d.inference import finite_rows

    if getattr(model, "task", None) != "point_segmentation" or not hasattr(model, "predict"):
        raise FormatError(f"{type(model).__name__} is not a point segmentor (task 'point_segmentation')")
    cloud = _as_tensor(points)
    rows = finite_rows(cloud)
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        (labels,) = model.predict(points=[(cloud if rows is None else cloud[rows]).to(device)])  # type: ignore[operator]
    finally:
        model.train(was_training)
    found = labels.cpu().numpy().astype(np.int64)
    if rows is None:
        return found
    every = np.full(cloud.shape[0], -1, dtype=np.int64)
    every[rows.cpu().numpy()] = found
    return every


def segmentation_colors(labels: np.ndarray) -> np.ndarray:
    """``uint8[N, 3]`` colour of each point's class (:data:`SEG_PALETTE`; negative: grey)."""
    labels = np.asarray(labels, dtype=np.int64)
    colors = SEG_PALETTE[np.mod(labels, len(SEG_PALETTE))]
    colors[labels < 0] = _IGNORED
    return colors


def render_segmentation(
    points: Any,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    view: str = "bev",
    size: tuple[int, int] | str = (1280, 720),
    mode: str | None = None,
    legend: bool = True,
) -> np.ndarray:
    """Render a cloud coloured by class, with a legend of the classes present (needs open3d and
    a display or ``xvfb-run``, as ``pc3d.vis.render``).

    Args:
        points: ``[N, 3+C]`` array/tensor or a points object.
        labels: ``int[N]`` class indices (-1: ignored, grey).
        class_names: names for the legend (default: the indices).
        out: also write a PNG there.
        view: ``bev``, ``front`` or ``orbit``.
        size: ``(width, height)`` or ``"WxH"``.
        mode: the cloud's coordinate system (``lidar`` by default; ``depth`` for indoor scenes).
        legend: draw the legend (and a scale bar in ``bev``).

    Returns:
        The image, ``uint8[H, W, 3]``.

    Raises:
        ShapeError: not one label per point.
    """
    from pc3d.vis import backend, image, parse_size, save_png, scene_camera
    from pc3d.vis.overlays import draw_overlays
    from pc3d.vis.scene import build_scene

    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    scene = build_scene(points, mode=mode)
    if len(labels) != len(scene.points):
        raise ShapeError(f"{len(labels)} labels for {len(scene.points)} points")
    ids, counts = np.unique(labels, return_counts=True)
    names = list(class_names) if class_names is not None else []
    entries = [
        image.LegendEntry(
            f"{names[i] if 0 <= i < len(names) else ('ignored' if i < 0 else i)} ({c})",
            tuple(int(v) for v in segmentation_colors(np.array([i]))[0]),  # type: ignore[arg-type]
        )
        for i, c in zip(ids.tolist(), counts.tolist(), strict=True)
    ]
    scene = dataclasses.replace(
        scene, point_colors=segmentation_colors(labels), legend=entries, legend_title="classes"
    )
    cam, region = scene_camera(scene, view, parse_size(size))
    img = draw_overlays(backend.capture_points(scene, cam), scene, cam, region, view, False, legend)
    if out is not None:
        save_png(img, Path(out))
    return img


def write_segmentation(
    model: nn.Module,
    points: Any,
    out: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    png: str | os.PathLike[str] | None = None,
    mode: str | None = None,
) -> dict[str, Path]:
    """Segment one cloud and write its labels (and a PNG): what ``pc3d infer`` runs for a seg config.

    Args:
        model: a point segmentor with its weights.
        points: the cloud, ``[N, 3+C]`` or a points object.
        out: ``.npy`` or ``.label`` output (``.label`` writes SemanticKITTI raw ids when
            ``class_names`` are its classes).
        class_names: the model's classes (legend, raw ids).
        png: also render the cloud coloured by class there (``pc3d.vis``, needs open3d).
        mode: the cloud's coordinate system for the render.

    Returns:
        ``{"labels": path, ["png": path]}``.
    """
    labels = infer_segmentation(model, points)
    raw_ids = raw_ids_for(class_names) if class_names is not None else None
    written = {"labels": write_point_labels(out, labels, raw_ids)}
    if png is not None:
        render_segmentation(points, labels, class_names, out=png, mode=mode)
        written["png"] = Path(png)
    return written
