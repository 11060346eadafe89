"""Atomic file writes: the one place pc3d replaces a file on disk.

A write goes to a temporary file in the target's folder, is flushed and fsync'ed, renamed over the
target with ``os.replace`` and the folder is fsync'ed, so a crash (or a kill) mid-write leaves the
previous file readable and never a half-written one. The new file gets the permissions a plain
``open(path, "w")`` would give (``0o666`` less the process umask) rather than ``mkstemp``'s
``0o600``, so another user or a serving process can read checkpoints, configs and results.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "default_file_mode"]


def default_file_mode() -> int:
    """The permission bits ``open(path, "w")`` gives a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Replace ``path`` atomically with what ``write(handle)`` writes to a binary handle.

    If ``write`` raises (or the process is interrupted), the temporary file is removed and the
    previous content of ``path`` is untouched.

    Args:
        path: the file to create or replace; missing parent folders are created.
        write: called once with an open binary file; e.g. ``lambda f: torch.save(state, f)``.

    Returns:
        The target path.
    """
    target = Path(path)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return target


def atomic_write_bytes(path: str | os.PathLike[str], payload: bytes) -> Path:
    """Replace ``path`` atomically with ``payload`` (see `atomic_write`).

    Args:
        path: the file to create or replace.
        payload: its new content.

    Returns:
        The target path.
    """
    return atomic_write(path, lambda handle: handle.write(payload))


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` atomically with ``text`` encoded as ``encoding`` (see `atomic_write`).

    Args:
        path: the file to create or replace.
        text: its new content.
        encoding: the text encoding.

    Returns:
        The target path.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk too. Not every platform
    # lets a directory be opened for fsync; the write itself has already succeeded then.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
