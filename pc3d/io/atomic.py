"""Atomic file writes: the one place pc3d replaces a file on disk.

A write goes to a temporary file in the target's folder, is flushed and fsync'ed, renamed over the
target with ``os.replace`` and the folder is fsync'ed, so a crash (or a kill) mid-write leaves the
previous file readable and never a half-written one.

Permissions: a new file gets what a plain ``open(path, "w")`` would give it (``0o666`` less the
process umask, applied by the operating system when the temporary file is created), rather than
``mkstemp``'s ``0o600``, so another user or a serving process can read checkpoints, configs and
results. Replacing an existing file keeps its permission bits, so a file you made private with
``chmod 600`` stays private. pc3d never changes the process umask, which would be visible to every
other thread of the process.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]

_CREATE_FLAGS = (
    os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
)
_TEMP_ATTEMPTS = 100


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Replace ``path`` atomically with what ``write(handle)`` writes to a binary handle.

    If ``write`` raises (or the process is interrupted), the temporary file is removed and the
    previous content of ``path`` is untouched. A new file gets ``0o666`` less the umask; an
    existing file keeps its permission bits.

    Args:
        path: the file to create or replace; missing parent folders are created.
        write: called once with an open binary file; e.g. ``lambda f: torch.save(state, f)``.

    Returns:
        The target path.

    Raises:
        OSError: the file cannot be written; the error names ``path`` (never the temporary
            file): a folder at ``path``, a file where a parent folder should be, no permission
            to create files in the folder, a full disk. Errors ``write`` raises about other
            files pass through unchanged.
    """
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(target))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next(p for p in (folder, *folder.parents) if p.exists() and not p.is_dir())
        raise NotADirectoryError(
            errno.ENOTDIR, f"{blocking} is a file, so it cannot hold this file's folder", str(target)
        ) from None
    keep_mode = _existing_mode(target)
    try:
        fd, tmp = _create_temp(folder, target.name)
    except OSError as err:
        raise _about_target(err, target, f"cannot create files in {folder}") from err
    try:
        if keep_mode is not None:
            # Before anything is written, so the content is never more readable than the file
            # it replaces.
            os.chmod(tmp, keep_mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename not in (None, tmp):
            raise  # about another file (``write`` read one, say)
        raise _about_target(err, target, "nothing written; an earlier file there is as it was") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return target


def _about_target(err: OSError, target: Path, note: str) -> OSError:
    """``err`` (about the temporary file, or about no file) said of ``target``, with ``note``."""
    reason = err.strerror or str(err)
    return type(err)(err.errno or errno.EIO, f"{reason} ({note})", str(target))


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


def _create_temp(folder: Path, name: str) -> tuple[int, str]:
    # Mode 0o666 like open(): the kernel applies the umask (and any default ACL of the folder).
    for _ in range(_TEMP_ATTEMPTS):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file for {name!r} in {folder}")


def _existing_mode(target: Path) -> int | None:
    """The permission bits of the regular file ``target`` replaces, or None if there is none."""
    try:
        info = os.stat(target)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_mode & 0o777


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
