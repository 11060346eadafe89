"""One training run at a time in a work directory.

Two runs writing one folder (a second ``pc3d train`` started by mistake, a ``--resume`` while the
workers of a killed torchrun launcher still run) would overwrite each other's checkpoints and
logs. Rank 0 holds an exclusive ``flock`` on ``WORK_DIR/.pc3d-run.lock`` while it trains; the
operating system releases it when the process ends, however it ends, so a crash leaves no stale
lock. Where the file system has no ``flock`` (some network mounts) the run goes on unlocked.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

from pc3d.errors import Pc3dError

__all__ = ["LOCK_NAME", "WorkDirLock"]

LOCK_NAME = ".pc3d-run.lock"


class WorkDirLock:
    """The work directory's lock, taken on construction.

    Raises:
        Pc3dError: another process holds it (naming that process when the file says).
    """

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / LOCK_NAME
        self._handle: IO[str] | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock on this platform
            return
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                raise Pc3dError(
                    f"{work_dir}: another pc3d run is training in this work directory"
                    f"{f' ({holder})' if holder else ''}; wait for it to end, stop it, or use another --work-dir"
                ) from None
            handle.close()  # no flock here (a network file system): run unlocked
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Let another run in (also done by the operating system when the process ends)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
