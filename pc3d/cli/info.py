"""`pc3d info`: what a point-cloud or box file holds (count, fields, bounds, NaN count).

Reading a point cloud needs numpy only; torch is not imported.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from pc3d.cli.inputs import must_exist

if TYPE_CHECKING:
    import numpy as np


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `info` command to `subparsers`."""
    from pc3d.io.file_kinds import FILE_KINDS

    parser = subparsers.add_parser(
        "info",
        description="Print the count, fields and bounds of a point-cloud or box file, and how many "
        "values are NaN or infinite; or the class histogram of a per-point label file.",
        epilog="What FILE holds follows its extension: .json .csv .txt are box files, .bin .pcd .ply "
        "point clouds; a .npy with named fields or fewer than 7 columns is a point cloud, any other "
        ".npy needs --what.",
    )
    parser.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="point cloud (.bin .npy .pcd .ply), box file (.json .csv .txt .npy) or per-point labels "
        "(.label, 1-D integer .npy)",
    )
    parser.add_argument(
        "--what",
        choices=FILE_KINDS,
        default="auto",
        help="what FILE holds (default auto: by extension, see below)",
    )
    parser.add_argument(
        "--num-features",
        type=int,
        default=None,
        metavar="N",
        help="float32 values per point of a .bin file (default 4)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print what `args.file` holds; the exit status."""
    from pc3d.io.file_kinds import file_kind

    path: Path = args.file
    must_exist(path)
    if args.what == "auto" and _is_label_file(path):
        print(_label_info(path))
        return 0
    kind = file_kind(path, args.what)
    print(_box_info(path) if kind == "boxes" else _point_info(path, args.num_features))
    return 0


def _is_label_file(path: Path) -> bool:
    """A per-point label file: a ``.label`` (SemanticKITTI's uint32 per point) or a 1-D integer
    ``.npy`` (what ``pc3d infer`` writes for a segmentation model)."""
    suffix = path.suffix.lower()
    if suffix == ".label":
        return True
    if suffix != ".npy":
        return False
    import numpy as np

    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError):
        return False
    return values.ndim == 1 and np.issubdtype(values.dtype, np.integer)


def _label_info(path: Path) -> str:
    """Count and per-class histogram of a per-point label file (SemanticKITTI raw ids named
    through its learning map when they all are in it)."""
    import numpy as np

    from pc3d.errors import FormatError
    from pc3d.io.semseg import SEMANTICKITTI_CLASSES, SEMANTICKITTI_LABEL_MAP, read_point_labels

    labels = read_point_labels(path)
    lines = [
        str(path),
        f"  format  {'SemanticKITTI .label (uint32 per point)' if path.suffix.lower() == '.label' else 'NumPy .npy of class indices'}",
    ]
    lines.append(f"  points  {len(labels):,}")
    ids, counts = np.unique(labels, return_counts=True)
    names: dict[int, str] = {}
    if path.suffix.lower() == ".label":
        try:  # each distinct id once, not each point
            mapped = SEMANTICKITTI_LABEL_MAP.apply(ids, path).tolist()
        except FormatError:
            mapped = []  # ids outside SemanticKITTI's map: listed by number
        names = {
            raw: SEMANTICKITTI_CLASSES[train] if train >= 0 else "ignored"
            for raw, train in zip(ids.tolist(), mapped, strict=False)
        }
    lines.append("")
    lines.append(f"  {'id':>6}  {'points':>9}  {'share':>6}  class")
    for value, count in zip(ids.tolist(), counts.tolist(), strict=True):
        name = names.get(value, "no label" if value < 0 else "")
        lines.append(
            f"  {value:>6}  {count:>9,}  {100 * count / max(len(labels), 1):>5.1f}%  {name}".rstrip()
        )
    return "\n".join(lines)


def _format_name(path: Path, num_columns: int) -> str:
    suffix = path.suffix.lower()
    if suffix == ".bin":
        return f"KITTI-style .bin (float32 x {num_columns} per point)"
    if suffix == ".npy":
        return "NumPy .npy"
    with path.open("rb") as handle:
        head = handle.read(4096).decode("ascii", errors="replace")
    if suffix == ".pcd":
        match = re.search(r"^DATA\s+(\S+)", head, re.MULTILINE)
        return f"PCD, DATA {match.group(1) if match else '?'}"
    match = re.search(r"^format\s+(\S+)", head, re.MULTILINE)
    return f"PLY, {match.group(1) if match else '?'}"


def _bounds_table(names: list[str] | tuple[str, ...], array: np.ndarray) -> str:
    import numpy as np

    finite = np.isfinite(array)
    bad = (~finite).sum(axis=0)
    rows = [("field", "min", "max", "NaN/inf")]
    for k, name in enumerate(names):
        column = array[finite[:, k], k]
        low, high = (f"{column.min():.6g}", f"{column.max():.6g}") if column.size else ("-", "-")
        rows.append((name, low, high, str(int(bad[k]))))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    return "\n".join(
        "  "
        + "  ".join(
            c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )


def _point_info(path: Path, num_features: int | None) -> str:
    import numpy as np

    from pc3d.io import read_point_file

    data = read_point_file(path, num_features=num_features, nan_policy="keep")
    rows_bad = int((~np.isfinite(data.array[:, :3])).any(axis=1).sum())
    lines = [
        f"{path}",
        f"  format  {_format_name(path, data.array.shape[1])}",
        f"  points  {data.num_points:,}",
        f"  fields  {', '.join(data.fields)}",
    ]
    if rows_bad:
        lines.append(
            f"  {rows_bad:,} points have NaN or infinite x/y/z (the commands reading point clouds "
            "drop them with a warning, or stop with --nan-policy raise)"
        )
    lines += ["", _bounds_table(data.fields, data.array)]
    return "\n".join(lines)


def _box_info(path: Path) -> str:
    import numpy as np

    from pc3d.io.boxes import box_columns, read_box_file

    data = read_box_file(path)
    lines = [
        f"{path}",
        f"  mode    {data.mode or 'not stated'}",
        f"  boxes   {len(data):,} x {data.boxes.shape[1]} values",
    ]
    if data.labels is not None:
        per_class = Counter(str(label) for label in data.labels)
        lines.append("  labels  " + (", ".join(f"{k} {v}" for k, v in sorted(per_class.items())) or "none"))
    if data.scores is not None and len(data):
        lines.append(f"  scores  {float(data.scores.min()):.4g} .. {float(data.scores.max()):.4g}")
    lines += ["", _bounds_table(box_columns(data.boxes.shape[1]), data.boxes.astype(np.float64))]
    return "\n".join(lines)
