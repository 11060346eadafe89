"""Labelled point clouds as segmentation samples.

A sample is what :class:`pc3d_seg.models.PointSegmentor` takes, plus a name::

    {"points": Tensor[N, C],   # x, y, z, then intensity (LiDAR) or r, g, b in [0, 1] (indoor)
     "labels": Long[N],        # class index, or -1 (ignored)
     "name": str}              # frame or scene, for messages and outputs

Data sets: :class:`SyntheticLidarSeg` (pc3d's synthetic scenes, generated from ``(seed, index)``
or read from a folder ``pc3d data synth --point-labels`` wrote), :class:`SemanticKittiSeg` and
:class:`IndoorSeg` (S3DIS, ScanNet). A relative root is resolved against the current directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from pc3d.data.synthetic import SEMANTIC_CLASSES, generate_frame
from pc3d.errors import FormatError
from pc3d.io.semseg import (
    S3DIS_LABEL_MAP,
    SCANNET_LABEL_MAP,
    SEMANTICKITTI_LABEL_MAP,
    LabelMap,
    read_indoor_points,
    read_semantic_mask,
    read_semantickitti_labels,
    read_semantickitti_scan,
)

__all__ = ["SYNTHETIC_LABEL_MAP", "IndoorSeg", "SemanticKittiSeg", "SyntheticLidarSeg", "collate_clouds"]

Transform = Callable[[dict[str, Any]], dict[str, Any]]

#: The synthetic scenes' per-point classes are their class indices.
SYNTHETIC_LABEL_MAP = LabelMap(
    "the synthetic LiDAR classes",
    tuple(SEMANTIC_CLASSES),
    {i: i for i in range(len(SEMANTIC_CLASSES))},
    max_raw=len(SEMANTIC_CLASSES) - 1,
)


def collate_clouds(samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """A batch as lists per key (clouds differ in size)."""
    return {key: [sample[key] for sample in samples] for key in samples[0]}


class _SegDataset:
    """Shared parts: class-name check, transforms, the sample dict, collation."""

    label_map: LabelMap

    def __init__(
        self,
        class_names: Sequence[str] | None,
        transforms: Sequence[Transform] | None,
        owner: str,
        nan_policy: Literal["drop", "raise"] = "drop",
    ) -> None:
        if class_names is not None:
            self.label_map.check_class_names(class_names, f"{owner}.class_names")
        if nan_policy not in ("drop", "raise"):
            raise FormatError(f"{owner}: nan_policy must be 'drop' or 'raise', got {nan_policy!r}")
        self.class_names = list(self.label_map.class_names)
        self.transforms = list(transforms or [])
        self.nan_policy = nan_policy

    def _finite(self, points: np.ndarray, labels: np.ndarray, source: Path) -> tuple[np.ndarray, np.ndarray]:
        """Points (and their labels) with a NaN or infinite value in any column dropped with a
        warning, or refused (``nan_policy``), naming the file."""
        from pc3d.inference import finite_rows

        rows = finite_rows(torch.from_numpy(points), str(source), self.nan_policy)
        return (points, labels) if rows is None else (points[rows.numpy()], labels[rows.numpy()])

    def _sample(self, points: np.ndarray, labels: np.ndarray, name: str) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
            "name": name,
        }
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    collate = staticmethod(collate_clouds)


def _resolve_root(root: str, owner: str, expect: str) -> Path:
    path = Path(os.path.abspath(root))
    if not path.is_dir():
        raise FileNotFoundError(
            f"{owner}: root {root!r} is not a folder (resolved against {os.getcwd()} to {path}); pass the folder "
            f"holding {expect}, e.g. --set data.train.dataset.root=..."
        )
    return path


def val_frames(count: int, val_fraction: float) -> np.ndarray:
    """Which of ``count`` frames are validation frames: every k-th, as ``write_synthetic_kitti`` splits."""
    mask = np.zeros(count, dtype=bool)
    num_val = int(round(count * val_fraction))
    if num_val:
        mask[np.linspace(0, count - 1, num_val).round().astype(int)] = True
    return mask


class SyntheticLidarSeg(_SegDataset):
    """pc3d's synthetic LiDAR scenes with per-point classes (``pc3d.data.synthetic``).

    Without ``root`` scene ``i`` is generated from ``(seed, i)`` on first use and kept in memory;
    with ``root`` the frames ``pc3d data synth ROOT --scenes N --seed S --point-labels`` wrote are
    read (``training/velodyne/*.bin`` + ``training/semantic/*.label``). Both give the same split
    of the same scenes.

    Args:
        num_scenes: scenes 0 .. num_scenes - 1 of ``seed`` (ignored with ``root``).
        split: ``"train"``, ``"val"`` or ``"all"`` (every k-th scene is a val scene).
        seed: the scene seed.
        val_fraction: the share of val scenes.
        root: a folder written by ``pc3d data synth --point-labels``.
        class_names: checked against ``SEMANTIC_CLASSES`` when given.
        transforms: augmentations, applied in order.
        cache: keep generated or read scenes in memory (only the main process's copy lasts
            when the loader uses workers).
    """

    label_map = SYNTHETIC_LABEL_MAP

    def __init__(
        self,
        num_scenes: int = 100,
        split: Literal["train", "val", "all"] = "train",
        seed: int = 0,
        val_fraction: float = 0.2,
        root: str | None = None,
        class_names: list[str] | None = None,
        transforms: list[Any] | None = None,
        cache: bool = True,
    ) -> None:
        super().__init__(class_names, transforms, "SyntheticLidarSeg")
        if split not in ("train", "val", "all"):
            raise FormatError(f"SyntheticLidarSeg: split must be 'train', 'val' or 'all', got {split!r}")
        self.seed, self.cache = int(seed), bool(cache)
        self.root = (
            None if root is None else _resolve_root(root, "SyntheticLidarSeg", "training/ and ImageSets/")
        )
        if self.root is not None:
            split_file = self.root / "ImageSets" / f"{'trainval' if split == 'all' else split}.txt"
            if not split_file.is_file():
                raise FileNotFoundError(f"SyntheticLidarSeg: split file {split_file} does not exist")
            self.frames = [int(line) for line in split_file.read_text().split()]
        else:
            if num_scenes < 1:
                raise FormatError(f"SyntheticLidarSeg: num_scenes must be at least 1, got {num_scenes}")
            is_val = val_frames(int(num_scenes), val_fraction)
            chosen = np.ones_like(is_val) if split == "all" else (is_val if split == "val" else ~is_val)
            self.frames = np.flatnonzero(chosen).tolist()
        if not self.frames:
            raise FormatError(f"SyntheticLidarSeg: the {split} split holds no scene")
        self._store: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def _load(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        if frame in self._store:
            return self._store[frame]
        if self.root is None:
            sweep = generate_frame(self.seed, frame).sweep
            loaded = (sweep.points, sweep.semantic.astype(np.int64))
        else:
            scan = self.root / "training" / "velodyne" / f"{frame:06d}.bin"
            label_file = self.root / "training" / "semantic" / f"{frame:06d}.label"
            points = read_semantickitti_scan(scan)
            raw, _ = read_semantickitti_labels(label_file, len(points))
            loaded = (points, self.label_map.apply(raw, label_file))
        if self.cache:
            self._store[frame] = loaded
        return loaded

    def __getitem__(self, index: int) -> dict[str, Any]:
        points, labels = self._load(self.frames[index])
        return self._sample(points, labels, f"{self.frames[index]:06d}")


class SemanticKittiSeg(_SegDataset):
    """SemanticKITTI scans (``sequences/XX/velodyne/*.bin`` + ``labels/*.label``), 19 classes.

    Raw ids go through the official learning map (:data:`pc3d.io.semseg.SEMANTICKITTI_LABEL_MAP`);
    unlabelled and outlier points get label -1 (ignored).

    Args:
        root: the folder holding ``sequences/``.
        sequences: which sequences (``"00"`` or ``0``); the usual split trains on 00-07 and 09-10
            and validates on 08.
        class_names: checked against the learning map's 19 classes when given.
        transforms: augmentations, applied in order.
        nan_policy: points with a NaN or infinite value in any column: ``"drop"`` them (and
            their labels) with a warning naming the scan, or ``"raise"`` an error.

    Raises:
        FileNotFoundError: a missing root, sequence folder or label file (names the path).
    """

    label_map = SEMANTICKITTI_LABEL_MAP

    def __init__(
        self,
        root: str,
        sequences: Sequence[str | int] = ("08",),
        class_names: list[str] | None = None,
        transforms: list[Any] | None = None,
        nan_policy: Literal["drop", "raise"] = "drop",
    ) -> None:
        super().__init__(class_names, transforms, "SemanticKittiSeg", nan_policy)
        base = _resolve_root(root, "SemanticKittiSeg", "sequences/XX/velodyne and sequences/XX/labels")
        self.scans: list[tuple[Path, Path]] = []
        for sequence in sequences:
            folder = base / "sequences" / (f"{sequence:02d}" if isinstance(sequence, int) else str(sequence))
            scans = sorted((folder / "velodyne").glob("*.bin"))
            if not scans:
                raise FileNotFoundError(f"SemanticKittiSeg: no scan in {folder / 'velodyne'}")
            for scan in scans:
                label = folder / "labels" / f"{scan.stem}.label"
                if not label.is_file():
                    raise FileNotFoundError(f"SemanticKittiSeg: scan {scan} has no label file {label}")
                self.scans.append((scan, label))

    def __len__(self) -> int:
        return len(self.scans)

    def __getitem__(self, index: int) -> dict[str, Any]:
        scan, label_file = self.scans[index]
        points = read_semantickitti_scan(scan, nan_policy="keep")
        raw, _ = read_semantickitti_labels(label_file, len(points))
        points, labels = self._finite(points, self.label_map.apply(raw, label_file), scan)
        return self._sample(points, labels, f"{scan.parents[1].name}/{scan.stem}")


class IndoorSeg(_SegDataset):
    """S3DIS or ScanNet scenes as MMDetection3D stores them: ``points/<scene>.bin`` (float32 x, y,
    z, r, g, b) and ``semantic_mask/<scene>.bin`` (int64 per point).

    Colours become ``[0, 1]``. S3DIS ids are its 13 classes; ScanNet's NYU40 ids go to its 20
    benchmark classes, other ids to -1 (ignored).

    Args:
        root: the folder holding ``points/`` and ``semantic_mask/``.
        dataset: ``"s3dis"`` or ``"scannet"`` (chooses the class map).
        scenes: scene names (file stems); None: every scene in ``points/``, sorted. S3DIS's usual
            split validates on Area_5.
        class_names: checked against the class map when given.
        transforms: augmentations (e.g. ``SegCrop`` for room patches), applied in order.
        nan_policy: as for :class:`SemanticKittiSeg`.

    Raises:
        FileNotFoundError: a missing root or file (names the path).
        FormatError: an unknown ``dataset``.
    """

    def __init__(
        self,
        root: str,
        dataset: Literal["s3dis", "scannet"] = "s3dis",
        scenes: list[str] | None = None,
        class_names: list[str] | None = None,
        transforms: list[Any] | None = None,
        nan_policy: Literal["drop", "raise"] = "drop",
    ) -> None:
        maps = {"s3dis": S3DIS_LABEL_MAP, "scannet": SCANNET_LABEL_MAP}
        if dataset not in maps:
            raise FormatError(f"IndoorSeg: dataset must be 's3dis' or 'scannet', got {dataset!r}")
        self.label_map = maps[dataset]
        super().__init__(class_names, transforms, "IndoorSeg", nan_policy)
        self.root = _resolve_root(root, "IndoorSeg", "points/ and semantic_mask/")
        names = scenes if scenes is not None else sorted(p.stem for p in (self.root / "points").glob("*.bin"))
        if not names:
            raise FileNotFoundError(f"IndoorSeg: no scene in {self.root / 'points'}")
        for name in names:
            for folder in ("points", "semantic_mask"):
                if not (self.root / folder / f"{name}.bin").is_file():
                    raise FileNotFoundError(
                        f"IndoorSeg: scene {name!r} has no {self.root / folder / (name + '.bin')}"
                    )
        self.scenes = list(names)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.scenes[index]
        points_file = self.root / "points" / f"{name}.bin"
        points = read_indoor_points(points_file, nan_policy="keep").copy()
        mask_file = self.root / "semantic_mask" / f"{name}.bin"
        labels = self.label_map.apply(read_semantic_mask(mask_file, len(points)), mask_file)
        points, labels = self._finite(points, labels, points_file)
        points[:, 3:6] /= 255.0
        return self._sample(points, labels, name)
