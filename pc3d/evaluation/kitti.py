"""The official KITTI object-detection protocol: AP with 11 and 40 recall points for 2D boxes
(image plane), bird's-eye view, 3D boxes and AOS (average orientation similarity), per class and
difficulty, at the benchmark's "strict" and "loose" overlap thresholds.

The numbers are those of the C++ devkit's ``evaluate_object`` as ported to Python by
``kitti_object_eval_python`` (the evaluation OpenPCDet and MMDetection3D ship), step for step:

* **Difficulty** (easy / moderate / hard): a ground-truth box counts when its 2D height
  ``bottom - top`` is **above** 40 / 25 / 25 px, its occlusion level at most 0 / 1 / 2 and its
  truncation at most 0.15 / 0.3 / 0.5; otherwise it is *ignored* (matching it neither helps nor
  hurts). A detection whose 2D height ``|bottom - top|`` is below the minimum height is ignored,
  whatever its class.
* **Neighbouring classes**: Van boxes are ignored (not missed) when evaluating Car, and
  Person_sitting boxes when evaluating Pedestrian; other classes do not take part.
* **DontCare** regions (2D bbox metric only): an unmatched detection of the evaluated class
  whose area lies inside a DontCare box by more than the overlap threshold
  (``intersection / detection area``) is not counted as a false positive.
* **Matching**: a detection matches a ground-truth box when their overlap is *strictly* above the
  threshold. 2D overlap is the plain IoU of pixel boxes (no "+1"); BEV overlap the IoU of the
  rotated footprints in the camera x-z plane; 3D overlap the IoU of the boxes (footprint
  intersection times the overlap of their y extents, over the union of volumes). Ground-truth
  boxes are visited in file order; each takes, among the detections still free, the one with the
  highest score (to collect the score thresholds) or the largest overlap (to count TP / FP / FN
  at each threshold), preferring detections that are not ignored.
* **Recall sampling**: the scores of the true positives are thinned to at most 41 thresholds,
  one per 1/40 step of recall; precision at each is made monotone (the maximum over higher
  recalls). ``AP11`` averages the precision at the thresholds 0, 4, 8, .., 40 (recall 0, 0.1,
  .., 1); ``AP40`` at 1, 2, .., 40 (recall 1/40 .. 1, without the point at recall 0), as
  proposed by Simonelli et al. (2019) and used by the KITTI server since October 2019.
* **AOS** is computed from the 2D-box matching with the similarity ``(1 + cos(alpha_gt -
  alpha_det)) / 2``, only when the detections carry an observation angle (some ``alpha`` is not
  the devkit's "missing" value -10).

One deliberate difference: the port computes rotated overlaps in float32 and returns wrong
values for identical or near-identical boxes (a perfect detection set can score near 0 in BEV or
3D); pc3d uses exact float64 geometry from :mod:`pc3d.ops`. See ``docs/evaluation.md``.

Layout: the protocol's constants in :mod:`pc3d.evaluation.kitti_protocol`, the frames as flat
arrays and each object's part for a class and difficulty in :mod:`pc3d.evaluation.kitti_frames`,
the overlaps in :mod:`pc3d.evaluation.kitti_overlaps`, the greedy assignment and recall sampling
in :mod:`pc3d.evaluation.kitti_matching`, the result in :mod:`pc3d.evaluation.kitti_result`; this
module runs the evaluation (:func:`kitti_eval`, :class:`KittiMetric`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation.kitti_frames import detection_state, flat_records, ground_truth_state
from pc3d.evaluation.kitti_labels import KITTI_TYPES, KittiEvalLabels, from_io_labels
from pc3d.evaluation.kitti_matching import precision_at_thresholds
from pc3d.evaluation.kitti_overlaps import candidate_matches, dontcare_cover
from pc3d.evaluation.kitti_protocol import (
    ALPHA_MISSING,
    DIFFICULTIES,
    KITTI_EVAL_CLASSES,
    METRICS,
    MIN_OVERLAPS,
    NEIGHBOUR_CLASS,
    NUM_SAMPLE_POINTS,
    OVERLAP_SETS,
    resolve_classes,
)
from pc3d.evaluation.kitti_result import KittiEvalResult
from pc3d.io.kitti import KittiLabels, detections_to_kitti_labels
from pc3d.structures import Detections3D

__all__ = [
    "ALPHA_MISSING",
    "DIFFICULTIES",
    "KITTI_EVAL_CLASSES",
    "METRICS",
    "MIN_OVERLAPS",
    "NEIGHBOUR_CLASS",
    "NUM_SAMPLE_POINTS",
    "OVERLAP_SETS",
    "KittiEvalResult",
    "KittiMetric",
    "kitti_eval",
    "resolve_classes",
]


def kitti_eval(
    gt: Sequence[KittiEvalLabels | KittiLabels],
    det: Sequence[KittiEvalLabels | KittiLabels],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
) -> KittiEvalResult:
    """Evaluate detections against KITTI ground truth with the official protocol.

    Args:
        gt: one ground-truth record per frame (:class:`KittiEvalLabels` without scores, or a
            :class:`pc3d.io.kitti.KittiLabels` as ``read_kitti_labels`` returns it).
        det: the detections of the same frames, in the same order (records with scores); an
            empty record means no detections.
        classes: classes to evaluate, among `KITTI_EVAL_CLASSES` (case-insensitive).

    Returns:
        :class:`KittiEvalResult` with AP11 and AP40 for bbox, BEV, 3D and AOS.

    Raises:
        ShapeError: the two sequences differ in length.
        FormatError: a ground-truth record has scores, a detection record has none, or a class
            cannot be evaluated.
    """
    gts, dets = flat_records(gt, det)
    wanted = resolve_classes(classes)
    # AOS only when the detections carry observation angles (some alpha is not -10); the
    # ports decide this once for the whole set (OpenPCDet from the first detection,
    # MMDetection3D from any), which agree whenever all or no detections carry one.
    aos = bool((dets.alpha != ALPHA_MISSING).any())
    # Ground-truth boxes that can take part at all: the evaluated classes and their neighbours.
    relevant = {*wanted, *(NEIGHBOUR_CLASS[c] for c in wanted if c in NEIGHBOUR_CLASS)}
    gt_pick = np.flatnonzero(np.isin(gts.type_id, [KITTI_TYPES.index(c) for c in relevant]))

    precision = np.zeros((len(wanted), 2, 4, 3, NUM_SAMPLE_POINTS))
    if not aos:
        precision[:, :, 3] = np.nan
    dc_cover = dontcare_cover(gts, dets)
    for m, metric in enumerate(METRICS):
        edges = candidate_matches(gts, dets, gt_pick, metric)
        for c, cls in enumerate(wanted):
            for d in range(3):
                gt_state = ground_truth_state(gts, cls, d)
                det_state = detection_state(dets, cls, d)
                cache: dict[float, tuple[np.ndarray, np.ndarray | None]] = {}
                for s, oset in enumerate(OVERLAP_SETS):
                    min_ov = MIN_OVERLAPS[cls][oset][m]
                    if min_ov not in cache:
                        cache[min_ov] = precision_at_thresholds(
                            edges,
                            dets.score,
                            gts.alpha,
                            dets.alpha,
                            gt_state,
                            det_state,
                            min_ov,
                            dc_cover if metric == "bbox" else None,
                            with_aos=aos and metric == "bbox",
                        )
                    prec, orient = cache[min_ov]
                    precision[c, s, m, d] = prec
                    if orient is not None:
                        precision[c, s, 3, d] = orient
    ap11 = precision[..., 0::4].sum(-1) / 11 * 100
    ap40 = precision[..., 1:].sum(-1) / 40 * 100
    min_overlaps = np.array([[MIN_OVERLAPS[c][s] for s in OVERLAP_SETS] for c in wanted])
    return KittiEvalResult(
        classes=tuple(wanted),
        ap11=ap11,
        ap40=ap40,
        precision=precision,
        aos_computed=aos,
        min_overlaps=min_overlaps,
        num_frames=len(gt),
    )


class KittiMetric:
    """The KITTI protocol as an engine metric (``registry.add_metric``): ``reset`` / ``update``
    / ``compute`` / ``state`` / ``merge``.

    ``update(predictions, batch)`` takes one prediction per sample, either a detection record
    (:class:`KittiEvalLabels` with scores, as a KITTI result file holds them) or a 3D detector's
    :class:`pc3d.structures.Detections3D` (LiDAR boxes), which is turned into such a record with
    the frame's calibration ``batch[calib_key]`` (:func:`pc3d.io.kitti.detections_to_kitti_labels`:
    camera boxes, 2D boxes projected on image 2, alpha). The ground truth is ``batch[gt_key]``:
    one :class:`KittiEvalLabels` or :class:`pc3d.io.kitti.KittiLabels` per sample, DontCare
    regions included (the det3d ``KittiDataset`` provides both keys).

    ``compute()`` returns ``KITTI/{class}_{2D|BEV|3D|AOS}_{AP11|AP40}_{easy|moderate|hard}_{strict|
    loose}`` in percent (MMDetection3D's key layout, plus AOS and both overlap sets).

    Args:
        classes: classes to evaluate (default Car, Pedestrian, Cyclist).
        gt_key: batch key holding the ground-truth records.
        class_names: the model's classes, which ``Detections3D.labels`` index (default:
            ``classes``).
        calib_key: batch key holding each sample's :class:`pc3d.io.kitti.KittiCalib`.
    """

    def __init__(
        self,
        classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
        gt_key: str = "kitti_labels",
        class_names: Sequence[str] | None = None,
        calib_key: str = "calib",
    ) -> None:
        self.classes = resolve_classes(classes)
        self.gt_key = gt_key
        self.class_names = list(class_names) if class_names is not None else list(classes)
        self.calib_key = calib_key
        self.frames: list[tuple[KittiEvalLabels, KittiEvalLabels]] = []

    def reset(self) -> None:
        """Forget every frame."""
        self.frames = []

    def update(self, predictions: Sequence[Any], batch: Any) -> None:
        """Keep one batch: a prediction per sample and its ground truth ``batch[gt_key]``.

        Raises:
            FormatError: the batch has no ground truth (or no calibration for LiDAR detections),
                or a prediction of another kind.
            ShapeError: as many predictions as ground-truth records are needed.
        """
        if self.gt_key not in batch:
            raise FormatError(f"KittiMetric: the batch has no {self.gt_key!r} (keys: {sorted(batch)})")
        gts = batch[self.gt_key]
        if len(gts) != len(predictions):
            raise ShapeError(
                f"KittiMetric: {len(predictions)} predictions for {len(gts)} ground-truth records"
            )
        for index, (gt, det) in enumerate(zip(gts, predictions, strict=True)):
            self.frames.append((self._record(gt, detections=False), self._prediction(det, batch, index)))

    @staticmethod
    def _record(value: Any, detections: bool) -> KittiEvalLabels:
        if isinstance(value, KittiEvalLabels):
            return value
        if isinstance(value, KittiLabels):
            return from_io_labels(value, detections=detections)
        raise FormatError(
            "KittiMetric takes KittiEvalLabels or pc3d.io.kitti.KittiLabels records, or "
            f"Detections3D predictions; got {type(value).__name__}"
        )

    def _prediction(self, det: Any, batch: Any, index: int) -> KittiEvalLabels:
        if not isinstance(det, Detections3D):
            return self._record(det, detections=True)
        if self.calib_key not in batch:
            raise FormatError(
                f"KittiMetric: LiDAR detections need the frame's calibration in batch[{self.calib_key!r}] "
                f"(keys: {sorted(batch)})"
            )
        records = detections_to_kitti_labels(det.to("cpu"), self.class_names, batch[self.calib_key][index])
        return from_io_labels(records, detections=True)

    def result(self) -> KittiEvalResult:
        """The evaluation of every frame kept so far."""
        return kitti_eval([g for g, _ in self.frames], [d for _, d in self.frames], self.classes)

    def names(self) -> list[str]:
        """Every key :meth:`compute` can return (AOS ones only when AOS is computed), known before
        any evaluation (checked against ``train.best_metric``)."""
        return [
            f"KITTI/{cls}_{metric}_{ap}_{diff}_{oset}"
            for cls in self.classes
            for oset in ("strict", "loose")
            for metric in ("2D", "BEV", "3D", "AOS")
            for ap in ("AP11", "AP40")
            for diff in ("easy", "moderate", "hard")
        ]

    def compute(self) -> dict[str, float]:
        """AP in percent by ``KITTI/...`` key (see the class doc); AOS keys only when computed."""
        result = self.result()
        names = {"bbox": "2D", "bev": "BEV", "3d": "3D", "aos": "AOS"}
        out: dict[str, float] = {}
        for cls, sets in result.to_dict().items():
            for oset, metrics in sets.items():
                for metric, diffs in metrics.items():
                    if metric == "aos" and not result.aos_computed:
                        continue
                    for diff, values in diffs.items():
                        for ap_name, value in values.items():
                            key = f"KITTI/{cls}_{names[metric]}_{ap_name}_{diff}_{oset}"
                            out[key] = math.nan if value is None else value
        return out

    def state(self) -> list[tuple[KittiEvalLabels, KittiEvalLabels]]:
        """This rank's frames, for gathering across ranks."""
        return self.frames

    def merge(self, states: list[list[tuple[KittiEvalLabels, KittiEvalLabels]]]) -> None:
        """Take the gathered frames of every rank (replacing this rank's own)."""
        self.frames = [frame for state in states for frame in state]
