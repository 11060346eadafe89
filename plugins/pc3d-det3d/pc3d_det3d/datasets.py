"""KITTI object detection frames as 3D detection samples (registered as ``KittiDataset``), and
frames of pc3d's custom LiDAR format (:mod:`pc3d.data.custom`, registered as
``CustomLidarDataset``).

Read straight from the official layout, no info files::

    ROOT/training/{velodyne,label_2,calib}/ID.{bin,txt,txt}   (image_2/ID.png optional)
    ROOT/ImageSets/{train,val,trainval,test}.txt

A sample is what the det3d models' ``loss(points, gt_boxes, gt_labels)`` and the KITTI metric
take::

    {"points": LiDARPoints[N, 4],      # x, y, z, intensity (attribute "intensity")
     "gt_boxes": LiDARBoxes3D[M, 7],   # x, y, z (bottom centre), l, w, h, yaw
     "gt_labels": Long[M],             # index into class_names
     "difficulty": Long[M],            # 0 easy, 1 moderate, 2 hard, -1 none (KITTI's rules)
     "kitti_labels": KittiLabels,      # the whole label file, DontCare included (evaluation)
     "calib": KittiCalib,              # the frame's calibration (evaluation, projection)
     "frame_id": str}

Labels (``label_2``, rectified camera frame) become LiDAR boxes through the frame's own
calibration. Objects of KITTI classes not in ``class_names`` (Van, Truck, ...) are dropped, and
counted once per data set in the log; a type that is no KITTI type (a typo such as ``Cra``) is an
error naming the file and line. The ``pipeline`` (augmentations, :mod:`pc3d.data.transforms`)
runs on a :class:`pc3d.data.sample.Sample3D`; frames with no points or no objects are valid.

A ``CustomLidarDataset`` sample has the keys the detectors and ``Map3DMetric`` read (``points``,
``gt_boxes``, ``gt_labels``, ``frame_id``); the points keep the columns of the data set's files.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor

from pc3d.data.custom import CustomLidarLayout, read_custom_labels
from pc3d.data.sample import Sample3D
from pc3d.errors import FormatError, did_you_mean
from pc3d.evaluation.kitti_labels import KITTI_TYPES
from pc3d.evaluation.kitti_protocol import kitti_difficulty
from pc3d.io.kitti import DEFAULT_IMAGE_SIZE, DONT_CARE, KittiCalib, load_kitti_frame, read_kitti_labels
from pc3d.structures import LiDARPoints

__all__ = ["KITTI_CLASSES", "CustomLidarDataset", "KittiDataset", "kitti_training_dir"]

#: Object classes of KITTI's ``label_2`` files (``DontCare`` is a region, not a class).
KITTI_CLASSES: tuple[str, ...] = tuple(t for t in KITTI_TYPES if t != DONT_CARE)

# A frame is usable for training when it has all three files.
_FRAME_FILES = (("velodyne", ".bin"), ("label_2", ".txt"), ("calib", ".txt"))
_LOG = logging.getLogger("pc3d.det3d")


def kitti_training_dir(root: str | os.PathLike[str]) -> Path:
    """The ``training`` folder of a KITTI root, or ``root`` itself when it is that folder.

    Raises:
        FileNotFoundError: neither ``root/training/velodyne`` nor ``root/velodyne`` exists.
    """
    path = Path(os.path.abspath(root))
    for candidate in (path / "training", path):
        if (candidate / "velodyne").is_dir():
            return candidate
    raise FileNotFoundError(
        f"KittiDataset: {root!r} (resolved to {path}) is neither a KITTI root (with training/velodyne) "
        "nor a training folder (with velodyne/); set the data set's root: --set data_root=data/kitti for "
        "the zoo configs, whose data sets read ${data_root}; --set data.train.dataset.root=... (and "
        "data.val) for a config that writes root itself"
    )


def _report_dropped(dataset: Any, dropped: Counter[str]) -> dict[str, int]:
    """Log the objects of classes outside ``class_names`` that a data set drops; their counts."""
    if dropped:
        _LOG.info(
            "%s %s: %d frames; objects of classes not in class_names dropped: %s",
            type(dataset).__name__,
            dataset.root,
            len(dataset.frame_ids),
            ", ".join(f"{k} {n}" for k, n in sorted(dropped.items())),
        )
    return dict(dropped)


class _SampleSettings:
    """What both LiDAR data sets do to a frame after reading it, checked once: the range filter,
    the pipeline, the point cap and the NaN policy (see their ``Args``)."""

    def _set_sampling(
        self,
        point_cloud_range: Sequence[float] | None,
        pipeline: Sequence[Callable[[Sample3D], Sample3D]] | None,
        max_points: int | None,
        nan_policy: str,
    ) -> None:
        name = type(self).__name__
        self.nan_policy = _check_nan_policy(name, nan_policy)
        if max_points is not None and max_points < 1:
            raise FormatError(f"{name}: max_points must be at least 1, got {max_points}")
        self.max_points = max_points
        self.point_cloud_range = _check_range(name, point_cloud_range)
        self.pipeline = list(pipeline or [])


class KittiDataset(_SampleSettings):
    """KITTI object detection frames (see the module docstring for a sample's keys).

    Frames are read when indexed; construction checks that the frames' files exist and reads
    the label files once (they are small) to reject unknown types early.

    Args:
        root: a KITTI root (holding ``training/`` and ``ImageSets/``) or its ``training`` folder.
            A relative path is resolved against the current directory.
        class_names: the classes to train on, in label order (``gt_labels`` indexes this list);
            each must be a KITTI class (:data:`KITTI_CLASSES`).
        split: which frames: a split name (``train``, ``val``, ``trainval``: read from
            ``ImageSets/<name>.txt`` next to ``training/``), a text file of frame ids, a list of
            ids (``"000001"`` or ``1``), or ``None`` for every frame with all three files.
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]``: keep the points
            inside it and the boxes whose bottom centre's (x, y) lies inside its bird's-eye
            rectangle (MMDetection3D's ``PointsRangeFilter`` / ``ObjectRangeFilter``). Applied
            before the pipeline.
        pipeline: transforms ``Sample3D -> Sample3D`` run on every sample (augmentations for
            training; leave empty for evaluation).
        max_points: if set, a scan with more points keeps a random subset of this size.
        remove_outside_fov: drop the points that do not project into image 2 (the camera's
            field of view, where KITTI has labels).
        nan_policy: scan points whose x, y or z is NaN or infinite: ``"drop"`` them with a
            warning naming the file, or ``"raise"`` a ``FormatError`` naming the file when the
            frame is read.

    Raises:
        FileNotFoundError: missing root, split file or frame file (names the path).
        FormatError: unknown class, empty or duplicate class names, empty split, bad range, bad
            ``nan_policy``, a label file with an unknown type or too few fields (file and line).
    """

    def __init__(
        self,
        root: str,
        class_names: list[str],
        split: str | list[str | int] | None = None,
        point_cloud_range: list[float] | None = None,
        pipeline: Sequence[Callable[[Sample3D], Sample3D]] | None = None,
        max_points: int | None = None,
        remove_outside_fov: bool = False,
        nan_policy: Literal["drop", "raise"] = "drop",
    ) -> None:
        self.root = kitti_training_dir(root)
        self.class_names = _check_class_names(
            "KittiDataset",
            class_names,
            KITTI_CLASSES,
            lambda name, hint: (
                f"unknown class {name} in class_names{hint}; KITTI classes: " + ", ".join(KITTI_CLASSES)
            ),
        )
        self._set_sampling(point_cloud_range, pipeline, max_points, nan_policy)
        self.remove_outside_fov = bool(remove_outside_fov)
        self.frame_ids = self._frames(split)
        self._check_labels()

    # -- frames ------------------------------------------------------------------------------

    def _split_file(self, split: str) -> Path | None:
        by_name = self.root.parent / "ImageSets" / f"{split}.txt"
        if "/" not in split and not split.endswith(".txt") and by_name.is_file():
            return by_name
        path = Path(os.path.abspath(split))
        return path if path.is_file() else None

    def _frames(self, split: str | Sequence[str | int] | None) -> list[str]:
        if split is None:
            stems = [
                {p.name.removesuffix(suffix) for p in (self.root / folder).glob(f"*{suffix}")}
                for folder, suffix in _FRAME_FILES
            ]
            frames = sorted(set.intersection(*stems))
            if not frames:
                raise FileNotFoundError(
                    f"KittiDataset: no frame in {self.root} has all of velodyne/*.bin, label_2/*.txt and calib/*.txt"
                )
            return frames
        if isinstance(split, str):
            path = self._split_file(split)
            if path is None:
                raise FileNotFoundError(
                    f"KittiDataset: split {split!r} is neither {self.root.parent / 'ImageSets' / (split + '.txt')} "
                    f"nor a file (resolved to {os.path.abspath(split)})"
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
                        f"KittiDataset: frame {stem!r} (from {where}) has no {self.root / folder / (stem + suffix)}"
                    )
        return frames

    def _check_labels(self) -> None:
        """Reject unknown types (file and line) and log the objects of other classes dropped."""
        known = set(KITTI_CLASSES) | {DONT_CARE}
        dropped: Counter[str] = Counter()
        for frame_id in self.frame_ids:  # one small text file per frame, read once
            path = self.root / "label_2" / f"{frame_id}.txt"
            labels = read_kitti_labels(path)
            for kind, line in zip(labels.types, labels.line_numbers):
                if kind not in known:
                    raise FormatError(
                        f"{path}:{line}: unknown KITTI type {str(kind)!r}"
                        f"{did_you_mean(str(kind), sorted(known))}; "
                        f"types: {', '.join(KITTI_CLASSES)}, {DONT_CARE}"
                    )
            dropped.update(str(k) for k in labels.types if k != DONT_CARE and k not in self.class_names)
        self.dropped_classes = _report_dropped(self, dropped)

    def __len__(self) -> int:
        return len(self.frame_ids)

    # -- samples -----------------------------------------------------------------------------

    def load_sample(self, index: int) -> tuple[Sample3D, Any, KittiCalib]:
        """Frame ``index`` before the range filter and the pipeline: the sample, its label
        records (float64, DontCare included) and its calibration."""
        # One read of each file; float64 label columns keep the decimals the evaluation compares.
        frame = load_kitti_frame(
            self.root, self.frame_ids[index], label_dtype=np.float64, nan_policy=self.nan_policy
        )
        records = frame.labels
        assert records is not None  # checked at construction
        scan = np.ascontiguousarray(frame.points.array[:, :4], dtype=np.float32)
        points = LiDARPoints(torch.from_numpy(scan), points_dim=4, attribute_dims={"intensity": 3})
        if self.remove_outside_fov:
            points = points[_in_image(points.tensor, frame.calib, frame.image_size or DEFAULT_IMAGE_SIZE)]
        objects = records.objects()
        keep = np.isin(objects.types, self.class_names)
        boxes = records.to_lidar_boxes(frame.calib)[torch.from_numpy(keep)]
        lookup = {name: i for i, name in enumerate(self.class_names)}
        labels = torch.tensor([lookup[t] for t in objects.types[keep]], dtype=torch.long)
        height = objects.bbox2d[:, 3] - objects.bbox2d[:, 1]
        difficulty = torch.from_numpy(kitti_difficulty(height, objects.occluded, objects.truncated)[keep])
        sample = Sample3D(points, boxes, labels, frame.frame_id, {"difficulty": difficulty})
        return sample, records, frame.calib

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample, records, calib = self.load_sample(index)
        item = _prepare(sample, self.point_cloud_range, self.pipeline, self.max_points)
        item.update({"kitti_labels": records, "calib": calib})
        return item

    @staticmethod
    def collate(samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """A batch as lists per key (point clouds and box sets differ in size).

        Args:
            samples: the samples of one batch.

        Returns:
            ``{"points": [LiDARPoints, ...], "gt_boxes": [LiDARBoxes3D, ...], ...}``.
        """
        return {key: [sample[key] for sample in samples] for key in samples[0]}


class CustomLidarDataset(_SampleSettings):
    """Frames of pc3d's custom LiDAR format (:class:`pc3d.data.custom.CustomLidarLayout`: your
    own scans and boxes, or a conversion with :func:`pc3d.data.custom.kitti_to_custom`).

    A sample is what the det3d models' ``loss(points, gt_boxes, gt_labels)`` and ``Map3DMetric``
    take::

        {"points": LiDARPoints[N, C],      # the point_columns of dataset.yaml (x, y, z first);
                                           # the columns after z are named attributes
         "gt_boxes": LiDARBoxes3D[M, 7],   # x, y, z (bottom centre), l, w, h, yaw
         "gt_labels": Long[M],             # index into class_names
         "frame_id": str}

    The model's voxel encoder must take ``C`` values per point (4 for ``x, y, z, intensity``).
    Frames are read when indexed; construction checks that every frame has its point and label
    files and reads the label files once (they are small) to reject unknown classes early.

    Args:
        root: the data set folder (holding ``dataset.yaml``); a relative path is resolved
            against the current directory.
        class_names: the classes to train on, in the model's label order (``gt_labels`` indexes
            this list): the ``classes`` of ``dataset.yaml`` or some of them. Objects of the other
            classes are dropped (counted in the log).
        split: the name of a split file ``splits/<split>.txt``, or ``None`` for every frame with a
            point file.
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]``: keep the points inside
            it and the boxes whose bottom centre's (x, y) lies inside its bird's-eye rectangle, as
            ``KittiDataset`` does. Applied before the pipeline.
        pipeline: transforms ``Sample3D -> Sample3D`` run on every sample (augmentations for
            training; leave empty for evaluation).
        max_points: if set, a scan with more points keeps a random subset of this size.
        nan_policy: points whose x, y or z is NaN or infinite: ``"drop"`` them with a warning
            naming the file, or ``"raise"`` a ``FormatError`` naming the file when the frame is
            read.
        use_dims: the point columns the model reads, when the files hold others (a ROS cloud's
            ``ring``, ``timestamp``): ``4`` keeps the first four (MMDetection3D's ``use_dim``),
            ``[x, y, z, intensity]`` picks by name, ``[0, 1, 2, 4]`` by index, x, y, z first;
            ``null`` keeps every column.

    Raises:
        FileNotFoundError: no ``dataset.yaml``, no split file, or a frame without its point or
            label file (names the path).
        FormatError: a class name that is not in ``dataset.yaml`` (the key and the classes there),
            empty or duplicate class names, an empty split, a bad range, ``max_points`` or
            ``nan_policy``, a label file with an unknown class or a malformed line (file and line).
    """

    def __init__(
        self,
        root: str,
        class_names: list[str],
        split: str | None = None,
        point_cloud_range: list[float] | None = None,
        pipeline: Sequence[Callable[[Sample3D], Sample3D]] | None = None,
        max_points: int | None = None,
        nan_policy: Literal["drop", "raise"] = "drop",
        use_dims: int | list[int | str] | None = None,
    ) -> None:
        self.layout = CustomLidarLayout.open(os.path.abspath(root))
        self.use_dims = use_dims
        self.root = self.layout.root
        classes = self.layout.classes
        self.class_names = _check_class_names(
            "CustomLidarDataset",
            class_names,
            classes,
            lambda name, hint: (
                f"class_names lists {name}, which is not a class of the data set{hint}; "
                f"{self.layout.root / 'dataset.yaml'} lists classes: {', '.join(classes)} "
                "(class_names takes them, or some of them, in the model's label order)"
            ),
        )
        self._set_sampling(point_cloud_range, pipeline, max_points, nan_policy)
        self.frame_ids = self.layout.frame_ids(split)
        if not self.frame_ids:
            where = self.layout.splits_dir / f"{split}.txt" if split is not None else self.layout.points_dir
            raise FormatError(f"CustomLidarDataset: {where} lists no frames")
        # The layout's label index -> the index in class_names (-1: a class not trained on).
        self._relabel = torch.tensor(
            [self.class_names.index(c) if c in self.class_names else -1 for c in self.layout.classes],
            dtype=torch.long,
        )
        self._check_frames()
        if use_dims is not None:  # columns the files do not have: an error now, not mid-training
            self.layout.load_frame(self.frame_ids[0], nan_policy=self.nan_policy, use_dims=use_dims)

    def _check_frames(self) -> None:
        """Every frame's point and label files exist; unknown classes are errors (file and line)."""
        dropped: Counter[str] = Counter()
        for frame_id in self.frame_ids:  # one small text file per frame, read once
            self.layout.point_file(frame_id)
            label_path = self.layout.labels_dir / f"{frame_id}.txt"
            if not label_path.is_file():
                raise FileNotFoundError(
                    f"CustomLidarDataset: frame {frame_id!r} has no label file {label_path} "
                    "(an empty file means no objects)"
                )
            _, labels = read_custom_labels(label_path, self.layout.classes)
            dropped.update(
                self.layout.classes[i]
                for i in labels.tolist()
                if self.layout.classes[i] not in self.class_names
            )
        self.dropped_classes = _report_dropped(self, dropped)

    def __len__(self) -> int:
        return len(self.frame_ids)

    def load_sample(self, index: int) -> tuple[Sample3D]:
        """Frame ``index`` before the range filter and the pipeline, labelled by ``class_names``
        (objects of other classes dropped).

        Returns:
            ``(sample,)``: the first element is the sample, as in ``KittiDataset.load_sample``
            (what ``pc3d data gt-database`` reads).
        """
        sample = self.layout.load_frame(
            self.frame_ids[index], nan_policy=self.nan_policy, use_dims=self.use_dims
        )
        labels = self._relabel[sample.gt_labels]
        sample.gt_labels = labels
        sample.keep_boxes(labels >= 0)
        return (sample,)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _prepare(self.load_sample(index)[0], self.point_cloud_range, self.pipeline, self.max_points)

    collate = staticmethod(KittiDataset.collate)


def _prepare(
    sample: Sample3D,
    point_cloud_range: Tensor | None,
    pipeline: Sequence[Callable[[Sample3D], Sample3D]],
    max_points: int | None,
) -> dict[str, Any]:
    """A loaded frame as a data set's sample: the range filter (points inside the range, boxes
    whose bottom centre's (x, y) is inside its bird's-eye rectangle), the pipeline, then at most
    ``max_points`` random points; ``points`` stays a ``LiDARPoints``."""
    if point_cloud_range is not None:
        rng = point_cloud_range
        sample.points = sample.points[sample.points.in_range_3d(rng)]
        sample.keep_boxes(sample.gt_boxes.in_range_bev(rng[[0, 1, 3, 4]]))
    for transform in pipeline:
        sample = transform(sample)
    if max_points is not None and len(sample.points) > max_points:
        sample.points = sample.points[torch.randperm(len(sample.points))[:max_points]]
    item = sample.as_batch_item()
    item["points"] = sample.points
    return item


def _in_image(points: Tensor, calib: KittiCalib, image_size: tuple[int, int]) -> Tensor:
    """``BoolTensor[N]``: the points in front of camera 2 that project into its image."""
    proj = torch.from_numpy(calib.lidar_to_img[:3]).to(points.dtype)
    homo = points[:, :3] @ proj[:, :3].T + proj[:, 3]
    depth = homo[:, 2]
    uv = homo[:, :2] / depth.clamp(min=1e-6)[:, None]
    width, height = image_size
    return (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)


def _check_nan_policy(owner: str, nan_policy: str) -> Literal["drop", "raise"]:
    """``nan_policy`` if it is ``"drop"`` or ``"raise"``.

    Raises:
        FormatError: any other value (names ``owner`` and the key).
    """
    if nan_policy not in ("drop", "raise"):
        raise FormatError(f"{owner}: nan_policy must be 'drop' or 'raise', got {nan_policy!r}")
    return cast(Literal["drop", "raise"], nan_policy)


def _check_class_names(
    owner: str, class_names: Sequence[str], known: Sequence[str], unknown: Callable[[str, str], str]
) -> list[str]:
    """``class_names`` as a list: not empty, no repeats, each in ``known``; ``unknown(name,
    suggestion)`` says what is wrong with a name that is not."""
    names = list(class_names)
    if not names:
        raise FormatError(f"{owner}: class_names is empty")
    for name in names:
        if name not in known:
            raise FormatError(f"{owner}: " + unknown(repr(name), did_you_mean(str(name), known)))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FormatError(f"{owner}: class_names lists {', '.join(duplicates)} more than once")
    return names


def _check_range(owner: str, point_cloud_range: Sequence[float] | None) -> Tensor | None:
    if point_cloud_range is None:
        return None
    values = torch.tensor([float(v) for v in point_cloud_range], dtype=torch.float32)
    if values.shape != (6,) or not bool(torch.isfinite(values).all()):
        raise FormatError(
            f"{owner}: point_cloud_range must be 6 finite numbers [x_min, y_min, z_min, "
            f"x_max, y_max, z_max], got {list(point_cloud_range)}"
        )
    if not bool((values[:3] < values[3:]).all()):
        raise FormatError(f"{owner}: point_cloud_range needs min < max per axis, got {values.tolist()}")
    return values
