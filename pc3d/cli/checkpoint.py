"""`pc3d checkpoint convert --from mmdet3d INPUT OUTPUT`: an MMDetection3D checkpoint as a pc3d
checkpoint; `pc3d checkpoint info FILE`: what a checkpoint holds.

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

DESCRIPTION = "Describe checkpoints, and convert checkpoints of other toolkits to pc3d checkpoints."

EPILOG = """\
examples:
  pc3d checkpoint info work_dirs/run1/epoch_12.pth
  pc3d checkpoint info hv_pointpillars_kitti.pth --match   # which shipped config it fits
  pc3d checkpoint convert --from mmdet3d hv_pointpillars_kitti.pth pointpillars_pc3d.pth
  pc3d checkpoint convert --from mmdet3d second.pth second_pc3d.pth --config second_hv-secfpn_kitti-3d-3class
"""

SOURCES = ("mmdet3d",)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pc3d checkpoint`` (with its ``convert`` action) to the ``pc3d`` parser."""
    parser = add_command(
        subparsers,
        "checkpoint",
        "describe checkpoints; convert checkpoints of other toolkits to pc3d checkpoints",
        DESCRIPTION,
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser(
        "info",
        help="what a checkpoint holds: its format, training state, classes and weights",
        description="Describe a pc3d, MMDetection3D 1.x or plain state-dict checkpoint: its format and "
        "versions, the training state it can resume, its classes and its weights per top-level module.",
    )
    info.add_argument("input", metavar="INPUT", type=Path, help="the checkpoint to describe")
    info.add_argument(
        "--match",
        action="store_true",
        help="also build every shipped config's model and say which ones the weights fit "
        "(or the closest, with the keys that differ)",
    )
    info.set_defaults(func=run_info)
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
        "--overwrite",
        action="store_true",
        help="replace OUTPUT if it exists (by default an existing file, INPUT included, is kept and the "
        "command stops)",
    )
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
    from pc3d.cli.inputs import writable_file
    from pc3d.errors import Pc3dError

    writable_file(args.output, "OUTPUT")  # a folder or a file in the way: said before the conversion
    if args.output.exists() and not args.overwrite:
        same = args.input.exists() and args.output.resolve() == args.input.resolve()
        raise Pc3dError(
            f"{args.output} exists{' (it is INPUT)' if same else ''}; choose another OUTPUT, or pass "
            "--overwrite to replace it"
        )
    state = convert_mmdet3d_checkpoint(args.input, args.output, args.config)
    classes = state["meta"]["class_names"]
    print(
        f"wrote {args.output}: {len(state['model'])} tensors from MMDetection3D "
        f"{state['meta']['mmdet3d_version']}" + (f", classes {classes}" if classes else "")
    )
    return 0


