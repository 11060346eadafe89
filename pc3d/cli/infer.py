"""`pc3d infer CONFIG CHECKPOINT CLOUD [CLOUD ...] --out-dir DIR`: a model's predictions per point cloud.

Per cloud (`.bin`, `.npy`, `.pcd`, `.ply`) the predictions are written to `DIR/<stem>.json`
(`--format json`: `{"box_mode": "lidar", "boxes_3d": [[x, y, z, l, w, h, yaw], ...],
"scores_3d": [...], "labels_3d": [...], "class_names": [...]}`) or to `DIR/<stem>.txt` (`--format
kitti`: KITTI `label_2` lines in the camera frame, which `pc3d kitti-eval` reads), with `--png` also
a bird's-eye-view picture `DIR/<stem>.png`. `DIR/summary.json` holds the frame count and the
model's latency per frame (`{"latency_ms": {"mean": ..., "median": ...}}`, file I/O excluded, after
`--warmup` untimed runs on the first cloud, whose times are `warmup_ms`). Two clouds with the same
stem would write the same files: that is an error before anything runs.
The model runs as its inference copy (`optimize_for_inference()`, where it has one: same outputs
to float rounding); `--no-optimize` runs it as built.

What is written depends on what the model predicts: :data:`WRITERS` maps an output type to its
writer: ``Detections3D`` (boxes, above) and a tensor of per-point class indices (a segmentation:
`DIR/<stem>.npy`, or `DIR/<stem>.label` with `--format label`; `--png` colours the cloud by class).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pc3d.cli.arguments import (
    CONFIG_HELP,
    OVERRIDES_HELP,
    add_command,
    add_config_argument,
    add_device_argument,
    add_nan_policy_argument,
    add_overrides_argument,
)

DESCRIPTION = "Run a model on point clouds and write its predictions, one file per cloud."

EPILOG = """\
The checkpoint may be a pc3d checkpoint or an MMDetection3D 1.x checkpoint of the same model.
3D detectors run their inference copy (folded norms, channels-last, Winograd convs, empty BEV tiles
skipped on the CPU): the same boxes to float rounding; --no-optimize runs the model as built.
--format kitti needs the LiDAR-to-camera calibration: --calib FILE, or, for a cloud inside a KITTI
layout (.../velodyne/ID.bin), that frame's own calib/ID.txt.

