"""The constants of the KITTI object-detection protocol (the devkit's, as its Python port
``kitti_object_eval_python`` sets them) and the choice of classes to evaluate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pc3d.errors import FormatError

__all__ = [
    "ALPHA_MISSING",
    "DIFFICULTIES",
    "KITTI_EVAL_CLASSES",
    "MAX_OCCLUSION",
    "MAX_TRUNCATION",
    "METRICS",
    "MIN_HEIGHT",
    "MIN_OVERLAPS",
    "NEIGHBOUR_CLASS",
    "NUM_SAMPLE_POINTS",
    "OVERLAP_SETS",
    "kitti_difficulty",
    "resolve_classes",
]

#: Classes the protocol can evaluate (the port's list), with their neighbouring class.
KITTI_EVAL_CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist", "Van", "Person_sitting", "Truck")
NEIGHBOUR_CLASS: dict[str, str] = {"Car": "Van", "Pedestrian": "Person_sitting"}

METRICS: tuple[str, ...] = ("bbox", "bev", "3d")
DIFFICULTIES: tuple[str, ...] = ("easy", "moderate", "hard")
OVERLAP_SETS: tuple[str, ...] = ("strict", "loose")

MIN_HEIGHT: tuple[float, ...] = (40.0, 25.0, 25.0)
MAX_OCCLUSION: tuple[int, ...] = (0, 1, 2)
MAX_TRUNCATION: tuple[float, ...] = (0.15, 0.3, 0.5)
NUM_SAMPLE_POINTS = 41
#: The devkit's marker of a missing observation angle.
ALPHA_MISSING = -10.0

#: Overlap thresholds (bbox, bev, 3d) per class and overlap set, as in the port.
MIN_OVERLAPS: dict[str, dict[str, tuple[float, float, float]]] = {
    "Car": {"strict": (0.7, 0.7, 0.7), "loose": (0.7, 0.5, 0.5)},
    "Pedestrian": {"strict": (0.5, 0.5, 0.5), "loose": (0.5, 0.25, 0.25)},
    "Cyclist": {"strict": (0.5, 0.5, 0.5), "loose": (0.5, 0.25, 0.25)},
    "Van": {"strict": (0.7, 0.7, 0.7), "loose": (0.7, 0.5, 0.5)},
    "Person_sitting": {"strict": (0.5, 0.5, 0.5), "loose": (0.5, 0.25, 0.25)},
    "Truck": {"strict": (0.7, 0.7, 0.7), "loose": (0.5, 0.5, 0.5)},
}


def resolve_classes(classes: Sequence[str]) -> list[str]:
    """The KITTI spelling of each class to evaluate (case-insensitive; duplicates removed).

    Args:
        classes: class names, e.g. ``["car", "Pedestrian"]``.

    Returns:
        The classes in `KITTI_EVAL_CLASSES` spelling, in the order given.

    Raises:
        FormatError: a class the protocol cannot evaluate, or none at all.
    """
    lookup = {c.lower(): c for c in KITTI_EVAL_CLASSES}
    wanted: list[str] = []
    for cls in classes:
        if cls.lower() not in lookup:
            raise FormatError(f"cannot evaluate class {cls!r}; choose from {', '.join(KITTI_EVAL_CLASSES)}")
        if lookup[cls.lower()] not in wanted:
            wanted.append(lookup[cls.lower()])
    if not wanted:
        raise FormatError("no classes to evaluate")
    return wanted


def kitti_difficulty(bbox_height: np.ndarray, occluded: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """The protocol's difficulty of each labelled object: 0 easy, 1 moderate, 2 hard, -1 none.

    An object is of the easiest level whose limits it meets: 2D box height at least
    :data:`MIN_HEIGHT`, occlusion at most :data:`MAX_OCCLUSION`, truncation at most
    :data:`MAX_TRUNCATION` (easy 40 px / 0 / 0.15, moderate 25 px / 1 / 0.3, hard 25 px / 2 / 0.5).

    Args:
        bbox_height: ``[N]`` 2D box heights in pixels.
        occluded: ``[N]`` occlusion levels (0-3).
        truncated: ``[N]`` truncation (0-1).

    Returns:
        ``int64 [N]``.
    """
    out = np.full(np.shape(bbox_height), -1, dtype=np.int64)
    for level in (2, 1, 0):  # hardest first, so the easiest level met wins
        meets = (
            (np.asarray(bbox_height) >= MIN_HEIGHT[level])
            & (np.asarray(occluded) <= MAX_OCCLUSION[level])
            & (np.asarray(truncated) <= MAX_TRUNCATION[level])
        )
        out[meets] = level
    return out
