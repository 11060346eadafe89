"""pc3d's custom LiDAR data set format: your own scans and boxes, no conversion code to write.

A data set is a folder::

    my_data/
      dataset.yaml            classes, point columns (and optionally other folder names)
      points/<frame>.bin      one point cloud per frame: .bin, .npy, .pcd or .ply
      labels/<frame>.txt      one line per object: x y z l w h yaw class
      splits/train.txt        frame names, one per line (any split names: val.txt, test.txt ...)

``dataset.yaml``::

    classes: [Car, Pedestrian, Cyclist]      # the class names used in the label files
    point_columns: [x, y, z, intensity]      # float32 values per point of a .bin file
    # optional: points: points, labels: labels, splits: splits (folder names)

Boxes are LiDAR boxes (x forward, y left, z up), ``x y z`` the **bottom centre**, ``l w h`` the
sizes along the box's own x, y, z, ``yaw`` counter-clockwise from +x in radians: the convention
of :class:`pc3d.structures.LiDARBoxes3D`. An empty label file is a frame without objects. A
class that is not in ``classes`` is an error naming the file and line.

:func:`kitti_to_custom` converts a KITTI root (``training/velodyne``, ``label_2``, ``calib``,
``ImageSets``) into this format (DontCare regions are dropped: the format has no 2D boxes).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml

from pc3d.data.sample import Sample3D
from pc3d.errors import FormatError, did_you_mean
from pc3d.io.atomic import atomic_write_bytes, atomic_write_text
from pc3d.structures import LiDARBoxes3D, LiDARPoints

__all__ = ["CustomLidarLayout", "kitti_to_custom", "read_custom_labels", "write_custom_labels"]

_POINT_SUFFIXES = (".bin", ".npy", ".pcd", ".ply")


def read_custom_labels(path: str | os.PathLike[str], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one label file.

    Returns:
        ``(boxes float32 [M, 7], labels int64 [M])`` with labels indexing ``classes``.

    Raises:
        FormatError: a line with other than 8 fields, a non-number, or an unknown class (names the
            file and line).
    """
    path = Path(path)
    boxes, labels = [], []
    lookup = {name: i for i, name in enumerate(classes)}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 8:
            raise FormatError(
                f"{path}:{number}: expected 8 fields 'x y z l w h yaw class', got {len(fields)}"
            )
        try:
            values = [float(v) for v in fields[:7]]
        except ValueError as err:
            raise FormatError(f"{path}:{number}: {err}") from None
        if not np.all(np.isfinite(values)) or min(values[3:6]) <= 0:
            raise FormatError(
                f"{path}:{number}: box values must be finite with positive sizes, got {fields[:7]}"
            )
        name = fields[7]
        if name not in lookup:
            raise FormatError(
                f"{path}:{number}: unknown class {name!r}{did_you_mean(name, classes)}; dataset.yaml lists {list(classes)}"
            )
        boxes.append(values)
        labels.append(lookup[name])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 7), np.asarray(labels, dtype=np.int64)


def write_custom_labels(path: str | os.PathLike[str], boxes: np.ndarray, names: Sequence[str]) -> Path:
    """Write boxes ``[M, 7]`` with their class names as a label file (atomically)."""
    lines = [
        " ".join(f"{v:.4f}" for v in box) + f" {name}"
        for box, name in zip(np.asarray(boxes).reshape(-1, 7), names)
    ]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


