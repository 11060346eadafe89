"""What the commands share about their inputs: existence checks, what a file holds, KITTI roots.

Standard library at the top only (the CLI's light commands import this module); numpy is
imported by `file_kind` when it has to look into a `.npy` file.
"""

from __future__ import annotations

from pathlib import Path

from pc3d.errors import FormatError

BOX_SUFFIXES = (".json", ".csv", ".txt")
POINT_SUFFIXES = (".bin", ".pcd", ".ply")
KINDS = ("auto", "points", "boxes")
# A box row has at least 7 values (x, y, z, three sizes, yaw): fewer columns can only be points.
MIN_BOX_COLUMNS = 7


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


def file_kind(path: Path, what: str = "auto") -> str:
    """Whether `path` holds `"points"` or `"boxes"`: the one rule of `pc3d info` and `pc3d convert`.

    `.json`, `.csv` and `.txt` (including KITTI `label_2`) are box files; `.bin`, `.pcd` and
    `.ply` are point clouds. A `.npy` is read by its header: named fields, or fewer than 7
    columns, can only be points; a plain array of 7 or more columns could be either, and needs
    `--what`.

    Args:
        path: The file (it must exist for a `.npy`).
        what: `"points"` or `"boxes"` to say it, `"auto"` to apply the rule.

    Returns:
        `"points"` or `"boxes"`.

    Raises:
        FormatError: an unknown extension, an unreadable `.npy` header, or a `.npy` that could
            hold either (the message says to pass `--what`).
    """
    if what != "auto":
        return what
    suffix = path.suffix.lower()
    if suffix in BOX_SUFFIXES:
        return "boxes"
    if suffix in POINT_SUFFIXES:
        return "points"
    if suffix == ".npy":
        shape, named = _npy_layout(path)
        if named or (len(shape) == 2 and shape[1] < MIN_BOX_COLUMNS):
            return "points"
        raise FormatError(
            f"{path}: a .npy array of shape {shape} may hold boxes or points; pass --what boxes or --what points"
        )
    raise FormatError(
        f"{path}: unknown extension {path.suffix!r}; boxes: .json .csv .txt .npy, points: .bin .npy .pcd .ply"
    )


def _npy_layout(path: Path) -> tuple[tuple[int, ...], bool]:
    """Shape of a `.npy` array and whether its dtype has named fields, from the header only."""
    import numpy as np

    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
    except (ValueError, EOFError) as err:
        raise FormatError(f"{path}: not a readable .npy array ({err})") from None
    return tuple(int(n) for n in shape), np.dtype(dtype).names is not None


def kitti_training_dir(root: Path) -> Path:
    """The folder holding `velodyne/`, `calib/`, ... given a KITTI root or its `training` folder.

    A KITTI object root holds `training/` (and `testing/`); pc3d reads frames from `training`.
    Anything else is returned unchanged, for the reader to report what is missing.
    """
    training = root / "training"
    if not (root / "velodyne").is_dir() and training.is_dir():
        return training
    return root
