"""`pc3d checkpoint convert --from mmdet3d INPUT OUTPUT`: an MMDetection3D checkpoint as a pc3d checkpoint.

The weights are mapped through `pc3d.nn.checkpoint_mmdet3d.MMDET3D_KEY_TABLE` (sparse-conv kernels
permuted to spconv 2's layout) and written in the engine's checkpoint format (`format:
pc3d-checkpoint`, weights under `model`), which `pc3d test`, `pc3d infer` and `--load-from` read.
With `--config` the weights are also loaded into that config's model first, so a checkpoint that
does not fit is refused with the keys that differ.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pc3d.cli.arguments import CONFIG_HELP, add_command, add_input_output_arguments

DESCRIPTION = "Convert checkpoints of other toolkits to pc3d checkpoints."

EPILOG = """\
examples:
  pc3d checkpoint convert --from mmdet3d hv_pointpillars_kitti.pth pointpillars_pc3d.pth
  pc3d checkpoint convert --from mmdet3d second.pth second_pc3d.pth --config second_hv-secfpn_kitti-3d-3class
"""

SOURCES = ("mmdet3d",)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pc3d checkpoint`` (with its ``convert`` action) to the ``pc3d`` parser."""
    parser = add_command(
        subparsers,
        "checkpoint",
        "convert checkpoints of other toolkits to pc3d checkpoints",
        DESCRIPTION,
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = actions.add_parser(
        "convert",
        help="write an MMDetection3D 1.x checkpoint as a pc3d checkpoint",
        description="Map an MMDetection3D 1.x checkpoint's weights to pc3d's names and layouts and write "
        "them as a pc3d checkpoint.",
    )
    convert.add_argument(
        "--from", dest="source", choices=SOURCES, required=True, help="the toolkit that wrote INPUT"
    )
    add_input_output_arguments(convert, "the checkpoint to convert", "the pc3d checkpoint to write")
    convert.add_argument(
        "--config",
        default=None,
        metavar="CONFIG",
        help=f"{CONFIG_HELP}: also check that the weights fit its model",
    )
    convert.set_defaults(func=run)


def convert_mmdet3d_checkpoint(
    source: str | os.PathLike[str], output: str | os.PathLike[str], config: str | None = None
) -> dict[str, Any]:
    """Write the MMDetection3D checkpoint ``source`` as a pc3d checkpoint at ``output``.

    Args:
        source: an MMDetection3D 1.x checkpoint (loaded with ``weights_only=True``).
        output: the pc3d checkpoint to write (atomically).
        config: a config whose model the weights must fit (checked before writing).

    Returns:
        The checkpoint written (``model`` holds the weights, ``meta`` MMDetection3D's metadata).

    Raises:
        FormatError: not an MMDetection3D checkpoint, or keys the key table does not map.
        CheckpointError: with ``config``, weights that do not fit its model.
    """
    import torch

    import pc3d
    from pc3d.engine.checkpoint import FORMAT, FORMAT_VERSION, save_checkpoint
    from pc3d.nn.checkpoint_mmdet3d import convert_mmdet3d_state_dict, read_mmdet3d_checkpoint

    checkpoint = read_mmdet3d_checkpoint(Path(source))
    weights = convert_mmdet3d_state_dict(checkpoint.state_dict, source=checkpoint.source)
    if config is not None:
        from pc3d.engine.state import load_model_state
        from pc3d.inference import load_model

        load_model_state(load_model(config), weights, source)
    meta = checkpoint.meta
    dataset_meta = meta.get("dataset_meta")
    classes = dataset_meta.get("classes") if isinstance(dataset_meta, dict) else None
    state: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pc3d_version": pc3d.__version__,
        "torch_version": str(torch.__version__),
        "model": weights,
        "meta": {
            "converted_from": "mmdet3d",
            "source": str(source),
            "mmdet3d_version": str(meta.get("mmdet3d_version", "unknown")),
            "class_names": [str(c) for c in classes] if classes else None,
        },
    }
    save_checkpoint(state, output)
    return state


def run(args: argparse.Namespace) -> int:
    """Convert as ``args`` say; 0 on success."""
    state = convert_mmdet3d_checkpoint(args.input, args.output, args.config)
    classes = state["meta"]["class_names"]
    print(
        f"wrote {args.output}: {len(state['model'])} tensors from MMDetection3D "
        f"{state['meta']['mmdet3d_version']}" + (f", classes {classes}" if classes else "")
    )
    return 0
