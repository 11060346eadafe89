"""COCO box mAP through pycocotools' ``COCOeval``, as an engine metric.

Each batch contributes, per image, its detections converted back to the original image's pixels
(undoing flip and resize from the sample's ``meta``) and the image's raw COCO annotations, so
the metric needs no file of its own and its state gathers across ranks like any
:class:`pc3d.engine.Metric`. ``compute`` builds the ground truth in memory from those
annotations (exactly the json's records) and runs ``COCOeval`` with ``iouType="bbox"``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pc3d.engine.metric import Metric
from pc3d.errors import FormatError
from pc3d_det2d.data import boxes_to_original
from pc3d_det2d.structures import Detections2D

__all__ = ["COCO_STAT_NAMES", "CocoMetric", "coco_eval_stats"]

#: The first six numbers of ``COCOeval.stats`` (bbox), by the names this metric reports.
COCO_STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_eval_stats(
    coco_gt: Any, detections: list[dict[str, Any]], image_ids: Sequence[int] | None = None
) -> dict[str, float]:
    """Run ``COCOeval`` (bbox).

    Args:
        coco_gt: a ``pycocotools.coco.COCO`` ground truth.
        detections: records ``{image_id, category_id, bbox: [x, y, w, h], score}``.
        image_ids: the images to evaluate (default: all of ``coco_gt``).

    Returns:
        AP, AP50, AP75, APs, APm, APl (-1 where COCO has nothing to measure, as pycocotools
        does).
    """
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_dt = coco_gt.loadRes(detections) if detections else _empty_results(coco_gt)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            evaluator.params.imgIds = list(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats[:6])}


def _empty_results(coco_gt: Any) -> Any:
    # loadRes refuses an empty list; an empty result set means AP 0 for every category with gts.
    from pycocotools.coco import COCO

    empty = COCO()
    empty.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": list(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    empty.createIndex()
    return empty


class CocoMetric(Metric):
    """COCO bbox AP, AP50, AP75, APs, APm, APl (registered metric ``CocoMetric``).

    ``update(predictions, batch)`` takes the model's ``list[Detections2D]`` (boxes in the network
    input's pixels) and the batch's ``metas`` (from :class:`pc3d_det2d.data.CocoDetection`).

    Args:
        prefix: put before each name in the results (``"bbox_"`` -> ``bbox_AP50``).
    """

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None:
        """Add a batch's detections and its images' ground truth.

        Raises:
            FormatError: a batch without ``metas`` or predictions that are not one
                :class:`Detections2D` per image.
        """
        metas = batch.get("metas")
        if metas is None:
            raise FormatError("CocoMetric needs the batch's 'metas' (samples from CocoDetection)")
        if not isinstance(predictions, Sequence) or len(predictions) != len(metas):
            raise FormatError(
                f"CocoMetric expects one Detections2D per image ({len(metas)}), got {type(predictions).__name__}"
            )
        for found, meta in zip(predictions, metas):
            if not isinstance(found, Detections2D):
                raise FormatError(f"CocoMetric expects Detections2D per image, got {type(found).__name__}")
            boxes = boxes_to_original(found.boxes, meta).numpy()
            cat_ids = np.asarray(meta["cat_ids"], dtype=np.int64)
            labels = found.labels.detach().cpu().numpy()
            if labels.size and (labels.min() < 0 or labels.max() >= len(cat_ids)):
                raise FormatError(
                    f"the model predicts label {int(labels.max())} but the data set has {len(cat_ids)} "
                    "classes (its class_names, or its json's categories): the head's num_classes must "
                    "be the number of classes, and the training and evaluation sets the same classes "
                    "(give both datasets class_names: ${class_names})"
                )
            self.results.append(
                {
                    "image_id": meta["image_id"],
                    "height": int(meta["ori_shape"][0]),
                    "width": int(meta["ori_shape"][1]),
                    "annotations": list(meta["annotations"]),
                    "cat_ids": list(meta["cat_ids"]),
                    "boxes": boxes.astype(np.float64),
                    "scores": found.scores.detach().float().cpu().numpy().astype(np.float64),
                    "categories": cat_ids[labels],
                }
            )

    def names(self) -> list[str]:
        """The keys :meth:`compute` returns (checked against ``train.best_metric``)."""
        return list(COCO_STAT_NAMES)

    def compute(self) -> dict[str, float]:
        """COCO's six AP numbers over every image added (see :func:`coco_eval_stats`).

        Raises:
            FormatError: no image was added.
        """
        from pycocotools.coco import COCO

        if not self.results:
            raise FormatError("CocoMetric.compute: no images were evaluated")
        images: dict[Any, dict[str, Any]] = {}
        annotations: dict[Any, dict[str, Any]] = {}
        detections: list[dict[str, Any]] = []
        cat_ids: set[int] = set()
        for record in self.results:
            images[record["image_id"]] = {
                "id": record["image_id"],
                "height": record["height"],
                "width": record["width"],
            }
            cat_ids.update(record["cat_ids"])
            for ann in record["annotations"]:
                ann = dict(ann)
                ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
                ann.setdefault("iscrowd", 0)
                annotations[ann["id"]] = ann
            boxes = record["boxes"]
            for box, score, cat in zip(boxes, record["scores"], record["categories"]):
                detections.append(
                    {
                        "image_id": record["image_id"],
                        "category_id": int(cat),
                        "bbox": [
                            float(box[0]),
                            float(box[1]),
                            float(box[2] - box[0]),
                            float(box[3] - box[1]),
                        ],
                        "score": float(score),
                    }
                )
        gt = COCO()
        gt.dataset = {
            "images": list(images.values()),
            "annotations": list(annotations.values()),
            "categories": [{"id": c} for c in sorted(cat_ids)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        stats = coco_eval_stats(gt, detections, sorted(images))
        return {self.prefix + name: value for name, value in stats.items()}
