"""Overlaps between the ground truth and the detections of a KITTI evaluation: image-plane IoU,
DontCare coverage, and the exact (float64) BEV and 3D IoU of camera boxes, computed only for
pairs of the same frame and in bounded chunks (see :mod:`pc3d.evaluation.kitti`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from pc3d.evaluation.kitti_frames import FlatLabels
from pc3d.evaluation.kitti_labels import KITTI_TYPES
from pc3d.evaluation.kitti_matching import CandidateMatches
from pc3d.ops import box_iou_2d, box_iou_3d, box_iou_bev

__all__ = ["candidate_matches", "dontcare_cover"]


# Ground-truth / detection pairs generated at a time: bounds memory (a few hundred bytes per
# pair) when frames hold hundreds of unthresholded detections.
_PAIRS_PER_CHUNK = 2_000_000


def _pairs_in_frames(
    gt_idx: np.ndarray, gts: FlatLabels, dets: FlatLabels
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every (ground truth in `gt_idx`, detection of the same frame) pair, sorted by gt then
    detection, in chunks. Yields ``int64[P]`` ground-truth and detection indices."""
    frames = gts.frame[gt_idx]
    counts = dets.start[frames + 1] - dets.start[frames]
    ends = np.cumsum(counts)
    cuts = np.searchsorted(
        ends, np.arange(_PAIRS_PER_CHUNK, int(ends[-1]) if ends.size else 0, _PAIRS_PER_CHUNK), side="right"
    )
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(gt_idx)], strict=True):
        if hi <= lo:
            continue
        n = counts[lo:hi]
        pg = np.repeat(gt_idx[lo:hi], n)
        offset = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        pd = np.repeat(dets.start[frames[lo:hi]], n) + offset
        yield pg, pd


def _image_overlap(a: np.ndarray, b: np.ndarray, mode: str = "iou") -> np.ndarray:
    """Overlap of pixel boxes ``a[i]`` and ``b[i]`` (``float64[P, 4]`` left, top, right, bottom)
    by :func:`pc3d.ops.box_iou_2d`: IoU without the "+1" pixel, or (``"iof"``) intersection over
    the area of `a`. With the detection as `a`, its arithmetic is the port's, term for term, so
    boxes on a threshold fall on the same side of it."""
    return box_iou_2d(torch.from_numpy(a), torch.from_numpy(b), mode).numpy()


def dontcare_cover(gts: FlatLabels, dets: FlatLabels) -> np.ndarray:
    """Per detection, the largest fraction of its 2D area inside one DontCare box of its frame.

    Args:
        gts: the ground-truth objects of all frames (DontCare regions included).
        dets: the detections of all frames.

    Returns:
        ``float64[D]``, 0 without DontCare boxes.
    """
    cover = np.zeros(len(dets))
    dc = np.flatnonzero(gts.type_id == KITTI_TYPES.index("DontCare"))
    for pg, pd in _pairs_in_frames(dc, gts, dets):
        ov = _image_overlap(dets.bbox[pd], gts.bbox[pg], "iof")
        np.maximum.at(cover, pd, ov)
    return cover


def _camera_to_zup(location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """KITTI camera boxes as z-up boxes ``float64[N, 7]`` (x, y, z bottom centre, length, width,
    height, yaw counter-clockwise from +x).

    The map (x, y, z) -> (x, z, -y) is a rotation, so overlaps are unchanged; the camera x-z
    plane (KITTI's bird's-eye view) becomes the x-y plane and the box length, which points along
    (cos ry, -sin ry) in camera x-z, gets yaw -ry.
    """
    x, y, z = location.T
    h, w, length = dimensions.T
    return np.stack([x, z, -y, length, w, h, -rotation_y], axis=1)


def candidate_matches(gts: FlatLabels, dets: FlatLabels, gt_idx: np.ndarray, metric: str) -> CandidateMatches:
    """The pairs of ground truth in `gt_idx` and detections of the same frame whose overlap in
    `metric` is positive, in the port's visiting order.

    Args:
        gts: the ground-truth objects of all frames.
        dets: the detections of all frames.
        gt_idx: ``int64[G]`` indices of the ground-truth boxes that can take part.
        metric: ``"bbox"`` (image-plane IoU), ``"bev"`` or ``"3d"``.

    Returns:
        The candidate matches, sorted by ground truth, then detection.
    """
    parts = []
    boxes = None
    if metric != "bbox":
        boxes = (
            _camera_to_zup(gts.location, gts.dimensions, gts.rotation_y),
            _camera_to_zup(dets.location, dets.dimensions, dets.rotation_y),
        )
    for pg, pd in _pairs_in_frames(gt_idx, gts, dets):
        if boxes is None:
            ov = _image_overlap(dets.bbox[pd], gts.bbox[pg])
        else:
            ov = _box_overlaps(boxes[0][pg], boxes[1][pd], metric)
        keep = ov > 0
        parts.append((pg[keep], pd[keep], ov[keep]))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return CandidateMatches(gt=empty, det=empty, overlap=np.zeros(0))
    return CandidateMatches(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def _box_overlaps(ga: np.ndarray, db: np.ndarray, metric: str) -> np.ndarray:
    """BEV or 3D IoU of the z-up box pairs ``ga[i]``, ``db[i]`` (``float64[P, 7]``), exact
    (float64), ``float64[P]``.

    The port's 3D overlap is the footprint intersection times the overlap of the y extents
    (camera y points down: a box spans ``y - h .. y``), over the union of the volumes: the
    exact 3D IoU of boxes that turn about the vertical axis, which is what
    :func:`pc3d.ops.box_iou_3d` computes.
    """
    # All pairs of a frame are listed, but most are metres apart: only those whose footprints'
    # circumscribed circles (and, in 3D, height ranges) meet can overlap, and only they go to
    # the exact polygon clipping (aligned, one pair per row).
    reach = 0.5 * (np.hypot(ga[:, 3], ga[:, 4]) + np.hypot(db[:, 3], db[:, 4]))
    near = np.hypot(ga[:, 0] - db[:, 0], ga[:, 1] - db[:, 1]) <= reach * (1 + 1e-9) + 1e-9
    if metric == "3d":
        near &= np.minimum(ga[:, 2] + ga[:, 5], db[:, 2] + db[:, 5]) > np.maximum(ga[:, 2], db[:, 2])
    out = np.zeros(len(ga))
    idx = np.flatnonzero(near)
    if idx.size:
        iou = box_iou_3d if metric == "3d" else box_iou_bev
        out[idx] = iou(torch.from_numpy(ga[idx]), torch.from_numpy(db[idx]), aligned=True).numpy()
    return out
