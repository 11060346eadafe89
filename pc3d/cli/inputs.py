"""What the commands share about their inputs: existence checks and KITTI roots.

Standard library only (the CLI's light commands import this module). Whether a file holds points
or boxes is `pc3d.io.file_kinds`'s rule.
"""

from __future__ import annotations

from pathlib import Path


def must_exist(path: Path, what: str = "") -> None:
    """Check that `path` is an existing file.

    Args:
        path: The file.
        what: How the message names it (an option such as `--calib`); empty for the main input.

    Raises:
        FileNotFoundError: it does not exist (`"<what>: <path> does not exist"`).
        IsADirectoryError: it is a folder.
    """
    prefix = f"{what}: " if what else ""
    if not path.exists():
        raise FileNotFoundError(f"{prefix}{path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{prefix}{path} is a folder, expected a file")


def writable_file(path: Path, what: str) -> None:
    """Check, before any work, that a file can be written at `path`: it is not a folder and
    no part of its folder is a file.

    Args:
        path: The file to write (it may exist: it is then replaced).
        what: How the message names it (an option such as `--json`).

    Raises:
        IsADirectoryError: `path` is a folder.
        NotADirectoryError: a part of its folder is a file.
    """
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, expected a file to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{what} {path}: {parent} is a file, not a folder")
            break


def kitti_training_dir(root: Path) -> Path:
    """The folder holding `velodyne/`, `calib/`, ... given a KITTI root or its `training` folder.

    A KITTI object root holds `training/` (and `testing/`); pc3d reads frames from `training`.
    Anything else is returned unchanged, for the reader to report what is missing.
    """
    training = root / "training"
    if not (root / "velodyne").is_dir() and training.is_dir():
        return training
    return root