examples:
  pc3d infer pointpillars_hv-secfpn_kitti-3d-3class pointpillars.pth 000008.bin --out-dir preds
  pc3d infer second_hv-secfpn_kitti-3d-3class second.pth data/kitti/training/velodyne/*.bin \\
      --out-dir preds --format kitti && pc3d kitti-eval data/kitti/training/label_2 preds
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pc3d infer`` to the ``pc3d`` parser."""
    parser = add_command(
        subparsers, "infer", "run a model on point clouds and write its predictions", DESCRIPTION, EPILOG
    )
    add_config_argument(parser, CONFIG_HELP)
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", type=Path, help="pc3d or MMDetection3D checkpoint"
    )
    parser.add_argument(
        "clouds",
        metavar="CLOUD",
        type=Path,
        nargs="+",
        help="point clouds (.bin .npy .pcd .ply), or folders of them (each one's point clouds, sorted by name)",
    )
    parser.add_argument("--out-dir", type=Path, required=True, metavar="DIR", help="where the predictions go")
    parser.add_argument(
        "--score-thr",
        type=float,
        default=None,
        metavar="X",
        help="keep predictions scoring above X (default: the config's test_cfg.score_thr)",
    )
    add_device_argument(parser, "run the model")
    parser.add_argument(
        "--format",
        choices=("json", "kitti", "label"),
        default="json",
        help="detectors: json (LiDAR boxes) or kitti (label_2 lines, camera frame); "
        "segmentation: per-point labels as .npy (json, the default) or .label (label)",
    )
    parser.add_argument(
        "--calib",
        type=Path,
        default=None,
        metavar="FILE",
        help="KITTI calibration for --format kitti (default: the frame's calib/ID.txt)",
    )
    parser.add_argument(
        "--png", action="store_true", help="also render each frame's predictions (bird's-eye view)"
    )
    parser.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="run the model as built, without its inference copy (folded norms, channels-last, "
        "Winograd convs, skipped empty BEV tiles); outputs agree to float rounding",
    )
    parser.add_argument(
        "--num-features",
        type=int,
        default=None,
        metavar="N",
        help="float32 values per point of a .bin cloud (default 4)",
    )
    parser.add_argument(
        "--use-dims",
        type=parse_use_dims,
        default=None,
        metavar="DIMS",
        help="the columns the model reads, for clouds with others (a ROS cloud's ring, timestamp): "
        "N keeps the first N; x,y,z,intensity picks by field name; 0,1,2,4 by index (x, y, z first)",
    )
    add_nan_policy_argument(parser)
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        metavar="N",
        help="untimed runs on the first cloud before timing, so the latency is the steady "
        "state's (default 1; their times are summary.json's warmup_ms)",
    )
    add_overrides_argument(parser, OVERRIDES_HELP)
    parser.set_defaults(func=run)


def parse_use_dims(text: str) -> int | list[int | str]:
    """``--use-dims``: ``"4"`` -> 4 (the first four columns); ``"x,y,z,intensity"`` or
    ``"0,1,2,4"`` (or a mix) -> the list, names as strings and indices as integers."""
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise argparse.ArgumentTypeError(f"{text!r}: an empty column between commas")
    picked: list[int | str] = [int(item) if item.isdigit() else item for item in items]
    if len(picked) == 1 and isinstance(picked[0], int):
        return picked[0]
    return picked


@dataclass(frozen=True)
class Frame:
    """One cloud's prediction and what its writer needs.

    Attributes:
        cloud: the point file.
        points: the points the model read, ``float32 Tensor[N, C]``.
        result: what the model predicted.
        class_names: the model's classes.
        kept: ``Bool[M]`` over the file's ``M`` points: those the model read (the others held NaN
            or infinite values); ``None`` when it read them all.
    """

    cloud: Path
    points: Any
    result: Any
    class_names: list[str]
    kept: Any = None


def write_detections(frame: Frame, args: argparse.Namespace) -> dict[str, Any]:
    """Write one frame's ``Detections3D`` (JSON or KITTI lines, optional PNG); its summary entry."""
    from pc3d.io.jsonio import write_json

    dets, stem = frame.result, frame.cloud.stem
    if args.format == "kitti":
        from pc3d.io.kitti import (
            detections_to_kitti_labels,
            read_kitti_calib,
            read_png_size,
            write_kitti_labels,
        )

        calib_path, image = kitti_side_files(frame.cloud, args.calib)
        size = read_png_size(image) if image is not None else None
        labels = detections_to_kitti_labels(dets, frame.class_names, read_kitti_calib(calib_path), size)
        write_kitti_labels(args.out_dir / f"{stem}.txt", labels)
    else:
        write_json(
            args.out_dir / f"{stem}.json",
            {
                "box_mode": "lidar",
                "boxes_3d": dets.boxes.tensor.detach().cpu().tolist(),
                "scores_3d": dets.scores.detach().cpu().tolist(),
                "labels_3d": dets.labels.detach().cpu().tolist(),
                "class_names": frame.class_names,
            },
        )
    if args.png and frame.points.shape[0] == 0 and len(dets) == 0:
        import warnings

        warnings.warn(f"{frame.cloud}: no points and no detections: no {stem}.png drawn", stacklevel=2)
    elif args.png:
        import pc3d.vis

        pred = {
            "mode": "lidar",
            "boxes": dets.boxes.tensor.detach().cpu().numpy(),
            "labels": dets.labels.detach().cpu().numpy(),
            "scores": dets.scores.detach().cpu().numpy(),
        }
        pc3d.vis.render(
            frame.points.numpy(),
            pred=pred,
            out=args.out_dir / f"{stem}.png",
            class_names=frame.class_names,
            view="bev",
        )
    return {"num_detections": len(dets)}


def kitti_side_files(cloud: Path, calib: Path | None) -> tuple[Path, Path | None]:
    """The calibration (``--calib``, else ``<root>/calib/ID.txt`` of a ``<root>/velodyne/ID.bin``
    cloud) and, when there, the frame's ``image_2/ID.png`` (for the image size).

    Raises:
        Pc3dError: no calibration given and none next to the cloud.
    """
    from pc3d.errors import Pc3dError

    root = cloud.resolve().parent.parent if cloud.resolve().parent.name == "velodyne" else None
    image = root / "image_2" / f"{cloud.stem}.png" if root is not None else None
    image = image if image is not None and image.is_file() else None
    if calib is not None:
        return calib, image
    if root is not None and (root / "calib" / f"{cloud.stem}.txt").is_file():
        return root / "calib" / f"{cloud.stem}.txt", image
    if root is not None:
        raise Pc3dError(
            f"{cloud}: --format kitti needs the LiDAR-to-camera calibration, and "
            f"{root / 'calib' / (cloud.stem + '.txt')} does not exist: add it, or give --calib FILE"
        )
    raise Pc3dError(
        f"{cloud}: --format kitti needs the LiDAR-to-camera calibration: give --calib FILE (the cloud is "
        "not in a KITTI layout .../velodyne/ID.bin with a calib/ID.txt)"
    )


def write_point_labels(frame: Frame, args: argparse.Namespace) -> dict[str, Any]:
    """A segmentation's per-point class indices: ``<stem>.npy`` (int64), or with ``--format label``
    ``<stem>.label`` (uint32; SemanticKITTI's raw ids for its 19 classes); ``--png`` renders the
    cloud coloured by class with a legend (``pc3d show --point-labels`` reads the same files)."""
    import numpy as np

    from pc3d.errors import FormatError
    from pc3d.io.semseg import raw_ids_for
    from pc3d.io.semseg import write_point_labels as write_labels

    if args.format == "kitti":
        raise FormatError(
            "--format kitti writes detections; a segmentation model writes --format json (.npy) or label"
        )
    labels = frame.result.detach().cpu().numpy().reshape(-1)
    if labels.shape[0] != frame.points.shape[0]:
        raise FormatError(f"{frame.cloud}: {labels.shape[0]} labels for {frame.points.shape[0]} points")
    shown = labels
    if frame.kept is not None:  # one label per point of the file: -1 where the model read none
        kept = frame.kept.cpu().numpy()
        labels = np.full(kept.shape[0], -1, dtype=np.int64)
        labels[kept] = shown
    suffix = ".label" if args.format == "label" else ".npy"
    path = write_labels(
        args.out_dir / f"{frame.cloud.stem}{suffix}",
        labels,
        raw_ids_for(frame.class_names) if suffix == ".label" else None,
    )
    entry: dict[str, Any] = {"output": str(path), "num_points": int(labels.shape[0])}
    if args.png:
        from pc3d.vis import render

        png = args.out_dir / f"{frame.cloud.stem}.png"
        render(
            frame.points.cpu().numpy(),
            out=png,
            view="bev",
            point_labels=shown,
            class_names=frame.class_names or None,
        )
        entry["png"] = str(png)
    return entry


def _writers() -> dict[type, Callable[[Frame, argparse.Namespace], dict[str, Any]]]:
    import torch

    from pc3d.structures import Detections3D

    # A 1-D tensor of class indices is a segmentation's output (one label per point).
    return {Detections3D: write_detections, torch.Tensor: write_point_labels}


#: Output type -> writer; extended by plugins whose models predict other things.
WRITERS: dict[type, Callable[[Frame, argparse.Namespace], dict[str, Any]]] = {}


def writer_for(result: Any) -> Callable[[Frame, argparse.Namespace], dict[str, Any]]:
    """The writer of a model output (by its type, most specific first).

    Raises:
        Pc3dError: no writer handles the output's type.
    """
    from pc3d.errors import Pc3dError

    writers = {**_writers(), **WRITERS}
    for cls in type(result).__mro__:
        if cls in writers:
            return writers[cls]
    raise Pc3dError(
        f"pc3d infer cannot write a {type(result).__name__} prediction; it writes: "
        + ", ".join(sorted(c.__name__ for c in writers))
    )


#: How the models say they were given another number of columns than they read.
_COLUMN_COUNTS = (
    re.compile(r"expects (?P<wanted>\d+) features per point, got (?P<got>\d+)"),
    re.compile(r"expected Tensor\[N, (?P<wanted>\d+)\], got \(\d+, (?P<got>\d+)\)"),
)


def column_hint(message: str, cloud: Path, columns: tuple[str, ...], args: argparse.Namespace) -> str:
    """What to pass when a model refused a cloud for its number of columns (else ``""``): more
    columns than it reads: ``--use-dims``; fewer, from a ``.bin``: ``--num-features``."""
    for pattern in _COLUMN_COUNTS:
        found = pattern.search(message)
        if found is None:
            continue
        wanted, got = int(found["wanted"]), int(found["got"])
        if got > wanted and args.use_dims is None:
            return (
                f" (the cloud's columns: {', '.join(columns)}; pick the {wanted} the model reads with "
                f"--use-dims, e.g. --use-dims {','.join(columns[:wanted])})"
            )
        if got < wanted and cloud.suffix.lower() == ".bin" and args.use_dims is None:
            return (
                f" (a .bin is read as {args.num_features or 4} float32 values per point; if its records "
                f"hold {wanted}, pass --num-features {wanted})"
            )
    return ""


def check_options_fit(model: Any, args: argparse.Namespace) -> None:
    """Refuse a ``--format`` the model's outputs cannot take; warn about options it ignores.

    Raises:
        Pc3dError: ``--format kitti`` for a point segmentor, ``--format label`` for a detector.
    """
    import warnings

    from pc3d.errors import Pc3dError

    name = type(model).__name__
    segments = getattr(model, "task", None) == "point_segmentation"
    if segments and args.format == "kitti":
        raise Pc3dError(
            f"--format kitti writes 3D detections, and {name} labels points: use --format json "
            "(labels as .npy) or --format label (.label files)"
        )
    if not segments and args.format == "label":
        raise Pc3dError(
            f"--format label writes per-point labels of a segmentation model, and {name} detects "
            "boxes: use --format json or --format kitti"
        )
    ignored = [
        option
        for option, value in (("--score-thr", args.score_thr), ("--calib", args.calib))
        if value is not None
    ]
    if segments and ignored:
        warnings.warn(
            f"{' and '.join(ignored)} do not apply to a segmentation model ({name}): ignored", stacklevel=2
        )


def expand_folders(paths: list[Path]) -> list[Path]:
    """``paths`` with each folder replaced by its point clouds (``.bin .npy .pcd .ply``), sorted.

    Raises:
        Pc3dError: a folder without point clouds.
    """
    from pc3d.errors import Pc3dError
    from pc3d.io.points import POINT_EXTENSIONS

    clouds: list[Path] = []
    for path in paths:
        if not path.is_dir():
            clouds.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in POINT_EXTENSIONS)
        if not found:
            raise Pc3dError(f"{path} holds no point clouds ({' '.join(POINT_EXTENSIONS)})")
        clouds.extend(found)
    return clouds


def check_clouds(clouds: list[Path]) -> None:
    """Check that every cloud exists and that no two share a stem (they would write the same files).

    Raises:
        FileNotFoundError: a cloud does not exist.
        Pc3dError: two clouds share a stem, naming both.
    """
    from pc3d.cli.inputs import must_exist
    from pc3d.errors import Pc3dError

    seen: dict[str, Path] = {}
    for cloud in clouds:
        must_exist(cloud)
        if cloud.stem in seen:
            raise Pc3dError(
                f"{seen[cloud.stem]} and {cloud} would both write {cloud.stem}.* in the output folder: "
                "run them with different --out-dir folders"
            )
        seen[cloud.stem] = cloud


def run(args: argparse.Namespace) -> int:
    """Predict and write as ``args`` say; 0 on success."""
    import torch

    from pc3d.engine.logging import terminal_progress
    from pc3d.errors import Pc3dError
    from pc3d.inference import check_point_model, finite_rows, load_model, predict
    from pc3d.io.jsonio import write_json
    from pc3d.io.points import read_point_file
    from pc3d.nn.fuse import has_inference_copy

    if args.warmup < 0:
        raise Pc3dError(f"--warmup must be 0 or more, got {args.warmup}")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise Pc3dError(f"--out-dir {args.out_dir} is a file, not a folder")
    args.clouds = expand_folders(args.clouds)
    check_clouds(args.clouds)
    model = load_model(args.config, args.checkpoint, args.device, args.overrides, optimize=args.optimize)
    check_point_model(model)  # an image model: said before any cloud is read
    check_options_fit(model, args)
    if args.format == "kitti":
        for cloud in args.clouds:  # before any cloud is read: every frame's calibration is there
            kitti_side_files(cloud, args.calib)
    class_names = [str(n) for n in getattr(model, "class_names", [])]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    device = next(iter(model.parameters()), torch.empty(0)).device
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    columns: dict[Path, tuple[str, ...]] = {}

    def timed(cloud: Path, points: torch.Tensor) -> tuple[Any, float]:
        synchronize()
        start = time.perf_counter()
        try:
            result = predict(model, points, args.score_thr, args.nan_policy)
        except Pc3dError as err:  # the model refused this cloud (columns, say): name it
            raise Pc3dError(f"{cloud}: {err}{column_hint(str(err), cloud, columns[cloud], args)}") from err
        synchronize()
        return result, (time.perf_counter() - start) * 1000.0

    # The first runs pay one-off costs (allocations, oneDNN's kernel choices): untimed.
    def read(cloud: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Every point is read; the rows the model cannot take (NaN or inf in any column it reads,
        # x, y, z included) are dropped here, with the mask kept so that per-point outputs can be
        # written for every point of the file.
        data = read_point_file(cloud, args.num_features, "keep")
        if args.use_dims is not None:
            data = data.select(args.use_dims)
        columns[cloud] = data.fields
        points = torch.from_numpy(data.array)
        rows = finite_rows(points, str(cloud), args.nan_policy)
        return (points, None) if rows is None else (points[rows], rows)

    first = read(args.clouds[0])
    warmup = [timed(args.clouds[0], first[0])[1] for _ in range(args.warmup)]
    entries = []
    for cloud in terminal_progress(args.clouds, "infer" if len(args.clouds) > 1 else None, unit="cloud"):
        points, kept = first if cloud is args.clouds[0] else read(cloud)
        result, latency = timed(cloud, points)
        frame = Frame(cloud, points, result, class_names, kept)
        entries.append({"cloud": str(cloud), "latency_ms": latency, **writer_for(result)(frame, args)})
    latencies = [e["latency_ms"] for e in entries]
    summary = {
        "num_frames": len(entries),
        "config": str(args.config),
        "checkpoint": str(args.checkpoint),
        "device": str(device),
        "format": args.format,
        # Models without an inference copy run as built either way.
        "optimized": bool(args.optimize and has_inference_copy(model)),
        "latency_ms": {
            "mean": statistics.fmean(latencies),
            "median": statistics.median(latencies),
            "min": min(latencies),
            "max": max(latencies),
        },
        "warmup_ms": warmup,
        "frames": entries,
    }
    write_json(args.out_dir / "summary.json", summary)
    print(
        f"wrote predictions of {len(entries)} frames to {args.out_dir} "
        f"(model latency median {summary['latency_ms']['median']:.1f} ms)"
    )
    return 0
