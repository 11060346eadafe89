"""`pc3d kitti-eval`: the official KITTI object evaluation of detection files in `label_2` format.

AP11 and AP40 for 2D bbox, BEV, 3D and AOS; easy / moderate / hard; strict and loose overlaps.
Detection files carry the score as the 16th field and are matched to ground truth by file name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `kitti-eval` command to `subparsers`."""
    from pc3d.evaluation.kitti_protocol import KITTI_EVAL_CLASSES

    # Declared like pc3d demo's options (see pc3d.cli.arguments): the options are this command's own.
    parser = subparsers.add_parser(
        "kitti-eval",
        description="Compute the official KITTI object evaluation (AP11 and AP40 of 2D bbox, BEV, 3D "
        "and AOS; easy, moderate and hard; strict and loose overlaps) of detection files in label_2 "
        "format, matched to the ground truth by file name.",
    )
    parser.add_argument(
        "gt_dir",
        type=Path,
        metavar="GT_LABEL_DIR",
        help="ground-truth label_2 folder (<frame>.txt, 15 fields per line)",
    )
    parser.add_argument(
        "det_dir",
        type=Path,
        metavar="DET_DIR",
        help="detection folder (<frame>.txt, score as the 16th field); a frame "
        "without a file counts as a frame without detections",
    )
    parser.add_argument(
        "--split",
        type=Path,
        metavar="IDS_TXT",
        help="file of frame ids to evaluate, one per line (default: every file in GT_LABEL_DIR)",
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        default=["Car", "Pedestrian", "Cyclist"],
        metavar="CLASS",
        help=f"classes to evaluate among {', '.join(KITTI_EVAL_CLASSES)} (default: Car Pedestrian Cyclist)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help='also write {class: {"strict"|"loose": {"bbox"|"bev"|"3d"|"aos": '
        '{"easy"|"moderate"|"hard": {"AP11": x, "AP40": y}}}}} in percent',
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="also draw the precision-recall curves (2D box, BEV, 3D; strict overlaps) "
        "into this PNG (needs matplotlib)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate the detections against the ground truth and print the table; the exit status."""
    from pc3d.errors import FormatError
    from pc3d.evaluation.kitti import kitti_eval, resolve_classes
    from pc3d.evaluation.kitti_labels import load_label_dirs, read_frame_ids
    from pc3d.io.jsonio import write_json

    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise FormatError(f"--plot {args.plot}: the output must be a .png file")
    classes = resolve_classes(args.classes)  # before reading thousands of files
    check_detection_dir(args.det_dir)
    frame_ids = read_frame_ids(args.split) if args.split else None
    frames = load_label_dirs(args.gt_dir, args.det_dir, frame_ids)
    if frames.ids and len(frames.missing_dets) == len(frames.ids):
        raise FormatError(
            f"{args.det_dir}: none of the {len(frames.ids)} evaluated frames has a detection file "
            f"(<frame>.txt; the first frame is {frames.ids[0]}): is it the right folder?"
        )
    if frames.missing_dets:
        print(
            f"note: {len(frames.missing_dets)} of {len(frames.ids)} frames have no detection "
            f"file in {args.det_dir} and count as frames without detections "
            f"(first: {frames.missing_dets[0]})",
            file=sys.stderr,
        )
    if frames.unmatched_dets:
        print(
            f"note: {len(frames.unmatched_dets)} detection files have no ground truth in the "
            f"evaluated frames and are ignored (first: {frames.unmatched_dets[0]})",
            file=sys.stderr,
        )
    result = kitti_eval(frames.gts, frames.dets, classes)
    # The files first: `pc3d kitti-eval ... --json ap.json | head` closes stdout early.
    if args.json:
        write_json(args.json, result.to_dict())
    plot = None
    if args.plot is not None:
        from pc3d.vis.plots import plot_pr_curves

        plot = plot_pr_curves(result, args.plot)
    print(result.table())
    if not result.aos_computed and any(len(d) for d in frames.dets):
        print(
            "note: AOS not computed: the detections carry no observation angle (alpha = -10)", file=sys.stderr
        )
    if plot is not None:
        print(f"wrote {plot}")
    return 0


def check_detection_dir(det_dir: Path) -> None:
    """Refuse a detection folder that does not exist, or holds pc3d's JSON predictions only.

    Raises:
        FileNotFoundError, NotADirectoryError: no such folder.
        FormatError: ``.json`` files and no ``.txt`` (predictions written without ``--format kitti``).
    """
    from pc3d.errors import FormatError

    if not det_dir.exists():
        raise FileNotFoundError(f"detection folder {det_dir} does not exist")
    if not det_dir.is_dir():
        raise NotADirectoryError(f"{det_dir} is not a folder of detection files")
    names = [p.suffix for p in det_dir.iterdir()]
    if ".txt" not in names and ".json" in names:
        raise FormatError(
            f"{det_dir} holds .json predictions, not KITTI label files: write them with "
            "`pc3d infer ... --format kitti`"
        )
