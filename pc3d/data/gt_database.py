"""Ground-truth sampling: a database of objects cut out of training frames, pasted into others.

:func:`build_gt_database` collects, for every labelled object of the training split whose class
is in ``class_names``, the points inside its box, and writes them to one ``.npz`` file:

- ``points`` ``float32 [P, C]``: every object's points, ``x, y, z`` relative to its box's bottom
  centre (not turned), then the point features;
- ``offsets`` ``int64 [K + 1]``: object ``k`` owns ``points[offsets[k]:offsets[k + 1]]``;
- ``boxes`` ``float32 [K, 7]`` (LiDAR, bottom centre, where the object stood), ``labels``
  ``int64 [K]`` (index into ``class_names``), ``frame_ids`` ``str [K]``;
- ``meta``: JSON with ``class_names``, ``point_cloud_range``, ``num_features``, ``source``.

:class:`ObjectSample` (MMDetection3D's ``ObjectSample`` with its ``DataBaseSampler``) tops each
training frame up to ``sample_groups[class]`` objects per class with database objects at their
original places, skipping any that would overlap a box of the frame or another pasted one (bird's-
eye view), and removes the frame's points inside the pasted boxes before adding theirs. A database
built for other classes or another range is refused, with the reason.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor

from pc3d.data.sample import Sample3D
from pc3d.errors import FormatError
from pc3d.io.atomic import atomic_write
from pc3d.ops import boxes_overlap_bev, nms_bev
from pc3d.structures import LiDARBoxes3D, LiDARPoints

__all__ = ["GTDatabase", "ObjectSample", "build_gt_database", "gt_database_from_config"]


# How a missing or stale database is made, in the messages that ask for one.
_BUILD = "`pc3d data gt-database CONFIG` (the training config, with the same --set options)"


@dataclass(frozen=True)
class GTDatabase:
    """A loaded ground-truth database (see the module docstring for the fields)."""

    points: Tensor
    offsets: Tensor
    boxes: Tensor
    labels: Tensor
    frame_ids: np.ndarray
    class_names: tuple[str, ...]
    point_cloud_range: tuple[float, ...]
    num_features: int
    path: Path | None = None

    @property
    def num_points(self) -> Tensor:
        """``LongTensor[K]`` points of each object."""
        return self.offsets[1:] - self.offsets[:-1]

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        class_names: Sequence[str] | None = None,
        point_cloud_range: Sequence[float] | None = None,
    ) -> GTDatabase:
        """Read a database, refusing one built for other classes or another range.

        Raises:
            FileNotFoundError: no file at ``path`` (it says how to build one).
            FormatError: a corrupt file, or classes/range that differ from the ones given.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"GT database {path} does not exist; build it with {_BUILD}")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in ("points", "offsets", "boxes", "labels", "frame_ids")}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise FormatError(
                f"GT database {path} is not readable ({err}); rebuild it with {_BUILD}"
            ) from err
        names = tuple(meta["class_names"])
        rng = tuple(float(v) for v in meta["point_cloud_range"])
        if class_names is not None and tuple(class_names) != names:
            raise FormatError(
                f"GT database {path} was built for classes {list(names)}, but the config uses {list(class_names)}; "
                f"rebuild it with {_BUILD}"
            )
        if point_cloud_range is not None and not np.allclose(rng, [float(v) for v in point_cloud_range]):
            raise FormatError(
                f"GT database {path} was built for point_cloud_range {list(rng)}, but the config uses "
                f"{[float(v) for v in point_cloud_range]}; rebuild it with {_BUILD}"
            )
        return cls(
            torch.from_numpy(arrays["points"]),
            torch.from_numpy(arrays["offsets"]),
            torch.from_numpy(arrays["boxes"]),
            torch.from_numpy(arrays["labels"]),
            arrays["frame_ids"],
            names,
            rng,
            int(meta["num_features"]),
            path,
        )


