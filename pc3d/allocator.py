"""Keep freed memory in the process: large CPU tensors without a page fault per 4 KiB.

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB to 32 MiB, adjusted as the
program runs) with a fresh ``mmap`` and gives it back to the kernel on ``free``. A detector's
feature maps are such blocks (PointPillars' 64 x 496 x 432 scatter canvas is 55 MB, its neck
output 82 MB), allocated and freed once per frame, so every frame pays for page faults and for the
kernel zeroing those pages again: on a 2-core CPU a plain PointPillars or SECOND frame takes
1.15x to 1.5x as long as with freed memory kept (``python tools/bench.py models``,
docs/benchmarks.md; the inference-optimised models allocate less and gain little).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve large blocks from its heap and to keep
freed memory there for the next allocation: after the first frame, maps are reused without
faults. The price is that the process keeps its peak heap size (as PyTorch's CUDA caching
allocator does on a GPU). The ``pc3d`` command line calls it when it starts; Python users call it
themselves. ``PC3D_MALLOC=system`` leaves glibc's defaults alone. Other C libraries (musl, macOS,
Windows) are left as they are.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["ENV_VARIABLE", "keep_freed_memory"]

#: Set to ``system`` to keep glibc's own allocation policy.
ENV_VARIABLE = "PC3D_MALLOC"

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Largest trim threshold mallopt takes (an int): free memory is kept up to 2 GiB above the heap's top.
_TRIM_THRESHOLD = 2**31 - 1

_applied = False


def keep_freed_memory() -> bool:
    """Serve large blocks from glibc's heap and keep freed memory there for reuse.

    Safe to call more than once; only the first call changes anything.

    Returns:
        True when glibc's allocator is now (or was already) set this way; False where there is
        no glibc, or when ``PC3D_MALLOC=system`` asks for the default policy.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(ENV_VARIABLE, "").strip().lower() == "system":
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    # No mmap for any block (large ones come from the heap) and no trimming of the heap's top.
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _applied


def _glibc_mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """The C library's ``int mallopt(int, int)`` when it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)  # the symbols the process already has, the C library's among them
        libc.gnu_get_libc_version  # noqa: B018  (an AttributeError where the C library is not glibc)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt
