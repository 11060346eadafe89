"""IoU-based 3D mAP (VOC-style) for indoor and custom datasets: per class, AP at 3D-IoU
thresholds (default 0.25 and 0.5), for boxes of any coordinate system.

Protocol: the ScanNet / SUN RGB-D evaluation of VoteNet (Qi et al., ICCV 2019), as MMDetection3D
ships it (``indoor_eval`` / ``eval_det_cls``), which is the Pascal VOC 2010+ protocol with 3D IoU:

1. For each class, the detections of that class in all scenes are sorted by score, highest
   first (ties keep scene order, then detection order; MMDetection3D's unstable sort leaves tied
   scores in an unspecified order).
2. A detection's best ground-truth box is the one of the same class in its scene with the
   largest 3D IoU (the first one among equal IoUs). If that IoU is **strictly above** the
   threshold and the box is still unmatched, the detection is a true positive and the box is
   matched; otherwise (IoU too low, no box of the class in the scene, or the best box already
   taken by a higher-scored detection) it is a false positive. There are no "difficult" or
   ignored boxes.
3. ``recall = TP / #GT`` and ``precision = TP / max(TP + FP, eps)`` after each detection; AP is
   the area under the precision-recall curve after making precision monotone (the maximum over
   higher recalls), with the curve closed at recall 0 and 1 (VOC "area" mode).
4. ``mAP`` is the mean AP over the classes that have at least one ground-truth box. (A class
   with detections but no ground truth has no recall; MMDetection3D then returns NaN for it and
   for the mean; pc3d reports that class's AP as NaN and leaves it out of the mean.) AR is the
   recall after the last detection, averaged the same way.

3D IoU is :func:`pc3d.ops.box_iou_3d` (exact: footprint intersection times height overlap over
the union of volumes). Boxes are ``Boxes3D`` structures of one system (LiDAR, Depth or Camera)
or ``Tensor[N, 7]`` z-up boxes (LiDAR or Depth layout: bottom centre, yaw about +z); AP values
are fractions in [0, 1], as MMDetection3D reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation.stats import nanmean
from pc3d.io.values import first_non_finite
from pc3d.ops import box_iou_3d


@dataclass(frozen=True)
class SceneMatches:
    """What one scene contributes to the mAP: its detections with their best same-class IoU.

    Attributes:
        det_labels: ``int64[D]`` class of each detection.
        det_scores: ``float64[D]``.
        best_iou: ``float64[D]`` largest IoU with a ground-truth box of the same class (-inf
            when the scene has none).
        best_gt: ``int64[D]`` index of that box within the scene (-1 when none).
        gt_labels: ``int64[G]`` classes of the scene's ground-truth boxes.
    """

    det_labels: np.ndarray
    det_scores: np.ndarray
    best_iou: np.ndarray
    best_gt: np.ndarray
    gt_labels: np.ndarray


def match_scene(
    det_boxes: Any,
    det_labels: Tensor | np.ndarray,
    det_scores: Tensor | np.ndarray,
    gt_boxes: Any,
    gt_labels: Tensor | np.ndarray,
) -> SceneMatches:
    """Best same-class ground-truth box of every detection of one scene.

    Args:
        det_boxes: ``Boxes3D`` or ``Tensor[D, 7+C]`` z-up boxes.
        det_labels: ``int[D]`` class indices.
        det_scores: ``float[D]``.
        gt_boxes: the same kind as `det_boxes`, ``G`` boxes.
        gt_labels: ``int[G]``.

    Returns:
        Each detection's best same-class IoU and ground-truth box.

    Raises:
        ShapeError: labels or scores that do not match the boxes.
        FormatError: NaN or infinite scores.
    """
    d_lab = _as_numpy(det_labels, "det_labels", np.int64)
    scores = _as_numpy(det_scores, "det_scores", np.float64)
    g_lab = _as_numpy(gt_labels, "gt_labels", np.int64)
    n_det, n_gt = _count(det_boxes, "det_boxes"), _count(gt_boxes, "gt_boxes")
    if len(d_lab) != n_det or len(scores) != n_det:
        raise ShapeError(f"{n_det} detection boxes but {len(d_lab)} labels and {len(scores)} scores")
    if len(g_lab) != n_gt:
        raise ShapeError(f"{n_gt} ground-truth boxes but {len(g_lab)} labels")
    if first_non_finite(scores) is not None:
        raise FormatError("det_scores holds NaN or infinite values")
    best_iou = np.full(n_det, -np.inf)
    best_gt = np.full(n_det, -1, dtype=np.int64)
    if n_det and n_gt:
        iou = _iou_3d(det_boxes, gt_boxes).double().cpu().numpy()  # [D, G]
        iou = np.where(d_lab[:, None] == g_lab[None, :], iou, -np.inf)
        best_gt = iou.argmax(axis=1)  # the first of equal maxima, as the VOC loop's strict ">"
        best_iou = iou[np.arange(n_det), best_gt]
        best_gt[~np.isfinite(best_iou)] = -1
    return SceneMatches(d_lab, scores, best_iou, best_gt, g_lab)


@dataclass(frozen=True)
class Map3DResult:
    """Per-class AP and recall at each IoU threshold (fractions).

    Attributes:
        thresholds: the IoU thresholds.
        classes: class indices, in order.
        names: their names.
        ap: ``float64[T, K]`` (NaN for a class without ground truth).
        recall: ``float64[T, K]`` after the last detection (NaN likewise).
        num_gt: ``int64[K]`` ground-truth boxes per class.
    """

    thresholds: tuple[float, ...]
    classes: tuple[int, ...]
    names: tuple[str, ...]
    ap: np.ndarray
    recall: np.ndarray
    num_gt: np.ndarray

    def mean_ap(self, t: int) -> float:
        """The mAP at threshold index `t`: the mean over classes with ground truth (NaN if none)."""
        return nanmean(self.ap[t])

    def mean_recall(self, t: int) -> float:
        """The mAR at threshold index `t`, averaged like `mean_ap`."""
        return nanmean(self.recall[t])

    def to_dict(self) -> dict[str, float]:
        """MMDetection3D's keys: ``{name}_AP_0.25``, ``mAP_0.25``, ``{name}_rec_0.25``,
        ``mAR_0.25`` (and the same for each threshold)."""
        out: dict[str, float] = {}
        for t, thr in enumerate(self.thresholds):
            for k, name in enumerate(self.names):
                out[f"{name}_AP_{thr:.2f}"] = float(self.ap[t, k])
            out[f"mAP_{thr:.2f}"] = self.mean_ap(t)
            for k, name in enumerate(self.names):
                out[f"{name}_rec_{thr:.2f}"] = float(self.recall[t, k])
            out[f"mAR_{thr:.2f}"] = self.mean_recall(t)
        return out

    def table(self) -> str:
        """A console table: one row per class and an "Overall" row, AP and AR per threshold."""
        head = "class".ljust(16) + "".join(f"  AP_{t:.2f}  AR_{t:.2f}" for t in self.thresholds)
        lines = [head]
        for k, name in enumerate(self.names):
            vals = "".join(
                f"  {self.ap[t, k]:7.4f}  {self.recall[t, k]:7.4f}" for t in range(len(self.thresholds))
            )
            lines.append(name[:16].ljust(16) + vals)
        lines.append(
            "Overall".ljust(16)
            + "".join(
                f"  {self.mean_ap(t):7.4f}  {self.mean_recall(t):7.4f}" for t in range(len(self.thresholds))
            )
        )
        return "\n".join(lines)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision-recall curve (VOC 2010+ "area" mode).

    Args:
        recall: ``float64[D]`` after each detection, in score order.
        precision: ``float64[D]`` likewise.

    Returns:
        The AP, a fraction.
    """
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def map3d_from_matches(
    scenes: Sequence[SceneMatches],
    iou_thresholds: Sequence[float] = (0.25, 0.5),
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Map3DResult:
    """AP per class and threshold from per-scene matches (see the module docstring).

    Args:
        scenes: one :class:`SceneMatches` per scene (see :func:`match_scene`).
        iou_thresholds: a detection matches when its IoU is strictly above the threshold.
        classes: class indices to report; default: every class seen in ground truth or
            detections (MMDetection3D's choice), sorted.
        class_names: names for `classes` (default ``str(index)``).
    """
    thresholds = tuple(float(t) for t in iou_thresholds)
    if not thresholds:
        raise FormatError("iou_thresholds is empty")
    det_labels = _cat([s.det_labels for s in scenes], np.int64)
    scores = _cat([s.det_scores for s in scenes], np.float64)
    best_iou = _cat([s.best_iou for s in scenes], np.float64)
    best_gt = _cat([s.best_gt for s in scenes], np.int64)
    scene_of_det = np.repeat(np.arange(len(scenes)), [len(s.det_labels) for s in scenes])
    gt_labels = _cat([s.gt_labels for s in scenes], np.int64)
    if classes is None:
        classes = sorted(set(det_labels.tolist()) | set(gt_labels.tolist()))
    classes = [int(c) for c in classes]
    if class_names is None:
        class_names = [str(c) for c in classes]
    if len(class_names) != len(classes):
        raise ShapeError(f"{len(class_names)} class names for {len(classes)} classes")
    ap = np.zeros((len(thresholds), len(classes)))
    rec = np.zeros((len(thresholds), len(classes)))
    num_gt = np.array([(gt_labels == c).sum() for c in classes], dtype=np.int64)
    for k, cls in enumerate(classes):
        mine = np.flatnonzero(det_labels == cls)
        if num_gt[k] == 0:
            ap[:, k] = rec[:, k] = np.nan
            continue
        order = mine[np.argsort(-scores[mine], kind="stable")]
        # a ground-truth box is named by (scene, index in scene)
        key = scene_of_det[order] * (int(best_gt.max(initial=0)) + 1) + best_gt[order]
        for t, thr in enumerate(thresholds):
            hit = best_iou[order] > thr
            # the first detection (in score order) that reaches a box takes it; later ones are FPs
            first = np.zeros(len(order), dtype=bool)
            hit_idx = np.flatnonzero(hit)
            _, first_of_key = np.unique(key[hit_idx], return_index=True)
            first[hit_idx[first_of_key]] = True
            tp = np.cumsum(first)
            fp = np.cumsum(~first)
            recall = tp / float(num_gt[k])
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            ap[t, k] = voc_ap(recall, precision) if len(order) else 0.0
            rec[t, k] = recall[-1] if len(order) else 0.0
    return Map3DResult(thresholds, tuple(classes), tuple(class_names), ap, rec, num_gt)


def map3d(
    gt_boxes: Sequence[Any],
    gt_labels: Sequence[Tensor | np.ndarray],
    det_boxes: Sequence[Any],
    det_labels: Sequence[Tensor | np.ndarray],
    det_scores: Sequence[Tensor | np.ndarray],
    iou_thresholds: Sequence[float] = (0.25, 0.5),
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Map3DResult:
    """VOC-style 3D mAP of detections over scenes (one entry per scene in every sequence).

    Boxes are ``Boxes3D`` of one system or ``Tensor[N, 7]`` z-up boxes, ground truth and
    detections in the same system. See the module docstring for the exact protocol.

    Args:
        gt_boxes: ground-truth boxes of each scene.
        gt_labels: ``int[G_i]`` their classes.
        det_boxes: detected boxes of each scene.
        det_labels: ``int[D_i]`` their classes.
        det_scores: ``float[D_i]`` their scores.
        iou_thresholds: 3D IoU thresholds (a match needs an IoU strictly above).
        classes: class indices to report (default: every class seen).
        class_names: their names (default: the indices).

    Returns:
        Per-class AP and recall at each threshold.

    Raises:
        ShapeError: the sequences differ in length, or labels/scores do not match the boxes.
    """
    n = len(gt_boxes)
    if not (len(gt_labels) == len(det_boxes) == len(det_labels) == len(det_scores) == n):
        raise ShapeError(
            "gt_boxes, gt_labels, det_boxes, det_labels and det_scores must have one entry per scene"
        )
    scenes = [
        match_scene(det_boxes[i], det_labels[i], det_scores[i], gt_boxes[i], gt_labels[i]) for i in range(n)
    ]
    return map3d_from_matches(scenes, iou_thresholds, classes, class_names)


class Map3DMetric:
    """3D mAP as an engine metric (``registry.add_metric``): ``reset`` / ``update`` /
    ``compute`` / ``state`` / ``merge``.

    ``update(predictions, batch)`` takes one detection result per sample (an object or mapping
    with ``boxes``, ``scores``, ``labels``, such as the det3d plugin's ``Detections3D``) and
    the ground truth ``batch[gt_boxes_key]`` / ``batch[gt_labels_key]`` (one entry per sample).

    Args:
        iou_thresholds: 3D IoU thresholds (default 0.25 and 0.5).
        class_names: names of classes ``0 .. K-1``; every class is reported (default: the
            classes seen, named by index).
        gt_boxes_key: batch key of the ground-truth boxes.
        gt_labels_key: batch key of the ground-truth labels.
    """

    def __init__(
        self,
        iou_thresholds: Sequence[float] = (0.25, 0.5),
        class_names: Sequence[str] | None = None,
        gt_boxes_key: str = "gt_boxes",
        gt_labels_key: str = "gt_labels",
    ) -> None:
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.class_names = list(class_names) if class_names is not None else None
        self.gt_boxes_key, self.gt_labels_key = gt_boxes_key, gt_labels_key
        self.scenes: list[SceneMatches] = []

    def reset(self) -> None:
        """Forget every scene."""
        self.scenes = []

    def update(self, predictions: Sequence[Any], batch: Mapping[str, Any]) -> None:
        """Match one batch: one prediction per sample against the batch's ground truth.

        Raises:
            FormatError: the batch lacks a ground-truth key, or a prediction lacks a field.
            ShapeError: as many predictions as samples are needed.
        """
        for key in (self.gt_boxes_key, self.gt_labels_key):
            if key not in batch:
                raise FormatError(f"Map3DMetric: the batch has no {key!r} (keys: {sorted(batch)})")
        gt_boxes, gt_labels = batch[self.gt_boxes_key], batch[self.gt_labels_key]
        if not (len(predictions) == len(gt_boxes) == len(gt_labels)):
            raise ShapeError(f"Map3DMetric: {len(predictions)} predictions for {len(gt_boxes)} samples")
        for pred, boxes, labels in zip(predictions, gt_boxes, gt_labels, strict=True):
            det = [_field(pred, name) for name in ("boxes", "labels", "scores")]
            self.scenes.append(match_scene(det[0], det[1], det[2], boxes, labels))

    def compute(self) -> dict[str, float]:
        """The metric values, by MMDetection3D's keys (see `Map3DResult.to_dict`)."""
        return self.result().to_dict()

    def result(self) -> Map3DResult:
        """The full result of every scene seen so far."""
        classes = range(len(self.class_names)) if self.class_names is not None else None
        return map3d_from_matches(self.scenes, self.iou_thresholds, classes, self.class_names)

    def state(self) -> list[SceneMatches]:
        """What this rank has seen, for gathering across ranks."""
        return self.scenes

    def merge(self, states: list[list[SceneMatches]]) -> None:
        """Take the gathered states of every rank (replacing this rank's own)."""
        self.scenes = [scene for state in states for scene in state]


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        if name not in obj:
            raise FormatError(f"Map3DMetric: a prediction has no {name!r} (keys: {sorted(obj)})")
        return obj[name]
    if not hasattr(obj, name):
        raise FormatError(f"Map3DMetric: a prediction ({type(obj).__name__}) has no {name!r}")
    return getattr(obj, name)


def _iou_3d(det_boxes: Any, gt_boxes: Any) -> Tensor:
    """``Tensor[D, G]`` 3D IoU: structures through `Boxes3D.overlaps` (which knows each system's
    vertical axis), z-up tensors through `pc3d.ops.box_iou_3d`."""
    from pc3d.structures import Boxes3D

    if isinstance(det_boxes, Boxes3D):
        return det_boxes.overlaps(det_boxes, gt_boxes)
    return box_iou_3d(det_boxes, gt_boxes)


def _count(boxes: Any, what: str) -> int:
    tensor = getattr(boxes, "tensor", boxes)
    if not isinstance(tensor, Tensor) or tensor.dim() != 2:
        raise ShapeError(
            f"{what} must be Boxes3D or Tensor[N, 7+C], got {getattr(tensor, 'shape', type(tensor).__name__)}"
        )
    return int(tensor.shape[0])


def _as_numpy(values: Tensor | np.ndarray, what: str, dtype: type) -> np.ndarray:
    arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if arr.ndim != 1:
        raise ShapeError(f"{what} must be one-dimensional, got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


__all__ = [
    "Map3DMetric",
    "Map3DResult",
    "SceneMatches",
    "map3d",
    "map3d_from_matches",
    "match_scene",
    "voc_ap",
]
