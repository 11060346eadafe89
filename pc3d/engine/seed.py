"""Seeds, deterministic mode, and random-number state that survives a checkpoint.

Three sources of randomness matter to a training run, and each is pinned down differently:

- the model's own random draws (initialisation, dropout): the process-wide torch / numpy /
  Python generators, seeded once at start (:func:`seed_everything`) and saved in every checkpoint
  (:func:`capture_rng_state` / :func:`restore_rng_state`);
- the data order: a pure function of ``(seed, epoch)`` (see :mod:`pc3d.engine.dist`'s sampler);
- data augmentation: each sample is drawn with generators seeded from ``(seed, epoch, index)``
  (:class:`SeededDataset`), so what a sample looks like does not depend on the number of loader
  workers, the number of processes or where a run was resumed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

# Docstring and __all__ shaped like pc3d.engine.dist's: module prose and a name list, nothing to share.
__all__ = [
    "SeededDataset",
    "preserved_rng",
    "capture_rng_state",
    "derive_seed",
    "restore_rng_state",
    "seed_everything",
    "set_deterministic",
]


_MASK64 = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    # SplitMix64's finaliser: neighbouring inputs give unrelated outputs (and it is cheap, which
    # matters once per sample).
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers (``seed, epoch, index``), well spread even for
    neighbouring inputs."""
    mixed = 0
    for part in parts:
        mixed = _splitmix64(mixed ^ (int(part) & _MASK64))
    return mixed & 0xFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_deterministic(enabled: bool) -> None:
    """Deterministic mode: ``torch.use_deterministic_algorithms`` (an op without a
    deterministic implementation raises instead of silently varying), cuDNN deterministic and
    not benchmarking. ``CUBLAS_WORKSPACE_CONFIG`` is set when unset, as cuBLAS needs it for
    deterministic matrix products (it must be set before the first CUDA call)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if enabled or torch.are_deterministic_algorithms_enabled():
        # Switching it (even off) imports torch's compiler stack: seconds of start-up, skipped
        # when there is nothing to switch.
        torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def capture_rng_state() -> dict[str, Any]:
    """The process's generator states as tensors and plain data (loadable with
    ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        # This process's device only: touching every GPU would create a CUDA context on each,
        # from every rank.
        "cuda": [torch.cuda.get_rng_state()]
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": list(internal), "gauss_next": gauss_next},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`: the generators continue exactly where they were."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda[0])  # the current device's (see capture_rng_state)
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))


@contextmanager
def preserved_rng(device: torch.device | None = None) -> Iterator[None]:
    """Run a block with torch's CPU generator (and ``device``'s, for a CUDA device), numpy's and
    Python's saved before and restored after: what the block draws does not change what the
    run draws next (evaluation, data loading in the main process)."""
    torch_state = torch.get_rng_state()
    cuda_device = device if device is not None and device.type == "cuda" else None
    cuda_state = torch.cuda.get_rng_state(cuda_device) if cuda_device is not None else None
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_state is not None and cuda_device is not None:
            torch.cuda.set_rng_state(cuda_state, cuda_device)
        np.random.set_state(numpy_state)
        random.setstate(python_state)


class SeededDataset(Dataset):
    """Wraps a dataset so that sample ``index`` in epoch ``epoch`` is produced with torch,
    numpy and Python generators seeded from ``(seed, epoch, index)``.

    It is indexed with ``(epoch, index)`` pairs (the engine's sampler yields them). In the main
    process (``num_workers: 0``) the caller's generators are restored afterwards, so that loading
    data does not disturb the model's random draws (dropout); the data loader fetches a whole
    batch through :meth:`__getitems__`, so that this costs one save and restore per batch.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def _load(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        sample_seed = derive_seed(self.seed, epoch, index)
        random.seed(sample_seed)
        np.random.seed(sample_seed)
        # CPU generator only: torch.manual_seed would also reseed CUDA, i.e. the model's dropout
        # stream on a GPU.
        torch.random.default_generator.manual_seed(sample_seed)
        return self.dataset[index]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        if get_worker_info() is not None:
            # A loader worker: its generators serve nothing else.
            return [self._load(key) for key in keys]
        with preserved_rng():
            return [self._load(key) for key in keys]

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the wrapper lacks (e.g. ``collate``); avoid recursion while
        # unpickling in a worker, when ``dataset`` is not set yet.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and ``random`` in each worker from torch's
    per-worker seed (base seed from the loader's generator + worker id), so workers never share
    a numpy stream; samples are reseeded per index anyway (:class:`SeededDataset`)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


WorkerInit = Callable[[int], None]
