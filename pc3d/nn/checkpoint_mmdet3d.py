"""Run MMDetection3D 1.x checkpoints in pc3d: detection, an explicit key table, weight layouts.

pc3d's 3D blocks keep MMDetection3D's module names where it can (`voxel_encoder.pfn_layers.0.
linear.weight`, `middle_encoder.encoder_layers.encoder_layer2.0.0.weight`, `backbone.blocks.0.0.
weight`, `neck.deblocks.0.0.weight`, `bbox_head.conv_cls.weight`), so most rows of
`MMDET3D_KEY_TABLE` keep the name; the table is still explicit: a key no row matches is an
error, never silently dropped or guessed. What changes is the layout of sparse-conv weights:
MMCV's sparse convs (which MMDetection3D uses when spconv 2 is not installed, and which its
checkpoints record with module version 1) store `(kD, kH, kW, C_in, C_out)`; spconv 2 stores
`(C_out, kD, kH, kW, C_in)`. A checkpoint written with spconv 2 (module version 2 in the state
dict's metadata) is already in spconv 2's layout and is copied unchanged.

Typical use::

    model = ...  # modules named voxel_encoder, middle_encoder, backbone, neck, bbox_head
    meta = load_mmdet3d_checkpoint(model, "second_kitti.pth")
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError
from pc3d.nn.weight_fit import first_named, weight_mismatch

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
SPARSE_CONV = "sparse_conv"
SAME = "same"
COMPONENTS = ("voxel_encoder", "middle_encoder", "backbone", "neck", "bbox_head")
_MAX_LISTED = 30


@dataclass(frozen=True)
class KeyRule:
    """One row of the key table.

    Attributes:
        source: regular expression a whole MMDetection3D key must match.
        target: the pc3d key (`re` replacement template over `source`'s groups).
        layout: `"same"` (tensor copied) or `"sparse_conv"` (MMCV layout converted to spconv 2's).
        what: the MMDetection3D module the row covers.
    """

    source: str
    target: str
    layout: str
    what: str


MMDET3D_KEY_TABLE: tuple[KeyRule, ...] = (
    KeyRule(
        r"voxel_encoder\.pfn_layers\.(\d+)\.linear\.weight",
        r"voxel_encoder.pfn_layers.\1.linear.weight",
        SAME,
        "PillarFeatureNet linear",
    ),
    KeyRule(
        rf"voxel_encoder\.pfn_layers\.(\d+)\.norm\.{_BN}",
        r"voxel_encoder.pfn_layers.\1.norm.\2",
        SAME,
        "PillarFeatureNet BN1d",
    ),
    KeyRule(
        r"voxel_encoder\.pfn_layers\.(\d+)\.0\.weight",
        r"voxel_encoder.pfn_layers.\1.0.weight",
        SAME,
        "DynamicPillarFeatureNet linear",
    ),
    KeyRule(
        rf"voxel_encoder\.pfn_layers\.(\d+)\.1\.{_BN}",
        r"voxel_encoder.pfn_layers.\1.1.\2",
        SAME,
        "DynamicPillarFeatureNet BN1d",
    ),
    KeyRule(
        r"middle_encoder\.conv_input\.0\.weight",
        r"middle_encoder.conv_input.0.weight",
        SPARSE_CONV,
        "SparseEncoder input SubMConv3d",
    ),
    KeyRule(
        rf"middle_encoder\.conv_input\.1\.{_BN}",
        r"middle_encoder.conv_input.1.\1",
        SAME,
        "SparseEncoder input BN1d",
    ),
    KeyRule(
        r"middle_encoder\.encoder_layers\.encoder_layer(\d+)\.(\d+)\.0\.weight",
        r"middle_encoder.encoder_layers.encoder_layer\1.\2.0.weight",
        SPARSE_CONV,
        "SparseEncoder stage SubMConv3d/SparseConv3d",
    ),
    KeyRule(
        rf"middle_encoder\.encoder_layers\.encoder_layer(\d+)\.(\d+)\.1\.{_BN}",
        r"middle_encoder.encoder_layers.encoder_layer\1.\2.1.\3",
        SAME,
        "SparseEncoder stage BN1d",
    ),
    KeyRule(
        r"middle_encoder\.conv_out\.0\.weight",
        r"middle_encoder.conv_out.0.weight",
        SPARSE_CONV,
        "SparseEncoder output SparseConv3d",
    ),
    KeyRule(
        rf"middle_encoder\.conv_out\.1\.{_BN}",
        r"middle_encoder.conv_out.1.\1",
        SAME,
        "SparseEncoder output BN1d",
    ),
    KeyRule(
        rf"backbone\.blocks\.(\d+)\.(\d+)\.{_BN}",
        r"backbone.blocks.\1.\2.\3",
        SAME,
        "SECOND backbone Conv2d/BN2d",
    ),
    KeyRule(
        rf"neck\.deblocks\.(\d+)\.([01])\.{_BN}",
        r"neck.deblocks.\1.\2.\3",
        SAME,
        "SECONDFPN ConvTranspose2d/Conv2d/BN2d",
    ),
    KeyRule(
        r"bbox_head\.(conv_cls|conv_reg|conv_dir_cls)\.(weight|bias)",
        r"bbox_head.\1.\2",
        SAME,
        "Anchor3DHead 1x1 convs",
    ),
)

_COMPILED = tuple((re.compile(rule.source), rule) for rule in MMDET3D_KEY_TABLE)


@dataclass(frozen=True)
class MMDet3DCheckpoint:
    """A read MMDetection3D checkpoint: its state dict (with metadata), its `meta`, where it came from."""

    state_dict: Mapping[str, Tensor]
    meta: Mapping[str, Any]
    source: str


def is_mmdet3d_checkpoint(checkpoint: Any) -> bool:
    """True for an MMDetection3D checkpoint dict.

    Recognised by `meta["mmdet3d_version"]`, or, without it, by a `state_dict` whose keys all
    start with MMDetection3D's component names (`voxel_encoder.`, `middle_encoder.`, `backbone.`,
    `neck.`, `bbox_head.`, `data_preprocessor.`) and include a voxel or middle encoder.
    """
    if not isinstance(checkpoint, Mapping):
        return False
    meta = checkpoint.get("meta")
    if isinstance(meta, Mapping) and "mmdet3d_version" in meta:
        return True
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, Mapping) or not state_dict:
        return False
    heads = {str(key).split(".", 1)[0] for key in state_dict}
    return heads <= {*COMPONENTS, "data_preprocessor"} and bool(heads & {"voxel_encoder", "middle_encoder"})


def has_mmcv_sparse_layout(state_dict: Mapping[str, Any]) -> bool:
    """True for a bare MMDetection3D state dict (no ``state_dict`` / ``meta`` wrapper) whose
    sparse-conv kernels are in MMCV's ``(k, k, k, C_in, C_out)`` layout (a SECOND saved with
    ``torch.save(model.state_dict())``).

    Its keys are pc3d's, so only the layout tells it from pc3d's own weights: MMCV's kernels start
    with three kernel sizes (at most 3 in MMDetection3D's encoders) and end with the output
    channels; spconv 2's start with the output channels. Every sparse-conv kernel must read as
    MMCV's (and none be recorded as spconv 2's, ``version`` 2), and the keys must be
    MMDetection3D's components with a middle encoder (as :func:`is_mmdet3d_checkpoint`).
    """
    if not is_mmdet3d_checkpoint({"state_dict": state_dict}):
        return False
    metadata = getattr(state_dict, "_metadata", None) or {}
    kernels = []
    for key, value in state_dict.items():
        rule, _ = _match(key)
        if rule is not None and rule.layout == SPARSE_CONV and isinstance(value, Tensor) and value.dim() == 5:
            if metadata.get(key.rsplit(".", 1)[0], {}).get("version") == 2:
                return False
            kernels.append(tuple(value.shape))
    return bool(kernels) and all(max(shape[:3]) <= 3 < shape[4] for shape in kernels)


def checkpoint_class_names(checkpoint: Mapping[str, Any]) -> list[str] | None:
    """The class names a checkpoint records, in label order, or None.

    Read from MMDetection3D's ``meta.dataset_meta.classes``, from ``meta.class_names`` of a
    checkpoint ``pc3d checkpoint convert`` wrote, or from the config a pc3d training run saved
    with its weights (``config.model.class_names``, as the model took them).
    """
    meta = checkpoint.get("meta")
    config = checkpoint.get("config")
    if isinstance(meta, Mapping):
        dataset_meta = meta.get("dataset_meta")
        classes = (
            dataset_meta.get("classes") if isinstance(dataset_meta, Mapping) else meta.get("class_names")
        )
    elif isinstance(config, Mapping) and isinstance(config.get("model"), Mapping):
        classes = config["model"].get("class_names")
    else:
        return None
    if isinstance(classes, (list, tuple)) and classes:
        return [str(c) for c in classes]
    return None


#: The ``format`` of a native checkpoint (:data:`pc3d.engine.checkpoint.FORMAT`, repeated here
#: because ``pc3d.nn`` sits below the engine and imports nothing from it; a test keeps the two
#: equal).
PC3D_FORMAT = "pc3d-checkpoint"


def read_mmdet3d_checkpoint(path: str | Path) -> MMDet3DCheckpoint:
    """Load an MMDetection3D checkpoint file on the CPU (`torch.load(..., weights_only=True)`).

    Also a bare state dict in MMDetection3D's layout (:func:`has_mmcv_sparse_layout`), with an
    empty meta.

    Raises:
        FormatError: naming the file, when it is not a torch checkpoint or not MMDetection3D's.
    """
    try:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise FormatError(f"{path}: not a loadable torch checkpoint ({err})") from err
    if isinstance(checkpoint, Mapping) and checkpoint.get("format") == PC3D_FORMAT:
        raise FormatError(
            f"{path}: already a pc3d checkpoint (as `pc3d checkpoint convert` writes them): "
            "use it as it is, without --from mmdet3d"
        )
    if (
        isinstance(checkpoint, Mapping)
        and all(isinstance(v, Tensor) for v in checkpoint.values())
        and has_mmcv_sparse_layout(checkpoint)
    ):
        return MMDet3DCheckpoint(checkpoint, {}, str(path))
    if not is_mmdet3d_checkpoint(checkpoint):
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise FormatError(
            f"{path}: not an MMDetection3D checkpoint (expected a dict with 'meta' holding 'mmdet3d_version' "
            f"and a 'state_dict'; found {found})"
        )
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, Mapping):
        raise FormatError(f"{path}: the MMDetection3D checkpoint has no 'state_dict'")
    meta = checkpoint.get("meta")
    return MMDet3DCheckpoint(state_dict, meta if isinstance(meta, Mapping) else {}, str(path))


def mmcv_sparse_weight_to_spconv(weight: Tensor) -> Tensor:
    """A sparse-conv kernel from MMCV's `(kD, kH, kW, C_in, C_out)` to spconv 2's `(C_out, kD, kH, kW, C_in)`."""
    return weight.permute(4, 0, 1, 2, 3).contiguous()


def convert_mmdet3d_state_dict(
    state_dict: Mapping[str, Tensor],
    component_names: Mapping[str, str] | None = None,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "state dict",
) -> dict[str, Tensor]:
    """Map every MMDetection3D key through `MMDET3D_KEY_TABLE` to pc3d's key and layout.

    Args:
        state_dict: MMDetection3D's `state_dict` (keys like `backbone.blocks.0.0.weight`).
        component_names: pc3d attribute names for MMDetection3D's components when they differ,
            e.g. `{"bbox_head": "head"}` (applied to the first name of each target key).
        metadata: the state dict's module metadata (default: its `_metadata`, which
            `torch.load` keeps); a sparse conv recorded with `version` 2 is already in spconv 2's
            layout.
        source: the file named in errors.

    Returns:
        pc3d state dict (new dict; sparse-conv weights converted, other tensors shared).

    Raises:
        FormatError: listing every key no table row maps and every sparse-conv weight that is
            not 5-dimensional.
    """
    if metadata is None:
        metadata = getattr(state_dict, "_metadata", None) or {}
    renames = dict(component_names or {})
    out: dict[str, Tensor] = {}
    unmapped: list[str] = []
    misshaped: list[str] = []
    for key, value in state_dict.items():
        rule, target = _match(key)
        if rule is None:
            unmapped.append(key)
            continue
        if rule.layout == SPARSE_CONV:
            if value.dim() != 5:
                misshaped.append(f"{key} {tuple(value.shape)} (a sparse-conv kernel has 5 dimensions)")
                continue
            module = key.rsplit(".", 1)[0]
            if metadata.get(module, {}).get("version") != 2:
                value = mmcv_sparse_weight_to_spconv(value)
        head, _, rest = target.partition(".")
        out[f"{renames.get(head, head)}.{rest}"] = value
    if unmapped or misshaped:
        parts = []
        if unmapped:
            parts.append(
                f"{len(unmapped)} keys no row of the MMDetection3D key table maps: {first_named(unmapped, _MAX_LISTED)}"
            )
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped keys: {first_named(misshaped, _MAX_LISTED)}")
        raise FormatError(f"{source}: " + "; ".join(parts))
    return out


def _match(key: str) -> tuple[KeyRule | None, str]:
    for pattern, rule in _COMPILED:
        found = pattern.fullmatch(key)
        if found:
            return rule, found.expand(rule.target)
    return None, ""


def load_mmdet3d_checkpoint(
    model: nn.Module,
    checkpoint: str | Path | MMDet3DCheckpoint,
    component_names: Mapping[str, str] | None = None,
) -> Mapping[str, Any]:
    """Load an MMDetection3D checkpoint into a pc3d model (strict: every key on both sides).

    Args:
        model: a pc3d model whose submodules carry MMDetection3D's component names (or the names
            given in `component_names`), built with the checkpoint's configuration.
        checkpoint: a file path or a `read_mmdet3d_checkpoint` result.
        component_names: see `convert_mmdet3d_state_dict`.

    Returns:
        The checkpoint's `meta` (`mmdet3d_version`, `config` text, `dataset_meta`, ...).

    Raises:
        FormatError: naming the file and listing the checkpoint keys the model lacks, the model
            keys the checkpoint lacks, and the keys whose shapes differ.
    """
    if not isinstance(checkpoint, MMDet3DCheckpoint):
        checkpoint = read_mmdet3d_checkpoint(checkpoint)
    converted = convert_mmdet3d_state_dict(checkpoint.state_dict, component_names, source=checkpoint.source)
    mismatch = weight_mismatch(model.state_dict(), converted)
    if mismatch is not None:
        raise FormatError(f"{checkpoint.source}: does not fit {type(model).__name__}: {mismatch}")
    model.load_state_dict(converted, strict=True)
    return checkpoint.meta
