"""spconv's compiled `PointToVoxel` as a backend of :func:`pc3d.ops.voxelize.hard_voxelize` (CPU,
float32): one generator per setting, reused across calls, its buffers kept clean and its grid
hash in huge pages. spconv is optional and imported (:mod:`pc3d.ops.spconv_module`) only when a
generator is built.
"""

from __future__ import annotations

import functools
import mmap
import threading

import torch
from torch import Tensor

from pc3d.errors import MissingDependencyError
from pc3d.ops.spconv_module import import_spconv

__all__ = ["SpconvVoxelizer", "spconv_available", "spconv_voxelizer"]


def spconv_available() -> bool:
    """True when spconv's `PointToVoxel` can be imported."""
    return _point_to_voxel_class() is not None


@functools.cache
def _point_to_voxel_class() -> type | None:
    try:
        utils = import_spconv("utils", "spconv's voxelizer")
    except MissingDependencyError:
        return None
    return utils.PointToVoxel


# Voxel hashes at least this large go into huge pages (spconv's is a dense int32 grid).
_HUGE_TABLE_BYTES = 16 << 20


def _in_huge_pages(table: Tensor) -> Tensor:
    """A copy of `table` in memory the kernel may back with transparent huge pages.

    spconv looks every point up in a dense hash of the whole grid (SECOND: 344 MB); the lookups
    are scattered, so with 4 KiB pages most of them miss the TLB. On 2 MiB pages the same kernel
    runs markedly faster (about 10-20% of the whole call for SECOND's grid here). Linux only, and
    only where transparent huge pages are enabled ("always" or "madvise"); elsewhere, or for small
    tables, `table` is returned as it is.
    """
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    nbytes = table.numel() * table.element_size()
    if advice is None or nbytes < _HUGE_TABLE_BYTES:
        return table
    try:
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.madvise(advice)
    except (OSError, ValueError, AttributeError):
        return table
    # The tensor keeps `region` alive.
    return torch.frombuffer(region, dtype=table.dtype).view(table.shape).copy_(table)


class SpconvVoxelizer:
    """spconv's `PointToVoxel` for one setting, reused across calls.

    `PointToVoxel` preallocates its output buffer `[max_voxels, max_points, C]` and a dense int32
    hash of the whole grid (SECOND's 1408 x 1600 x 40 grid: 344 MB), and by default zeroes the
    whole output buffer on every call (pillars: 40000 x 32 x 4 floats, 20 MB) although a scan
    fills a fraction of it. Here the buffer is kept clean instead: after each call only the
    voxels just written are zeroed again, so the next call can skip the full clear and gives
    the same result. A large hash is moved into huge pages (`_in_huge_pages`).

    Args:
        size: `(x, y, z)` voxel sizes, as validated by :func:`pc3d.ops.voxel_geometry.grid_cells`.
        rng: `(x_min, y_min, z_min, x_max, y_max, z_max)`.
        channels: columns of the points (3 + extra features).
        max_points: points stored per voxel.
        max_voxels: voxels kept.

    Raises:
        MissingDependencyError: spconv is not installed.
    """

    def __init__(
        self, size: tuple[float, ...], rng: tuple[float, ...], channels: int, max_points: int, max_voxels: int
    ) -> None:
        cls = _point_to_voxel_class()
        if cls is None:
            raise MissingDependencyError(
                "backend='spconv' needs spconv: pip install spconv (or spconv-cu120)"
            )
        self.generator = cls(
            vsize_xyz=list(size),
            coors_range_xyz=list(rng),
            num_point_features=channels,
            max_num_voxels=max_voxels,
            max_num_points_per_voxel=max_points,
            device=torch.device("cpu"),
        )
        hash_table = getattr(self.generator, "hashdata", None)
        if isinstance(hash_table, Tensor) and hash_table.dtype == torch.int32 and hash_table.is_contiguous():
            self.generator.hashdata = _in_huge_pages(hash_table)
        # The generator writes into its own buffers: one call at a time.
        self.lock = threading.Lock()
        self.clean = True  # False while a call is under way, or after one failed

    def __call__(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Voxelize `points` (`float32[N, C]` on the CPU).

        Args:
            points: the cloud, with the channel count the generator was built for.

        Returns:
            `(voxels [V, max_points, C] zero-padded, coords IntTensor[V, 3] as z, y, x,
            num_points IntTensor[V])`, the fields of :class:`pc3d.ops.voxelize.HardVoxels`.
        """
        with self.lock:  # the generator runs under no_grad itself
            clear = not self.clean
            self.clean = False
            voxels, coords, num_points = self.generator(points.contiguous(), clear_voxels=clear)
            self.generator.voxels[: voxels.shape[0]].zero_()
            self.clean = True
        return voxels, coords, num_points


# Keyed by everything `PointToVoxel` is built from (spconv runs on the CPU only here); two
# settings at most, as each holds a dense hash of its grid.
@functools.lru_cache(maxsize=2)
def spconv_voxelizer(
    size: tuple[float, ...],
    rng: tuple[float, ...],
    channels: int,
    max_points: int,
    max_voxels: int,
    device: str,
) -> SpconvVoxelizer:
    """The cached :class:`SpconvVoxelizer` of a setting (built on first use).

    Args:
        size: `(x, y, z)` voxel sizes.
        rng: `(x_min, y_min, z_min, x_max, y_max, z_max)`.
        channels: columns of the points.
        max_points: points stored per voxel.
        max_voxels: voxels kept.
        device: the points' device, as a string (part of the cache key only).

    Returns:
        The voxelizer of this setting.
    """
    del device  # part of the key: generators hold buffers on one device
    return SpconvVoxelizer(size, rng, channels, max_points, max_voxels)
