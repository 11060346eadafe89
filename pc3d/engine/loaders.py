"""Data loaders of a run: collation, the resumable training loader, evaluation shards, and moving
batches to the device.

Both loaders index a :class:`pc3d.engine.seed.SeededDataset` with ``(epoch, index)`` pairs, so
each sample is loaded with generators seeded from ``(seed, epoch, index)`` whatever the number of
workers or processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, default_collate

from pc3d.config import ConfigError
from pc3d.engine.dist import DistInfo, EvalShardSampler, ResumableDistributedSampler
from pc3d.engine.schema import LoaderSpec
from pc3d.engine.seed import SeededDataset, derive_seed, worker_init
from pc3d.errors import Pc3dError

__all__ = [
    "TrainLoader",
    "choose_collate",
    "collate_lists",
    "make_eval_loader",
    "make_train_loader",
    "move_to_device",
]


def move_to_device(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors (and objects with a ``to(device)`` method) inside mappings, lists and tuples,
    moved to ``device``; everything else unchanged."""
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, Mapping):
        return {k: move_to_device(v, device, non_blocking) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(move_to_device(v, device, non_blocking) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(move_to_device(v, device, non_blocking) for v in value)
    to = getattr(value, "to", None)
    if callable(to) and not isinstance(value, (str, bytes, type)):
        try:
            return to(device)
        except TypeError:
            return value  # a `to` that is not a device move
    return value


def collate_lists(samples: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """``collate: list``: a mapping of lists, one entry per sample (variable-size inputs such as
    point clouds and per-sample boxes).

    Raises:
        Pc3dError: a sample is not a mapping, or samples have different keys.
    """
    if not samples:
        return {}
    first = samples[0]
    if not isinstance(first, Mapping):
        raise Pc3dError(
            f"collate 'list' needs samples that are mappings (name -> value), got {type(first).__name__}"
        )
    keys = list(first)
    for index, sample in enumerate(samples):
        if list(sample) != keys:
            raise Pc3dError(f"collate 'list': sample {index} has keys {list(sample)}, the first has {keys}")
    return {key: [sample[key] for sample in samples] for key in keys}


def choose_collate(dataset: Any, spec: LoaderSpec) -> Callable[[list[Any]], Any]:
    """The collate function ``spec.collate`` names: ``list`` (:func:`collate_lists`), ``auto``
    (the dataset's own ``collate`` when it has one, else torch's) or ``default`` (torch's)."""
    if spec.collate == "list":
        return collate_lists
    if spec.collate == "auto":
        own = getattr(dataset, "collate", None)
        if callable(own):
            return own
    return default_collate


def make_eval_loader(dataset: Any, spec: LoaderSpec, dist: DistInfo, seed: int) -> DataLoader:
    """A loader over this rank's shard of ``dataset`` (no shuffling, no padding)."""
    seeded = SeededDataset(dataset, seed)
    return DataLoader(
        seeded,
        batch_size=spec.batch_size,
        sampler=EvalShardSampler(len(dataset), dist.world_size, dist.rank),
        num_workers=spec.num_workers,
        collate_fn=choose_collate(dataset, spec),
        pin_memory=spec.pin_memory and dist.device.type == "cuda",
        drop_last=False,
        worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(derive_seed(seed, dist.rank, 2)),
    )


@dataclass
class TrainLoader:
    """The training loader and the two things that place it in the run.

    Attributes:
        loader: yields this rank's batches of the current epoch.
        sampler: its order; ``set_position(epoch, skip)`` starts an epoch part-way.
        generator: the loader's generator (reseeded per epoch: worker seeds).
    """

    loader: DataLoader
    sampler: ResumableDistributedSampler
    generator: torch.Generator


def make_train_loader(dataset: Any, spec: LoaderSpec, dist: DistInfo, seed: int) -> TrainLoader:
    """This rank's resumable training loader over ``dataset``.

    Raises:
        ConfigError: the dataset is empty, or ``drop_last`` leaves no full batch.
    """
    if len(dataset) == 0:
        raise ConfigError(f"data.train.dataset: the dataset {type(dataset).__name__} is empty")
    seeded = SeededDataset(dataset, seed)
    sampler = ResumableDistributedSampler(
        seeded,
        num_replicas=dist.world_size,
        rank=dist.rank,
        shuffle=True if spec.shuffle is None else spec.shuffle,
        seed=seed,
        drop_last=False,
    )
    generator = torch.Generator()
    loader = DataLoader(
        seeded,
        batch_size=spec.batch_size,
        sampler=sampler,
        num_workers=spec.num_workers,
        collate_fn=choose_collate(dataset, spec),
        pin_memory=spec.pin_memory and dist.device.type == "cuda",
        drop_last=spec.drop_last,
        worker_init_fn=worker_init,
        generator=generator,
        persistent_workers=spec.persistent_workers and spec.num_workers > 0,
    )
    if len(loader) == 0:
        raise ConfigError(
            f"data.train: {len(dataset)} samples over {dist.world_size} process(es) give no "
            f"full batch of {spec.batch_size} (drop_last is set)"
        )
    return TrainLoader(loader=loader, sampler=sampler, generator=generator)