def build_gt_database(
    frames: Iterable[Sample3D],
    out: str | os.PathLike[str],
    class_names: Sequence[str],
    point_cloud_range: Sequence[float],
    source: str = "",
) -> Path:
    """Cut every labelled object out of ``frames`` and write the database to ``out``.

    Args:
        frames: training frames (no augmentation); labels index ``class_names``.
        out: the ``.npz`` file to write (atomically).
        class_names: the classes of the labels.
        point_cloud_range: the range the frames were filtered with (recorded, and checked when
            the database is used).
        source: where the frames came from (recorded for people).

    Returns:
        ``out``.
    """
    chunks: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    frame_ids: list[str] = []
    counts: list[np.ndarray] = []
    num_features = None
    for frame in frames:
        if len(frame.gt_boxes) == 0:
            continue
        tensor = frame.points.tensor
        num_features = tensor.shape[1]
        owner = frame.gt_boxes.points_in_boxes_part(frame.points)  # [P]
        order = torch.argsort(owner, stable=True)
        inside = order[owner[order] >= 0]
        rel = tensor[inside].clone()
        rel[:, :3] -= frame.gt_boxes.tensor[owner[inside], :3]
        chunks.append(rel.numpy())
        counts.append(torch.bincount(owner[inside], minlength=len(frame.gt_boxes)).numpy())
        boxes.append(frame.gt_boxes.tensor[:, :7].numpy())
        labels.append(frame.gt_labels.numpy())
        frame_ids += [frame.frame_id] * len(frame.gt_boxes)
    width = num_features or 4
    offsets = np.concatenate(
        [[0], np.cumsum(np.concatenate(counts) if counts else np.zeros(0, np.int64))]
    ).astype(np.int64)
    meta = {
        "class_names": list(class_names),
        "point_cloud_range": [float(v) for v in point_cloud_range],
        "num_features": width,
        "source": source,
    }
    payload: dict[str, np.ndarray] = {
        "points": np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, width), np.float32),
        "offsets": offsets,
        "boxes": np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 7), np.float32),
        "labels": np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64),
        "frame_ids": np.asarray(frame_ids, dtype=str),
        "meta": np.asarray(json.dumps(meta)),
    }

    def write(handle: IO[bytes]) -> None:
        np.savez(handle, **payload)  # type: ignore[arg-type]

    return atomic_write(out, write)


class ObjectSample:
    """Paste database objects into a training frame (see the module docstring).

    Args:
        db_path: the database file (``pc3d data gt-database CONFIG`` writes it).
        class_names: the config's classes; must equal the database's.
        point_cloud_range: the config's range; must equal the database's.
        sample_groups: target number of objects per class name after pasting.
        min_points: objects with fewer points are never pasted (per class name; default 5).
    """

    def __init__(
        self,
        db_path: str,
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        sample_groups: Mapping[str, int],
        min_points: Mapping[str, int] | None = None,
    ) -> None:
        self.db = GTDatabase.load(db_path, class_names, point_cloud_range)
        unknown = sorted(set(sample_groups) - set(class_names)) + sorted(
            set(min_points or {}) - set(class_names)
        )
        if unknown:
            raise FormatError(f"ObjectSample: {unknown} not in class_names {list(class_names)}")
        minimum = {name: 5 for name in class_names} | dict(min_points or {})
        self.targets = torch.tensor([int(sample_groups.get(name, 0)) for name in class_names])
        enough = self.db.num_points >= torch.tensor([minimum[n] for n in class_names])[self.db.labels]
        # Candidates per class, as index lists into the database.
        self.pools = [
            torch.nonzero(enough & (self.db.labels == c)).squeeze(1) for c in range(len(class_names))
        ]

    def _draw(self, sample: Sample3D) -> Tensor:
        existing = torch.bincount(sample.gt_labels, minlength=len(self.pools))
        picks = []
        for cls, pool in enumerate(self.pools):  # one draw per class
            need = int(self.targets[cls] - existing[cls])
            if need > 0 and pool.numel():
                picks.append(pool[torch.randperm(pool.numel())[:need]])
        return torch.cat(picks) if picks else torch.zeros(0, dtype=torch.long)

    def __call__(self, sample: Sample3D) -> Sample3D:
        picks = self._draw(sample)
        if picks.numel() == 0:
            return sample
        candidates = self.db.boxes[picks]
        if len(sample.gt_boxes):
            clear = ~boxes_overlap_bev(candidates, sample.gt_boxes.tensor[:, :7]).any(dim=1)
            picks, candidates = picks[clear], candidates[clear]
        # Among the candidates, a random order decides which of two overlapping ones stays.
        keep = nms_bev(candidates, torch.rand(picks.numel()), iou_threshold=0.0) if picks.numel() else picks
        picks, candidates = picks[keep], candidates[keep]
        if picks.numel() == 0:
            return sample
        pasted = LiDARBoxes3D(candidates.clone())
        sample.points = sample.points[pasted.points_in_boxes_part(sample.points) < 0]
        starts, ends = self.db.offsets[picks], self.db.offsets[picks + 1]
        lengths = ends - starts
        rows = torch.repeat_interleave(starts - torch.cumsum(lengths, 0) + lengths, lengths) + torch.arange(
            int(lengths.sum())
        )
        new_points = self.db.points[rows].clone()
        new_points[:, :3] += torch.repeat_interleave(candidates[:, :3], lengths, dim=0)
        width = sample.points.tensor.shape[1]
        if new_points.shape[1] != width:
            raise FormatError(
                f"GT database {self.db.path} holds points with {new_points.shape[1]} values, the frame {width}"
            )
        sample.points = LiDARPoints(torch.cat([sample.points.tensor, new_points]), points_dim=width)
        sample.gt_boxes = LiDARBoxes3D(torch.cat([sample.gt_boxes.tensor[:, :7], candidates]))
        sample.gt_labels = torch.cat([sample.gt_labels, self.db.labels[picks]])
        sample.extras = {
            name: torch.cat([value, torch.zeros((picks.numel(), *value.shape[1:]), dtype=value.dtype)])
            for name, value in sample.extras.items()
        }
        return sample


