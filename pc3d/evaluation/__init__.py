"""Evaluation metrics: the official KITTI protocol (AP11/AP40 for 2D, BEV, 3D and AOS),
IoU-based 3D mAP for indoor/custom data, and segmentation mIoU.

    from pc3d.evaluation import kitti_eval, load_label_dirs
    frames = load_label_dirs("kitti/training/label_2", "results/data")
    result = kitti_eval(frames.gts, frames.dets, classes=["Car", "Pedestrian", "Cyclist"])
    print(result.table()); result.to_dict()["Car"]["strict"]["3d"]["moderate"]["AP40"]

See ``docs/evaluation.md`` for what each metric computes and the protocol it follows.
"""

from pc3d.evaluation.kitti import KittiEvalResult, KittiMetric, kitti_eval
from pc3d.evaluation.kitti_labels import (
    KittiEvalLabels,
    LabelDirs,
    load_label_dirs,
    parse_kitti_labels,
    read_frame_ids,
    read_kitti_labels,
)
from pc3d.evaluation.map3d import Map3DMetric, Map3DResult, map3d
from pc3d.evaluation.seg import SegConfusion, SegMIoUMetric, SegResult, seg_scores

__all__ = [
    "KittiEvalResult",
    "KittiEvalLabels",
    "KittiMetric",
    "LabelDirs",
    "Map3DMetric",
    "Map3DResult",
    "SegConfusion",
    "SegMIoUMetric",
    "SegResult",
    "kitti_eval",
    "load_label_dirs",
    "map3d",
    "parse_kitti_labels",
    "read_frame_ids",
    "read_kitti_labels",
    "seg_scores",
]
