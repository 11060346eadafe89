"""`pc3d.allocator`: large blocks come from glibc's heap and stay there after `free`."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

# Allocates 64 MiB, frees it, and reports where glibc put it (mallinfo2: `arena` = heap bytes,
# `hblkhd` = bytes in mmap'd blocks), with or without keep_freed_memory().
PROBE = """
import ctypes, json, sys
import pc3d.allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = pc3d.allocator.keep_freed_memory() if sys.argv[1] == "keep" else None
block = bytearray(64 << 20)
held = libc.mallinfo2()
del block
freed = libc.mallinfo2()
print(json.dumps({"applied": applied, "held_mmap": held.hblkhd, "held_heap": held.arena,
                  "freed_heap": freed.arena}))
"""

MIB_64 = 64 << 20


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _has_mallinfo2(), reason="needs glibc 2.33+ (mallinfo2)"
)


def _probe(mode: str, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return json.loads(result.stdout)


def test_glibc_default_maps_large_blocks_and_returns_them() -> None:
    report = _probe("default", PC3D_MALLOC="")
    assert report["held_mmap"] >= MIB_64
    assert report["freed_heap"] < MIB_64


def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them() -> None:
    report = _probe("keep", PC3D_MALLOC="")
    assert report["applied"] is True
    assert report["held_mmap"] < MIB_64  # not an mmap of its own
    assert report["held_heap"] >= MIB_64
    assert report["freed_heap"] >= MIB_64  # still the process's after free: reused without faults


def test_pc3d_malloc_system_keeps_the_default() -> None:
    report = _probe("keep", PC3D_MALLOC="system")
    assert report["applied"] is False
    assert report["held_mmap"] >= MIB_64