def gt_database_from_config(
    config: Any, out: str | os.PathLike[str] | None = None, progress: bool = False
) -> Path:
    """Build the GT database a training config's ``ObjectSample`` step reads.

    The frames are those of ``data.train.dataset`` (its split, its class names), read without
    its pipeline; objects are cut out after the dataset's range filter. The file goes to
    ``out``, or to the ``db_path`` of the pipeline's ``ObjectSample`` step.

    Args:
        config: a loaded :class:`pc3d.config.Config`.
        out: where to write (default: the config's ``db_path``).
        progress: show a progress bar.

    Returns:
        The written file.

    Raises:
        FormatError: the config has no training data set, no ``ObjectSample`` step and no
            ``out``, or a data set that cannot give raw frames.
    """
    from pc3d.config import build

    train = (config.get("data") or {}).get("train") or {}
    if not isinstance(train.get("dataset"), dict):
        raise FormatError("the config has no data.train.dataset to build a GT database from")
    raw = copy.deepcopy(train["dataset"])
    steps = [s for s in raw.get("pipeline") or [] if isinstance(s, dict) and s.get("type") == "ObjectSample"]
    target = out if out is not None else (steps[0].get("db_path") if steps else None)
    if target is None:
        raise FormatError(
            "data.train.dataset.pipeline has no ObjectSample step: give the output file (--out)"
        )
    raw["pipeline"] = []
    dataset = build(raw, kind="dataset")
    if not hasattr(dataset, "load_sample"):
        raise FormatError(f"{type(dataset).__name__} cannot give raw frames (it has no load_sample method)")
    rng = steps[0].get("point_cloud_range") if steps else None
    rng = rng if rng is not None else getattr(dataset, "point_cloud_range", None)
    if rng is None:
        raise FormatError("no point_cloud_range (ObjectSample or the data set) to record in the GT database")
    rng_list = [float(v) for v in (rng.tolist() if isinstance(rng, Tensor) else rng)]
    indices: Iterable[int] = range(len(dataset))
    if progress:  # on a terminal only: a log file gets no bar lines
        from pc3d.engine.logging import terminal_progress

        indices = terminal_progress(indices, "pc3d data gt-database", unit="frame")

    def frames() -> Iterable[Sample3D]:
        for index in indices:
            sample = dataset.load_sample(index)[0]
            sample.keep_boxes(
                sample.gt_boxes.in_range_bev([rng_list[0], rng_list[1], rng_list[3], rng_list[4]])
            )
            yield sample

    source = str(getattr(dataset, "root", ""))
    return build_gt_database(frames(), target, dataset.class_names, rng_list, source=source)
