"""Where the real sample data shipped with pc3d lies.

The KITTI frames used by `pc3d demo` and the tests are in the repository's `tests/data/` (see
its README for source and licence); they are not part of the installed package, so they are
found relative to the source tree that pc3d is imported from (an editable install or a
checkout on `PYTHONPATH`).
"""

from __future__ import annotations

from pathlib import Path

from pc3d.errors import Pc3dError

# pc3d/data_files.py -> pc3d/ -> repository root
_REPO_ROOT = Path(__file__).resolve().parent.parent
KITTI_SAMPLE_SUBDIR = Path("tests") / "data" / "kitti" / "training"
DEFAULT_DEMO_FRAME = "000001"


def repo_root() -> Path:
    """The folder holding the `pc3d` package (the repository root for a checkout)."""
    return _REPO_ROOT


def kitti_sample_root() -> Path:
    """`tests/data/kitti/training` of the repository pc3d runs from.

    Raises:
        Pc3dError: pc3d is not run from a repository checkout (e.g. a wheel install), naming
            where it looked.
    """
    root = _REPO_ROOT / KITTI_SAMPLE_SUBDIR
    if not (root / "velodyne").is_dir():
        raise Pc3dError(
            f"the shipped KITTI sample is not at {root} (it lives in the pc3d repository's "
            f"{KITTI_SAMPLE_SUBDIR}, not in an installed wheel); pass --root DIR pointing at a "
            "KITTI 'training' folder with velodyne/, calib/ and label_2/"
        )
    return root
