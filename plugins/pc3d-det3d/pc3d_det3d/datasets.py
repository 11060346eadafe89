"""KITTI object detection frames as 3D detection samples (registered as ``KittiDataset``).

A sample is what the det3d models' ``loss(points, gt_boxes, gt_labels)`` take, plus the frame id::

    {"points": Tensor[N, 4],      # LiDAR x, y, z, reflectance (float32)
     "gt_boxes": Tensor[M, 7],    # LiDAR boxes x, y, z (bottom centre), l, w, h, yaw (float32)
     "gt_labels": Long[M],        # index into class_names
     "frame_id": str}             # e.g. "000001", for metrics and debugging

Labels (``label_2``, rectified camera frame) become LiDAR boxes through the frame's own
calibration (:meth:`pc3d.io.kitti.KittiLabels.to_lidar_boxes`); ``DontCare`` regions and objects
of classes not in ``class_names`` are dropped.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError
from pc3d.io.kitti import load_kitti_frame

#: Object classes of KITTI's ``label_2`` files (``DontCare`` is a region, not a class).
KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")

# A frame is usable for training when it has all three files.
_FRAME_FILES = (("velodyne", ".bin"), ("label_2", ".txt"), ("calib", ".txt"))


class KittiDataset:
    """KITTI ``training``-style folder (``velodyne/``, ``label_2/``, ``calib/``) as a map-style
    dataset of LiDAR detection samples (see the module docstring for a sample's keys).

    Frames are read when indexed (a full KITTI split does not fit in memory); construction only
    checks that the frames' files exist.

    :param root: the folder holding ``velodyne/``, ``label_2/`` and ``calib/`` (e.g.
        ``data/kitti/training``). A relative path is resolved against the current directory when
        the dataset is built.
    :param split: which frames: a text file of frame ids, one per line (KITTI's
        ``ImageSets/train.txt``; relative to the current directory), a list of ids (``"000001"``
        or ``1``), or ``None`` for every frame of ``root`` that has a scan, a label and a
        calibration file (sorted).
    :param class_names: the classes to train on, in label order (``gt_labels`` indexes this
        list); each must be a KITTI class (:data:`KITTI_CLASSES`).
    :param max_points: if set, a scan with more points keeps a random subset of this size (drawn
        from torch's generator, which the engine seeds per sample), after the range filter.
    :param point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]``: keep the points
        inside it (min inclusive, max exclusive) and the boxes whose bottom-centre (x, y) lies
        inside its bird's-eye-view rectangle (MMDetection3D's ``ObjectRangeFilter`` rule).
    :raises FileNotFoundError: missing root, split file or frame file (names the path).
    :raises FormatError: unknown class, empty or duplicate class names, empty split, bad range.
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
        points = torch.from_numpy(np.ascontiguousarray(frame.points.array[:, :4], dtype=np.float32))
        types = frame.labels.objects().types  # aligned with to_lidar_boxes' rows
        keep = np.isin(types, self.class_names)
        boxes = frame.labels.to_lidar_boxes(frame.calib).tensor[torch.from_numpy(keep)].float()
        lookup = {name: i for i, name in enumerate(self.class_names)}
        labels = torch.tensor([lookup[t] for t in types[keep]], dtype=torch.long)
        if self.point_cloud_range is not None:
            low, high = self.point_cloud_range[:3], self.point_cloud_range[3:]
            points = points[((points[:, :3] >= low) & (points[:, :3] < high)).all(dim=1)]
            centre = boxes[:, :2]
            inside = ((centre >= low[:2]) & (centre < high[:2])).all(dim=1)
            boxes, labels = boxes[inside], labels[inside]
        if self.max_points is not None and points.shape[0] > self.max_points:
            points = points[torch.randperm(points.shape[0])[: self.max_points]]
        return {
            "points": points,
            "gt_boxes": boxes.reshape(-1, 7),
            "gt_labels": labels,
            "frame_id": frame.frame_id,
        }

    @staticmethod
    def collate(samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """A batch as lists per key (point clouds and box sets differ in size)."""
        return {key: [sample[key] for sample in samples] for key in samples[0]}


def _check_class_names(class_names: Sequence[str]) -> list[str]:
    names = list(class_names)
    if not names:
        raise FormatError("KittiDataset: class_names is empty")
    for name in names:
        if name not in KITTI_CLASSES:
            hint = difflib.get_close_matches(str(name), KITTI_CLASSES, n=1)
            raise FormatError(
                f"KittiDataset: unknown class {name!r} in class_names"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
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