def describe_checkpoint(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(field, text)`` rows describing the checkpoint at ``path`` (loaded with
    ``weights_only=True``): format and versions, training state, classes, weights.

    Raises:
        CheckpointError: a missing, truncated or corrupt file (naming it).
    """
    from pc3d.engine.checkpoint import FORMAT, load_checkpoint, model_state_from
    from pc3d.errors import Pc3dError
    from pc3d.nn.checkpoint_mmdet3d import checkpoint_class_names, is_mmdet3d_checkpoint

    state = load_checkpoint(path)
    size = Path(path).stat().st_size
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"
    rows = [("file", f"{path} ({shown})")]
    found = state.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    if state.get("format") == FORMAT:
        versions = f"pc3d {state.get('pc3d_version', '?')}, torch {state.get('torch_version', '?')}"
        rows.append(("format", f"pc3d checkpoint v{state.get('format_version', '?')} ({versions})"))
        if meta.get("converted_from"):
            rows.append(
                ("converted", f"from {meta['converted_from']} {meta.get('mmdet3d_version', '')}".rstrip())
            )
        if "iteration" in state:
            rows.append(
                (
                    "training",
                    f"epoch {state.get('epoch', '?')}, iteration {state['iteration']} of "
                    f"{state.get('max_iters', '?')}, batch {state.get('batch_size', '?')} x "
                    f"{state.get('world_size', 1)} process(es)",
                )
            )
        resumable = [
            k for k in ("optimizer", "scheduler", "scaler", "rng", "hooks") if state.get(k) is not None
        ]
        if resumable:
            rows.append(("resume", ", ".join(resumable)))
    elif is_mmdet3d_checkpoint(state):
        rows.append(("format", f"MMDetection3D {meta.get('mmdet3d_version', '?')} checkpoint"))
        if "epoch" in meta or "iter" in meta:
            rows.append(("training", f"epoch {meta.get('epoch', '?')}, iteration {meta.get('iter', '?')}"))
    else:
        rows.append(("format", "a plain state dict (no pc3d or MMDetection3D metadata)"))
    config = state.get("config")
    configured = config.get("class_names") if isinstance(config, dict) else None
    classes = checkpoint_class_names(state) or configured
    if classes:
        rows.append(("classes", ", ".join(str(c) for c in classes)))
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        rows.append(("model", str(config["model"].get("type", "?"))))
    try:
        weights = model_state_from(state, path)
    except Pc3dError as err:
        rows.append(("weights", f"do not map onto pc3d's names: {err}"))
        return rows
    tensors = {k: v for k, v in weights.items() if hasattr(v, "numel")}
    total = sum(int(v.numel()) for v in tensors.values())
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in tensors.values()})
    rows.append(("weights", f"{len(tensors)} tensors, {total:,} values ({', '.join(dtypes) or 'none'})"))
    per_module: dict[str, int] = {}
    for key, value in tensors.items():
        top = key.split(".", 1)[0]
        per_module[top] = per_module.get(top, 0) + int(value.numel())
    for top, count in per_module.items():
        rows.append((f"  {top}", f"{count:,}"))
    return rows


def matching_configs(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(field, text)`` rows saying which shipped configs' models the weights at ``path`` fit.

    Every config with a ``model`` section (``pc3d config list``, ``_base_`` files left out) is
    built on the CPU and its state dict compared with the checkpoint's weights (mapped to pc3d's
    names, as the loaders map them). A config that fits is listed with a note when the
    checkpoint's classes are not the config's (``--set class_names=[...]`` then). Without a fit,
    the closest config is named with what differs. Configs that do not build here (a missing
    optional package) are counted.
    """
    from pc3d.config import ConfigError, load_config
    from pc3d.config.loading import list_configs
    from pc3d.engine.checkpoint import load_checkpoint, model_state_from
    from pc3d.errors import Pc3dError
    from pc3d.inference import load_model
    from pc3d.nn.checkpoint_mmdet3d import checkpoint_class_names
    from pc3d.nn.weight_fit import weight_differences, weight_mismatch

    state = load_checkpoint(path)
    weights = model_state_from(state, path)
    recorded = checkpoint_class_names(state)
    fits: list[str] = []
    closest: tuple[int, str, str] | None = None
    unbuilt = 0
    for file in list_configs():
        if "_base_" in file.parts:
            continue
        try:
            config = load_config(file)
            if not isinstance(config.data.get("model"), dict):
                continue
            model = load_model(config, device="cpu")
        except (Pc3dError, ConfigError, ImportError):
            unbuilt += 1
            continue
        expected = model.state_dict()
        found = weight_differences(expected, weights)
        if found.count == 0:
            names = [str(n) for n in getattr(model, "class_names", [])]
            note = (
                f" (its classes are {names}; the checkpoint's {recorded})"
                if recorded and names != recorded
                else ""
            )
            fits.append(f"{file.stem}{note}")
        elif closest is None or found.count < closest[0]:
            closest = (found.count, file.stem, weight_mismatch(expected, weights) or "")
    rows = [("fits", name) for name in fits]
    if not fits:
        rows.append(("fits", "no shipped config"))
        if closest is not None:
            rows.append(("closest", f"{closest[1]}: {closest[2]}"))
    if unbuilt:
        rows.append(("not built", f"{unbuilt} config(s) whose model does not build here"))
    return rows


def run_info(args: argparse.Namespace) -> int:
    """Print what ``args.input`` holds; 0 on success."""
    rows = describe_checkpoint(args.input)
    if args.match:
        rows += matching_configs(args.input)
    width = max(len(field) for field, _ in rows)
    for field, text in rows:
        print(f"{field:<{width}}  {text}")
    return 0
