"""The frames of a KITTI evaluation as flat arrays, and the part each object plays for one class
and difficulty (counted, ignored or not involved), following the devkit's rules (see
:mod:`pc3d.evaluation.kitti`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation.kitti_labels import KITTI_TYPES, KittiEvalLabels, from_io_labels
from pc3d.evaluation.kitti_protocol import MAX_OCCLUSION, MAX_TRUNCATION, MIN_HEIGHT, NEIGHBOUR_CLASS
from pc3d.io.kitti import KittiLabels

__all__ = ["FlatLabels", "detection_state", "flat_records", "ground_truth_state"]


# Same fields as pc3d.evaluation.kitti_labels.KittiEvalLabels on purpose: the frames' labels concatenated,
# plus the frame index of each object.
@dataclass
class FlatLabels:
    """All objects of all frames concatenated; objects of frame f are ``start[f]:start[f+1]``."""

    name: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray
    start: np.ndarray
    frame: np.ndarray
    type_id: np.ndarray  # int64[N]: index into KITTI_TYPES (integer compares beat string ones)

    @classmethod
    def of(cls, frames: Sequence[KittiEvalLabels]) -> FlatLabels:
        """The objects of `frames` (all ground truth or all detections), concatenated."""
        counts = np.array([len(f) for f in frames], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(counts)])

        def cat(key: str, width: int | None = None) -> np.ndarray:
            """Column `key` of every frame; `[0]` or `[0, width]` when there are no objects."""
            parts = [getattr(f, key) for f in frames]
            parts = [p for p in parts if p is not None and len(p)]
            if not parts:
                return np.zeros((0,) if width is None else (0, width))
            return np.concatenate(parts)

        score = cat("score") if frames and frames[0].is_detection else np.zeros(int(counts.sum()))
        names = [f.name for f in frames if len(f)]
        name = np.concatenate(names) if names else np.zeros(0, dtype=str)
        known, inverse = np.unique(name, return_inverse=True)
        type_id = np.array([KITTI_TYPES.index(str(k)) for k in known], dtype=np.int64)[inverse]
        return cls(
            name=name,
            type_id=type_id.reshape(-1),
            truncated=cat("truncated"),
            occluded=cat("occluded"),
            alpha=cat("alpha"),
            bbox=cat("bbox", 4),
            dimensions=cat("dimensions", 3),
            location=cat("location", 3),
            rotation_y=cat("rotation_y"),
            score=score,
            start=start,
            frame=np.repeat(np.arange(len(frames)), counts),
        )

    def __len__(self) -> int:
        return len(self.name)


def flat_records(
    gt: Sequence[KittiEvalLabels | KittiLabels], det: Sequence[KittiEvalLabels | KittiLabels]
) -> tuple[FlatLabels, FlatLabels]:
    """Check the records of both sides and concatenate each side's frames.

    Args:
        gt: one ground-truth record per frame (without scores).
        det: the detections of the same frames, in the same order (with scores).

    Returns:
        The ground-truth objects and the detections, each side's frames concatenated.

    Raises:
        ShapeError: the two sequences differ in length.
        FormatError: a ground-truth record has scores, or a detection record has none.
    """
    if len(gt) != len(det):
        raise ShapeError(f"{len(gt)} ground-truth frames but {len(det)} detection frames")
    # Records read by pc3d.io.kitti are accepted too.
    gts = [g if isinstance(g, KittiEvalLabels) else from_io_labels(g, detections=False) for g in gt]
    dets = [d if isinstance(d, KittiEvalLabels) else from_io_labels(d, detections=True) for d in det]
    for g in gts:
        if g.is_detection:
            raise FormatError(f"{g.source}: ground truth must not carry scores")
    for d in dets:
        if not d.is_detection:
            raise FormatError(f"{d.source}: detections need a score per object")
    return FlatLabels.of(gts), FlatLabels.of(dets)


def ground_truth_state(gts: FlatLabels, cls: str, difficulty: int) -> np.ndarray:
    """The part each ground-truth box plays for class `cls` at `difficulty` (0 easy .. 2 hard).

    Args:
        gts: the ground-truth objects of all frames.
        cls: the evaluated class.
        difficulty: index into the difficulty limits (0 easy, 1 moderate, 2 hard).

    Returns:
        ``int8[N]``: 0 counts, 1 ignored (matched without reward), -1 not involved.
    """
    same = gts.type_id == KITTI_TYPES.index(cls)
    neighbour = (
        gts.type_id == KITTI_TYPES.index(NEIGHBOUR_CLASS[cls])
        if cls in NEIGHBOUR_CLASS
        else np.zeros(len(gts), dtype=bool)
    )
    height = gts.bbox[:, 3] - gts.bbox[:, 1]
    hard_to_see = (
        (gts.occluded > MAX_OCCLUSION[difficulty])
        | (gts.truncated > MAX_TRUNCATION[difficulty])
        | (height <= MIN_HEIGHT[difficulty])
    )
    state = np.full(len(gts), -1, dtype=np.int8)
    state[neighbour | (same & hard_to_see)] = 1
    state[same & ~hard_to_see] = 0
    return state


def detection_state(dets: FlatLabels, cls: str, difficulty: int) -> np.ndarray:
    """The part each detection plays for class `cls` at `difficulty`.

    Args:
        dets: the detections of all frames.
        cls: the evaluated class.
        difficulty: index into the difficulty limits (0 easy, 1 moderate, 2 hard).

    Returns:
        ``int8[D]``: 0 of the class, 1 ignored (too small, any class), -1 not involved.
    """
    state = np.where(dets.type_id == KITTI_TYPES.index(cls), 0, -1).astype(np.int8)
    state[np.abs(dets.bbox[:, 3] - dets.bbox[:, 1]) < MIN_HEIGHT[difficulty]] = 1
    return state
