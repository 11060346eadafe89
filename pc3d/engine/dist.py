"""Distributed training: process-group setup from ``torchrun``'s environment, samplers, and
gathering results across processes.

``torchrun --nproc_per_node N -m pc3d train CONFIG`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`init_distributed`
reads them (``env://``) and joins the group: ``nccl`` when training on CUDA (one GPU per process,
``cuda:LOCAL_RANK``), ``gloo`` on the CPU. Without those variables the run is a single process
and nothing here talks to other processes.

Only rank 0 writes (logs, checkpoints, ``metrics.jsonl``); every rank runs the same number of
iterations, so collectives never wait on a rank that stopped early.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

from pc3d.errors import Pc3dError

__all__ = [
    "resolve_device",
    "DistInfo",
    "EvalShardSampler",
    "ResumableDistributedSampler",
    "destroy_distributed",
    "init_distributed",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run.

    Attributes:
        rank: global rank (0 when not distributed).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: where the model runs.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.distributed:
            torch_dist.barrier()

    def all_gather_object(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj: T, src: int = 0) -> T:
        """Rank ``src``'s ``obj`` on every rank."""
        if not self.distributed:
            return obj
        holder = [obj]
        torch_dist.broadcast_object_list(holder, src=src)
        return holder[0]

    def broadcast_buffers(self, module: nn.Module, src: int = 0) -> None:
        """Give every rank rank ``src``'s buffers (BatchNorm running statistics, ...), in place.

        ``DistributedDataParallel`` broadcasts them at the start of each training forward, so
        after the last step every rank holds its own update of them: an evaluation or a
        checkpoint must see one set, rank 0's (the one the checkpoint saves).
        """
        if not self.distributed:
            return
        for buffer in module.buffers():  # on the model's device, which the backend moves
            torch_dist.broadcast(buffer.data, src=src)

    def any_true(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (one small all-reduce)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self._collective_device())
        torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average scalars over ranks.

        Raises:
            Pc3dError: the ranks hold other names (a model whose loss terms depend on the batch):
                on every rank alike, where averaging by position would mix terms or wait forever.
        """
        if not self.distributed:
            return values
        keys = sorted(values)
        every = self.all_gather_object(keys)
        if any(other != keys for other in every):
            listed = "; ".join(
                f"rank {rank}: {', '.join(names) or 'none'}" for rank, names in enumerate(every)
            )
            raise Pc3dError(
                "the processes logged different values, which cannot be averaged over them ("
                f"{listed}): a model's loss() must return the same terms for every batch (a term "
                "without anything to measure can be a zero tensor)"
            )
        if not values:
            return values
        tensor = torch.tensor(
            [values[k] for k in keys], dtype=torch.float64, device=self._collective_device()
        )
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        tensor /= self.world_size
        averaged = dict(zip(keys, tensor.tolist()))
        return {key: averaged[key] for key in values}  # in the order one process logs them

    def _collective_device(self) -> torch.device:
        # nccl only moves CUDA tensors; gloo takes CPU ones.
        return self.device if torch_dist.get_backend() == "nccl" else torch.device("cpu")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise Pc3dError(f"environment variable {name}={value!r} is not an integer") from None


def resolve_device(device: str) -> torch.device:
    """The device ``auto`` (CUDA when available), ``cpu`` or ``cuda`` stands for.

    Raises:
        Pc3dError: another name, or ``cuda`` where torch sees no CUDA device (saying which torch).
    """
    if device not in ("auto", "cpu", "cuda"):
        raise Pc3dError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise Pc3dError(
            "device 'cuda' asked for, but torch sees no CUDA device "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu"
        )
    return torch.device(
        "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    )


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Pick the device and, under ``torchrun``, join the process group.

    Args:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        timeout_s: how long a collective may wait for the other ranks before failing (instead
            of hanging for ever when one of them died).

    Returns:
        This process's rank, world size, local rank and device.

    Raises:
        Pc3dError: ``cuda`` asked for but not available; fewer GPUs than local ranks; a
            ``torchrun`` variable that is not an integer.
    """
    use_cuda = resolve_device(device).type == "cuda"
    world_size = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    local_rank = _env_int("LOCAL_RANK") or 0
    if use_cuda:
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise Pc3dError(
                f"LOCAL_RANK {local_rank} but only {count} CUDA device(s) on this machine; "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not torch_dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        init_kwargs: dict[str, Any] = {
            "backend": backend,
            "init_method": "env://",
            "rank": rank,
            "world_size": world_size,
            "timeout": datetime.timedelta(seconds=timeout_s),
        }
        if use_cuda:
            init_kwargs["device_id"] = chosen  # binds the communicator to this rank's GPU
        torch_dist.init_process_group(**init_kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def destroy_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


class ResumableDistributedSampler(DistributedSampler):
    """:class:`torch.utils.data.DistributedSampler` whose order is a function of
    ``(seed, epoch)`` only, that can start part-way into an epoch, and that yields
    ``(epoch, index)`` pairs for :class:`pc3d.engine.seed.SeededDataset`.

    Each epoch's permutation is drawn from a generator seeded with ``seed + epoch`` (torch's
    rule); rank ``r`` of ``W`` takes every ``W``-th index from ``r``, the list padded by repeating
    its start so that all ranks get as many samples (or cut, with ``drop_last``). ``skip``
    leaves out this rank's first ``skip`` samples: resuming after ``k`` batches of size ``B``
    uses ``skip = k * B``.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        num_replicas: int,
        rank: int,
        shuffle: bool,
        seed: int,
        drop_last: bool,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Start epoch ``epoch`` after this rank's first ``skip`` samples."""
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip :]
        return iter([(self.epoch, index) for index in indices])

    def __len__(self) -> int:
        return max(self.num_samples - self.skip, 0)


class EvalShardSampler(Sampler[tuple[int, int]]):
    """Evaluation order: rank ``r`` of ``W`` takes indices ``r, r + W, ...`` without padding, so
    every sample is evaluated exactly once across ranks (ranks may differ by one sample)."""

    def __init__(self, length: int, num_replicas: int, rank: int) -> None:
        self.length = length
        self.num_replicas = num_replicas
        self.rank = rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(0, i) for i in range(self.rank, self.length, self.num_replicas)])

    def __len__(self) -> int:
        return max(math.ceil((self.length - self.rank) / self.num_replicas), 0)
