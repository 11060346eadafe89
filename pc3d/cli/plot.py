"""`pc3d plot`: draw a training run's curves (losses, learning rate, validation metrics) as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.cli.arguments import add_command

DESCRIPTION = (
    "Draw the training curves of a run (losses, learning rate and validation metrics "
    "against the iteration) from its log.jsonl and metrics.jsonl into a PNG."
)
EXAMPLES = """examples:
  pc3d plot work_dirs/pointpillars                 # writes work_dirs/pointpillars/curves.png
  pc3d plot work_dirs/pointpillars --out curves.png

Reads WORK_DIR/log.jsonl (training records) and, once the run has been evaluated,
WORK_DIR/metrics.jsonl. Needs matplotlib (pip install matplotlib).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `plot` command to `subparsers`."""
    parser = add_command(subparsers, "plot", None, DESCRIPTION, EXAMPLES)
    parser.add_argument(
        "work_dir", type=Path, metavar="WORK_DIR", help="the run's work directory (holding log.jsonl)"
    )
    parser.add_argument(
        "--out", type=Path, metavar="PNG", help="the PNG to write (default WORK_DIR/curves.png)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Draw the curves; the exit status."""
    from pc3d.errors import FormatError
    from pc3d.vis.plots import plot_training_curves

    if args.out is not None and args.out.suffix.lower() != ".png":
        raise FormatError(f"--out {args.out}: the output must be a .png file")
    if not args.work_dir.is_dir():
        raise FileNotFoundError(f"{args.work_dir} is not a folder: give the work directory of a training run")
    path = plot_training_curves(args.work_dir, args.out)
    print(f"wrote {path}")
    return 0