@dataclass(frozen=True)
class CustomLidarLayout:
    """A custom LiDAR data set on disk (see the module docstring).

    Attributes:
        root: the data set folder; ``classes``, ``point_columns``: from ``dataset.yaml``;
        points_dir, labels_dir, splits_dir: the three folders.
    """

    root: Path
    classes: tuple[str, ...]
    point_columns: tuple[str, ...]
    points_dir: Path
    labels_dir: Path
    splits_dir: Path

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> CustomLidarLayout:
        """Read ``root/dataset.yaml``.

        Raises:
            FileNotFoundError: no ``dataset.yaml``.
            FormatError: a missing or malformed key (named).
        """
        root = Path(root)
        meta_path = root / "dataset.yaml"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path} does not exist: a custom LiDAR data set needs a dataset.yaml (docs/datasets.md)"
            )
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            from pc3d.config.yaml_text import yaml_error_line

            raise FormatError(yaml_error_line(err, str(meta_path))) from err
        except UnicodeDecodeError as err:
            raise FormatError(f"{meta_path}: not a UTF-8 text file ({err.reason})") from err
        if not isinstance(meta, dict):
            raise FormatError(f"{meta_path}: expected a mapping with 'classes' and 'point_columns'")
        known = {"classes", "point_columns", "points", "labels", "splits", "name", "description"}
        for key in meta:
            if key not in known:
                raise FormatError(f"{meta_path}: unknown key {key!r}{did_you_mean(str(key), sorted(known))}")
        classes = meta.get("classes")
        columns = meta.get("point_columns", ["x", "y", "z", "intensity"])
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise FormatError(f"{meta_path}: 'classes' must be a non-empty list of names")
        if not isinstance(columns, list) or list(columns[:3]) != ["x", "y", "z"]:
            raise FormatError(f"{meta_path}: 'point_columns' must start with x, y, z, got {columns!r}")
        return cls(
            root,
            tuple(classes),
            tuple(str(c) for c in columns),
            root / str(meta.get("points", "points")),
            root / str(meta.get("labels", "labels")),
            root / str(meta.get("splits", "splits")),
        )

    def frame_ids(self, split: str | None = None) -> list[str]:
        """The frames of ``splits/<split>.txt``, or every frame with a point file."""
        if split is None:
            return sorted(p.stem for p in self.points_dir.iterdir() if p.suffix in _POINT_SUFFIXES)
        path = self.splits_dir / f"{split}.txt"
        if not path.is_file():
            available = (
                sorted(p.stem for p in self.splits_dir.glob("*.txt")) if self.splits_dir.is_dir() else []
            )
            raise FileNotFoundError(f"split {split!r}: {path} does not exist (splits here: {available})")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def point_file(self, frame_id: str) -> Path:
        for suffix in _POINT_SUFFIXES:
            path = self.points_dir / f"{frame_id}{suffix}"
            if path.is_file():
                return path
        raise FileNotFoundError(
            f"frame {frame_id!r}: no point file {self.points_dir / frame_id}.{{bin,npy,pcd,ply}}"
        )

    def load_frame(
        self,
        frame_id: str,
        nan_policy: Literal["drop", "raise"] = "drop",
        use_dims: int | Sequence[int | str] | None = None,
    ) -> Sample3D:
        """Points and boxes of one frame.

        The points' columns after x, y, z are named attributes (``intensity``, ...): those of
        ``point_columns`` for a ``.bin`` file, the file's own field names otherwise.

        Args:
            frame_id: the frame's name (its files' stem).
            nan_policy: points whose x, y or z is NaN or infinite: ``"drop"`` them with a warning
                naming the file, or ``"raise"`` a ``FormatError`` naming the file (see
                :func:`pc3d.io.points.read_point_file`).
            use_dims: the columns to keep, by number (the first N), name or index, x, y, z first
                (:func:`pc3d.io.points.select_columns`); ``None`` keeps them all.
        """
        from pc3d.io.points import PointCloudData, read_point_file

        path = self.point_file(frame_id)
        if path.suffix == ".bin":
            data = read_point_file(path, num_features=len(self.point_columns), nan_policy=nan_policy)
            data = PointCloudData(data.array, self.point_columns, path)
        else:
            data = read_point_file(path, nan_policy=nan_policy)
        if use_dims is not None:
            data = data.select(use_dims)
        points = torch.from_numpy(np.ascontiguousarray(data.array, dtype=np.float32))
        fields = data.fields
        attributes = {name: i for i, name in enumerate(fields) if i >= 3}
        label_path = self.labels_dir / f"{frame_id}.txt"
        if not label_path.is_file():
            raise FileNotFoundError(
                f"frame {frame_id!r}: no label file {label_path} (an empty file means no objects)"
            )
        boxes, labels = read_custom_labels(label_path, self.classes)
        return Sample3D(
            LiDARPoints(points, points_dim=points.shape[1], attribute_dims=attributes or None),
            LiDARBoxes3D(torch.from_numpy(boxes)),
            torch.from_numpy(labels),
            frame_id,
        )


def kitti_to_custom(
    kitti_root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
) -> Path:
    """Convert a KITTI root into a custom LiDAR data set at ``out`` (points copied as ``.bin``,
    labels converted to LiDAR boxes with each frame's calibration, ``ImageSets`` as splits;
    without ``ImageSets``, every frame in ``splits/all.txt``, with a warning).

    Objects of other classes (Van, Truck, ...) and DontCare regions are left out.
    """
    from pc3d.io.kitti import load_kitti_frame

    root = Path(kitti_root)
    training = root / "training" if (root / "training").is_dir() else root
    image_sets = training.parent / "ImageSets"
    frame_ids = sorted(p.stem for p in (training / "velodyne").glob("*.bin"))
    if not frame_ids:
        raise FileNotFoundError(f"{training / 'velodyne'} holds no .bin scans: not a KITTI root")
    out = Path(out)
    for frame_id in frame_ids:  # one file pair per frame
        frame = load_kitti_frame(training, frame_id)
        atomic_write_bytes(
            out / "points" / f"{frame_id}.bin",
            np.ascontiguousarray(frame.points.array[:, :4], dtype=np.float32).tobytes(),
        )
        boxes, names = np.zeros((0, 7), np.float32), []
        if frame.labels is not None:
            objects = frame.labels.objects()
            keep = np.isin(objects.types, list(classes))
            boxes = frame.labels.to_lidar_boxes(frame.calib).tensor.numpy()[keep]
            names = [str(t) for t in objects.types[keep]]
        write_custom_labels(out / "labels" / f"{frame_id}.txt", boxes, names)
    split_files = sorted(image_sets.glob("*.txt")) if image_sets.is_dir() else []
    for split_file in split_files:
        atomic_write_text(out / "splits" / split_file.name, split_file.read_text(encoding="utf-8"))
    if not split_files:  # a KITTI copy without ImageSets: every frame, as one split to start from
        atomic_write_text(out / "splits" / "all.txt", "".join(f"{i}\n" for i in frame_ids))
        warnings.warn(
            f"{image_sets} does not exist: wrote every frame to splits/all.txt; write splits/train.txt and "
            "splits/val.txt (frame ids, one per line) to train and validate on parts of it",
            stacklevel=2,
        )
    meta = {
        "classes": list(classes),
        "point_columns": ["x", "y", "z", "intensity"],
        "description": f"converted from {root}",
    }
    atomic_write_text(out / "dataset.yaml", yaml.safe_dump(meta, sort_keys=False))
    return out
