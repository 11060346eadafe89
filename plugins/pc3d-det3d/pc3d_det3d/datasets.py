"""KITTI object detection frames as 3D detection samples (registered as ``KittiDataset``).

A sample is what the det3d models' ``loss(points, gt_boxes, gt_labels)`` take, plus the frame id::

    {"points": LiDARPoints[N, 4],     # x, y, z, intensity (attribute "intensity")
     "gt_boxes": LiDARBoxes3D[M, 7],  # x, y, z (bottom centre), l, w, h, yaw
     "gt_labels": Long[M],            # index into class_names
     "frame_id": str}                 # e.g. "000001", for metrics and debugging

Labels (``label_2``, rectified camera frame) become LiDAR boxes through the frame's own
calibration (:meth:`pc3d.io.kitti.KittiLabels.to_lidar_boxes`); ``DontCare`` regions and objects
of classes not in ``class_names`` are dropped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, suggest
from pc3d.io.kitti import load_kitti_frame
from pc3d.structures import LiDARPoints

#: Object classes of KITTI's ``label_2`` files (``DontCare`` is a region, not a class).
KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")

# A frame is usable for training when it has all three files.
_FRAME_FILES = (("velodyne", ".bin"), ("label_2", ".txt"), ("calib", ".txt"))


class KittiDataset:
    """KITTI ``training``-style folder (``velodyne/``, ``label_2/``, ``calib/``) as a map-style
    dataset of LiDAR detection samples (see the module docstring for a sample's keys).

    Frames are read when indexed (a full KITTI split does not fit in memory); construction only
    checks that the frames' files exist.

    Args:
        root: the folder holding ``velodyne/``, ``label_2/`` and ``calib/`` (e.g.
            ``data/kitti/training``). A relative path is resolved against the current directory
            when the dataset is built.
        class_names: the classes to train on, in label order (``gt_labels`` indexes this list);
            each must be a KITTI class (:data:`KITTI_CLASSES`).
        split: which frames: a text file of frame ids, one per line (KITTI's
            ``ImageSets/train.txt``; relative to the current directory), a list of ids
            (``"000001"`` or ``1``), or ``None`` for every frame of ``root`` that has a scan, a
            label and a calibration file (sorted).
        max_points: if set, a scan with more points keeps a random subset of this size (drawn
            from torch's generator, which the engine seeds per sample), after the range filter.
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]``: keep the points
            strictly inside it (``LiDARPoints.in_range_3d``, MMDetection3D's
            ``PointsRangeFilter``) and the boxes whose bottom-centre (x, y) lies strictly inside
            its bird's-eye-view rectangle (``LiDARBoxes3D.in_range_bev``, MMDetection3D's
            ``ObjectRangeFilter``; the height of a box does not matter).

    Raises:
        FileNotFoundError: missing root, split file or frame file (names the path).
        FormatError: unknown class, empty or duplicate class names, empty split, bad range.
    """

    def __init__(
        self,
        root: str,
        class_names: list[str],
        split: str | list[str | int] | None = None,
        max_points: int | None = None,
        point_cloud_range: list[float] | None = None,
    ) -> None:
        self.root = Path(os.path.abspath(root))
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"KittiDataset: root {root!r} is not a folder (resolved against the current "
                f"directory {os.getcwd()} to {self.root}); pass the folder holding velodyne/, "
                "label_2/ and calib/, e.g. --set data.train.dataset.root=data/kitti/training"
            )
        self.class_names = _check_class_names(class_names)
        if max_points is not None and max_points < 1:
            raise FormatError(f"KittiDataset: max_points must be at least 1, got {max_points}")
        self.max_points = max_points
        self.point_cloud_range = _check_range(point_cloud_range)
        self.frame_ids = self._frames(split)

    def _frames(self, split: str | Sequence[str | int] | None) -> list[str]:
        if split is None:
            stems = [
                {p.name.removesuffix(suffix) for p in (self.root / folder).glob(f"*{suffix}")}
                for folder, suffix in _FRAME_FILES
            ]
            frames = sorted(set.intersection(*stems))
            if not frames:
                raise FileNotFoundError(
                    f"KittiDataset: no frame in {self.root} has all of velodyne/*.bin, "
                    "label_2/*.txt and calib/*.txt"
                )
            return frames
        if isinstance(split, str):
            path = Path(os.path.abspath(split))
            if not path.is_file():
                raise FileNotFoundError(
                    f"KittiDataset: split file {split!r} does not exist (resolved to {path})"
                )
            ids: list[str | int] = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            where = str(path)
        else:
            ids, where = list(split), "split"
        if not ids:
            raise FormatError(f"KittiDataset: {where} lists no frames")
        frames = [f"{i:06d}" if isinstance(i, int) else str(i) for i in ids]
        for stem in frames:
            for folder, suffix in _FRAME_FILES:
                if not (self.root / folder / f"{stem}{suffix}").is_file():
                    raise FileNotFoundError(
                        f"KittiDataset: frame {stem!r} (from {where}) has no "
                        f"{self.root / folder / (stem + suffix)}"
                    )
        return frames

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        frame = load_kitti_frame(self.root, self.frame_ids[index])
        assert frame.labels is not None  # checked at construction
        scan = np.ascontiguousarray(frame.points.array[:, :4], dtype=np.float32)
        points = LiDARPoints(torch.from_numpy(scan), points_dim=4, attribute_dims={"intensity": 3})
        types = frame.labels.objects().types  # aligned with to_lidar_boxes' rows
        keep = np.isin(types, self.class_names)
        boxes = frame.labels.to_lidar_boxes(frame.calib)[keep]
        lookup = {name: i for i, name in enumerate(self.class_names)}
        labels = torch.tensor([lookup[t] for t in types[keep]], dtype=torch.long)
        if self.point_cloud_range is not None:
            points = points[points.in_range_3d(self.point_cloud_range)]
            # The BEV rectangle (x_min, y_min, x_max, y_max): only the bottom centre's x and y
            # count, so the rule does not depend on which centre in_range_3d tests.
            inside = boxes.in_range_bev(self.point_cloud_range[[0, 1, 3, 4]])
            boxes, labels = boxes[inside], labels[inside]
        if self.max_points is not None and len(points) > self.max_points:
            points = points[torch.randperm(len(points))[: self.max_points]]
        return {"points": points, "gt_boxes": boxes, "gt_labels": labels, "frame_id": frame.frame_id}

    @staticmethod
    def collate(samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """A batch as lists per key (point clouds and box sets differ in size).

        Args:
            samples: the samples of one batch.

        Returns:
            ``{"points": [LiDARPoints, ...], "gt_boxes": [LiDARBoxes3D, ...], ...}``.
        """
        return {key: [sample[key] for sample in samples] for key in samples[0]}


def _check_class_names(class_names: Sequence[str]) -> list[str]:
    names = list(class_names)
    if not names:
        raise FormatError("KittiDataset: class_names is empty")
    for name in names:
        if name not in KITTI_CLASSES:
            hint = suggest(str(name), KITTI_CLASSES)
            raise FormatError(
                f"KittiDataset: unknown class {name!r} in class_names"
                + (f"; did you mean {hint!r}?" if hint else "")
                + f" (KITTI classes: {', '.join(KITTI_CLASSES)})"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FormatError(f"KittiDataset: class_names lists {', '.join(duplicates)} more than once")
    return names


def _check_range(point_cloud_range: Sequence[float] | None) -> Tensor | None:
    if point_cloud_range is None:
        return None
    values = torch.tensor([float(v) for v in point_cloud_range], dtype=torch.float32)
    if values.shape != (6,) or not bool(torch.isfinite(values).all()):
        raise FormatError(
            "KittiDataset: point_cloud_range must be 6 finite numbers [x_min, y_min, z_min, "
            f"x_max, y_max, z_max], got {list(point_cloud_range)}"
        )
    if not bool((values[:3] < values[3:]).all()):
        raise FormatError(f"KittiDataset: point_cloud_range needs min < max per axis, got {values.tolist()}")
    return values
