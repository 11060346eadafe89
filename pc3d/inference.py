"""Run a trained model on point clouds from Python: build it from a config, load weights, predict.

::

    import pc3d.inference
    model = pc3d.inference.load_model("pointpillars_hv-secfpn_kitti-3d-3class", "pointpillars.pth")
    dets = pc3d.inference.detect(model, "000008.bin")          # Detections3D, best first
    print(model.class_names[int(dets.labels[0])], dets.boxes.tensor[0], float(dets.scores[0]))

The checkpoint may be a pc3d checkpoint, a plain state dict, or an MMDetection3D 1.x checkpoint of
the same architecture (mapped through :mod:`pc3d.nn.checkpoint_mmdet3d`); every file is loaded with
``torch.load(..., weights_only=True)``. :func:`predict` returns what the model predicts for one
frame (``Detections3D`` for a detector, per-point labels for a segmentation model);
:func:`detect` insists on detections.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from pc3d.config import Config, build, load_config
from pc3d.errors import FormatError, Pc3dError
from pc3d.structures import BasePoints, Detections3D

if TYPE_CHECKING:
    from pc3d.io.points import NanPolicy, UseDims

__all__ = [
    "PointsLike",
    "as_point_tensor",
    "check_point_model",
    "detect",
    "finite_rows",
    "load_model",
    "model_input",
    "predict",
]

#: What :func:`predict` accepts as one frame: a point file, an ``[N, C]`` array or tensor, or points.
PointsLike = str | os.PathLike[str] | np.ndarray | Tensor | BasePoints


def load_model(
    config: str | os.PathLike[str] | Config,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = "cpu",
    overrides: Sequence[str] = (),
    optimize: bool = False,
) -> nn.Module:
    """Build a config's model, load a checkpoint into it (strictly) and put it in eval mode.

    Also applies :func:`pc3d.allocator.keep_freed_memory` (as the ``pc3d`` command does): freed
    feature maps are reused by the next frame instead of being mapped afresh (on a 2-core CPU a
    plain KITTI PointPillars or SECOND frame is 1.15x to 1.5x faster; docs/benchmarks.md).
    ``PC3D_MALLOC=system`` opts out.

    Args:
        config: a config file, the name of a shipped config, or a loaded :class:`Config`.
        checkpoint: a pc3d checkpoint, a state dict, or an MMDetection3D 1.x checkpoint; ``None``
            keeps the freshly initialised weights.
        device: where the model runs: a torch device, ``"auto"`` (CUDA when available, else the
            CPU) or None for the config's ``runtime.device`` (which defaults to ``auto``).
        overrides: ``KEY=VALUE`` config overrides (as ``--set``), for a name or file.
        optimize: return the model's inference copy (its ``optimize_for_inference()``: the 3D
            detectors fold their batch norms, run channels-last, compute wide 3x3 convs by
            Winograd's algorithm and skip the empty tiles of the BEV map on the CPU; same outputs
            to float rounding, 1.5x-1.9x faster for KITTI PointPillars on a 2-core CPU,
            docs/benchmarks.md). Such a copy cannot train and its state dict has no batch norms.
            Models without that method are returned as they are.

    Returns:
        The model, with ``class_names`` (from the model, else the config's ``class_names``).

    Raises:
        Pc3dError: a config problem, an unreadable checkpoint, or weights that do not fit (the
            message lists the keys).
    """
    # Imported here: the engine pulls in the data loaders, which a plain import of pc3d skips.
    from pc3d.allocator import keep_freed_memory
    from pc3d.engine.checkpoint import load_checkpoint, model_state_from
    from pc3d.engine.dist import resolve_device
    from pc3d.engine.schema import parse_run_spec
    from pc3d.engine.state import class_order_mismatch, load_model_state
    from pc3d.nn.fuse import inference_copy

    keep_freed_memory()
    cfg = config if isinstance(config, Config) else load_config(config, list(overrides))
    if cfg.data.get("model") is None:
        raise Pc3dError(f"{cfg.path or 'config'}: no 'model' section")
    # The key checks of pc3d train / test: `--set runtime.devise=cpu` is no silent no-op.
    spec = parse_run_spec(cfg)
    model = build(cfg.node("model"), "model")
    if not isinstance(model, nn.Module):
        raise Pc3dError(
            f"{cfg.path or 'config'}: model built a {type(model).__name__}, not a torch nn.Module"
        )
    if not getattr(model, "class_names", None):
        configured = cfg.data.get("class_names")
        model.class_names = [str(n) for n in configured] if configured else []  # type: ignore[assignment]
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)
        load_model_state(model, model_state_from(state, checkpoint), checkpoint, state)
        mismatch = class_order_mismatch(state, checkpoint, model)
        if mismatch is not None:
            raise Pc3dError(mismatch)
    if device is None:
        device = spec.runtime.device
    target = resolve_device(device) if device in ("auto", "cpu", "cuda") else torch.device(device)
    if target.type == "cuda":
        resolve_device("cuda")  # a clear error where torch has no CUDA device
    model = model.to(target).eval()
    fast = inference_copy(model) if optimize else None
    return model if fast is None else fast


def as_point_tensor(
    points: PointsLike,
    num_features: int | None = None,
    nan_policy: NanPolicy = "drop",
    use_dims: UseDims | None = None,
) -> Tensor:
    """One frame's points as ``float32 Tensor[N, C]`` (x, y, z first).

    Args:
        points: a `.bin`, `.npy`, `.pcd` or `.ply` file, an array or tensor, or a points object.
        num_features: values per point of a `.bin` file (default 4).
        nan_policy: for a file, what to do with points whose x, y or z is not finite (see
            :func:`pc3d.io.points.read_point_file`); arrays and tensors are taken as they are.
        use_dims: the columns the model reads, when the cloud has others (a ROS cloud's ``ring``
            and ``timestamp``): ``4`` keeps the first four, ``["x", "y", "z", "intensity"]`` picks
            by name (a file's field names; an array's columns are ``x y z intensity feature_4
            ...``), ``[0, 1, 2, 4]`` by index (see :func:`pc3d.io.points.select_columns`).

    Raises:
        FormatError: not ``[N, C>=3]``, an unreadable file (naming it), or ``use_dims`` naming
            columns the cloud does not have.
    """
    from pc3d.io.points import default_fields, fields_of_points, read_point_file, select_columns

    if isinstance(points, (str, os.PathLike)):
        data = read_point_file(Path(points), num_features=num_features, nan_policy=nan_policy)
        return torch.from_numpy(data.array if use_dims is None else data.select(use_dims).array)
    if isinstance(points, BasePoints):
        tensor = points.tensor
    elif isinstance(points, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(points))
    else:
        tensor = points
    if tensor.dim() != 2 or tensor.shape[1] < 3:
        raise FormatError(f"points must be [N, C>=3] (x, y, z first), got shape {tuple(tensor.shape)}")
    if use_dims is not None:
        fields = (
            fields_of_points(points) if isinstance(points, BasePoints) else default_fields(tensor.shape[1])
        )
        tensor = tensor[:, select_columns(fields, use_dims)]
    return tensor.to(torch.float32)


def model_input(points: Tensor, what: str = "points", nan_policy: NanPolicy = "drop") -> Tensor:
    """``points`` without the rows a model cannot take (see :func:`finite_rows`)."""
    rows = finite_rows(points, what, nan_policy)
    return points if rows is None else points[rows]


def finite_rows(points: Tensor, what: str = "points", nan_policy: NanPolicy = "drop") -> Tensor | None:
    """The rows a model can take, ``Bool[N]``: those without a NaN or infinite value in any
    column; ``None`` when every row can be taken (the common case, found with one sum).

    Reading a cloud (``nan_policy`` of :func:`pc3d.io.points.read_point_file`) checks x, y, z
    only, and keeps NaN in other columns (a file's data as it is); a model reads every column,
    and one NaN intensity makes every score of the frame NaN (no detections at all).

    Args:
        points: ``Tensor[N, C]``.
        what: the cloud's name in the warning or error.
        nan_policy: ``"drop"`` (with a warning naming the count and the columns) or ``"raise"``.

    Raises:
        FormatError: ``"raise"`` and some row holds a non-finite value.
    """
    if points.shape[0] == 0 or not points.is_floating_point() or bool(torch.isfinite(points.sum())):
        return None
    finite = torch.isfinite(points)
    rows = finite.all(dim=1)
    if bool(rows.all()):  # the sum overflowed, no value is bad
        return None
    columns = (~finite).any(dim=0).nonzero()[:, 0].tolist()
    bad = int(points.shape[0] - int(rows.sum()))
    said = f"{bad} of {points.shape[0]} points have NaN or infinite values in column(s) {columns}"
    if nan_policy == "raise":
        raise FormatError(f"{what}: {said}, which the model reads")
    from pc3d.io.points import NonFinitePointsWarning

    warnings.warn(
        f"{what}: dropped {said.replace(' have ', ' with ')} before the model (it reads every column); to "
        "stop with an error instead, use --nan-policy raise (command line) or nan_policy='raise' (Python)",
        NonFinitePointsWarning,
        stacklevel=3,
    )
    return rows


def check_point_model(model: nn.Module) -> None:
    """Refuse a model whose ``predict`` takes images (a 2D detector, a classifier, an image
    segmentor): this module and ``pc3d infer`` feed point clouds.

    Raises:
        Pc3dError: naming the model and what to use instead.
    """
    import inspect

    run = getattr(model, "predict", None)
    if not callable(run):
        return
    try:
        first = next(iter(inspect.signature(run).parameters), None)
    except (TypeError, ValueError):
        return
    if first in ("images", "image", "imgs"):
        raise Pc3dError(
            f"{type(model).__name__} is an image model (its predict takes {first}); pc3d infer and "
            "pc3d.inference run point-cloud models. Evaluate it with pc3d test; a 2D detector runs on "
            "image files from Python with pc3d_det2d.detect_images (docs/det2d.md)"
        )


@torch.no_grad()
def predict(
    model: nn.Module,
    points: PointsLike,
    score_thr: float | None = None,
    nan_policy: NanPolicy = "drop",
    use_dims: UseDims | None = None,
) -> Any:
    """What ``model.predict`` returns for one frame (``Detections3D`` for a detector).

    Args:
        model: a model from :func:`load_model` (anything with ``predict(list_of_frames)``).
        points: the frame (see :func:`as_point_tensor`).
        score_thr: replaces the head's ``test_cfg.score_thr`` for this call when the head has one;
            otherwise detections scoring at or below it are dropped afterwards.
        nan_policy: points with a NaN or infinite value in any column are dropped with a warning
            (``"drop"``) or an error (``"raise"``): see :func:`model_input`.
        use_dims: the columns the model reads (see :func:`as_point_tensor`).

    Raises:
        Pc3dError: the model has no ``predict``; non-finite values with ``"raise"``.
    """
    run = getattr(model, "predict", None)
    if not callable(run):
        raise Pc3dError(f"{type(model).__name__} has no predict(frames) method, so it cannot run inference")
    check_point_model(model)
    device = next(model.parameters()).device
    what = str(points) if isinstance(points, (str, os.PathLike)) else "points"
    frame = model_input(as_point_tensor(points, None, nan_policy, use_dims), what, nan_policy).to(device)
    head: Any = getattr(model, "bbox_head", None)
    test_cfg: Any = getattr(head, "test_cfg", None)
    if score_thr is None or not dataclasses.is_dataclass(test_cfg) or not hasattr(test_cfg, "score_thr"):
        result = run([frame])[0]
        if score_thr is not None and isinstance(result, Detections3D):
            result = result[result.scores > score_thr]
        return result
    # Candidates at or below the threshold take no part in NMS, exactly as with that test_cfg.
    head.test_cfg = dataclasses.replace(test_cfg, score_thr=float(score_thr))  # type: ignore[type-var]
    try:
        return run([frame])[0]
    finally:
        head.test_cfg = test_cfg


def detect(
    model: nn.Module,
    points: PointsLike,
    score_thr: float | None = None,
    nan_policy: NanPolicy = "drop",
    use_dims: UseDims | None = None,
) -> Detections3D:
    """One frame's 3D detections: LiDAR boxes (bottom centre), scores and labels, best first.

    Args:
        model: a detector from :func:`load_model`; ``model.class_names[label]`` names a label.
        points: the frame (see :func:`as_point_tensor`).
        score_thr: see :func:`predict`.
        nan_policy: see :func:`predict`.
        use_dims: see :func:`predict`.

    Raises:
        Pc3dError: the model does not predict ``Detections3D`` (e.g. a segmentation model).
    """
    result = predict(model, points, score_thr, nan_policy, use_dims)
    if not isinstance(result, Detections3D):
        raise Pc3dError(
            f"{type(model).__name__} predicts {type(result).__name__}, not Detections3D: not a 3D detector"
        )
    return result
