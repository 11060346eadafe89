"""What a training checkpoint holds, and the checks before a run continues from one.

A checkpoint (:mod:`pc3d.engine.checkpoint` writes and reads the file) holds the model,
optimizer, scheduler and ``GradScaler`` states, the hooks' states, the position (epoch,
iteration), the seed, the best metric so far, the config, and every rank's random-generator
states. Resuming is exact only with the same number of processes, batch size and iterations per
epoch and the same ``schedule`` / ``optimizer`` sections; anything else is refused with the
reason and the ``--load-from`` alternative.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import pc3d
from pc3d.config import ConfigError
from pc3d.engine import checkpoint as ckpt
from pc3d.engine.logging import rewrite_metrics_until
from pc3d.engine.schema import BestMetricSpec
from pc3d.engine.seed import capture_rng_state
from pc3d.errors import did_you_mean

if TYPE_CHECKING:
    from pc3d.engine.trainer import Trainer

__all__ = [
    "RunShape",
    "check_best_metric",
    "check_resumable",
    "load_model_state",
    "load_optimization_state",
    "plain_config",
    "restore_training_state",
    "track_best",
    "training_state",
    "write_checkpoint",
]

#: Config sections whose change would break the learning-rate curve of a resumed run.
RESUME_SECTIONS = ("schedule", "optimizer")


@dataclass(frozen=True)
class RunShape:
    """What fixes the data order and the iteration count: it must match to resume exactly.

    Attributes:
        iters_per_epoch: optimizer steps per epoch.
        world_size: number of processes.
        batch_size: samples per process and step.
    """

    iters_per_epoch: int
    world_size: int
    batch_size: int


_SHAPE_WORDS = {
    "iters_per_epoch": "iterations per epoch",
    "world_size": "processes",
    "batch_size": "batch size per process",
}


def plain_config(value: Any) -> Any:
    """Config data as JSON types (YAML dates become strings), safe for weights-only loading."""
    return json.loads(json.dumps(value, default=str))


def training_state(trainer: Trainer) -> dict[str, Any]:
    """The checkpoint contents of ``trainer`` now (every rank calls this: RNG states are gathered).

    Args:
        trainer: the run.

    Returns:
        A mapping of tensors and plain data (loadable with ``weights_only=True``).
    """
    rng = trainer.dist.all_gather_object(capture_rng_state())
    shape = trainer.shape
    return {
        "format": ckpt.FORMAT,
        "format_version": ckpt.FORMAT_VERSION,
        "pc3d_version": pc3d.__version__,
        "torch_version": str(torch.__version__),  # TorchVersion is not weights-only safe
        "epoch": trainer.iteration // shape.iters_per_epoch,
        "iteration": trainer.iteration,
        **asdict(shape),
        "max_iters": trainer.max_iters,
        "seed": trainer.seed,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "rng": rng,
        "hooks": trainer.hooks.state_dict(),
        "best": trainer.best,
        "config": plain_config(trainer.config.data),
    }


def check_resumable(
    state: Mapping[str, Any], path: str | os.PathLike[str], shape: RunShape, config_data: Mapping[str, Any]
) -> None:
    """Refuse a checkpoint this run cannot continue exactly.

    Args:
        state: the loaded checkpoint.
        path: its file, for messages.
        shape: this run's processes, batch size and iterations per epoch.
        config_data: this run's resolved config.

    Raises:
        CheckpointError: not a training checkpoint (a weights file), another run shape, or
            another ``schedule`` / ``optimizer`` section; the message says what differs.
    """
    if state.get("format") != ckpt.FORMAT:
        raise ckpt.CheckpointError(
            f"{path} is not a pc3d training checkpoint (no optimizer or schedule state); "
            "use --load-from to start from its weights"
        )
    here = asdict(shape)
    different = [key for key in here if state.get(key) != here[key]]
    if different:
        details = ", ".join(f"{_SHAPE_WORDS[k]} {state.get(k)} then, {here[k]} now" for k in different)
        raise ckpt.CheckpointError(
            f"cannot resume exactly from {path}: {details}. Resume with the same number of "
            "processes, batch size and dataset, or start a new run from its weights with "
            "--load-from"
        )
    saved_config = state.get("config") or {}
    for section in RESUME_SECTIONS:
        then, now = plain_config(saved_config.get(section)), plain_config(config_data.get(section))
        if then != now:
            raise ckpt.CheckpointError(
                f"cannot resume from {path}: the '{section}' section differs from the one the "
                f"checkpoint was trained with ({json.dumps(then)} then, {json.dumps(now)} now); "
                "the learning-rate curve would not continue. Start a new run from its weights "
                "with --load-from"
            )


def load_model_state(
    model: nn.Module,
    weights: Mapping[str, Any],
    path: str | os.PathLike[str],
    state: Mapping[str, Any] | None = None,
) -> None:
    """Load ``weights`` into ``model`` strictly.

    Args:
        model: the model built from the config.
        weights: its state dict from the checkpoint.
        path: the checkpoint, for messages.
        state: the whole checkpoint, when at hand: a pc3d training checkpoint records the model
            it holds (its config), which the error then names first.

    Raises:
        CheckpointError: missing, unexpected or differently shaped entries (counted per module,
            the first few named: :func:`pc3d.nn.weight_fit.weight_mismatch`).
    """
    from pc3d.nn.weight_fit import weight_mismatch

    try:
        # Loaded first, described after: a module's load hook may accept keys a plain comparison
        # would not (FrozenBatchNorm2d drops a BatchNorm2d's num_batches_tracked).
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        mismatch = weight_mismatch(model.state_dict(), weights) or str(err)
        other = _other_model(state, model)
        cause = other if other is not None else "(a checkpoint of another model or config?)"
        raise ckpt.CheckpointError(
            f"{path}: its weights do not fit {type(model).__name__} {cause}: {mismatch}"
        ) from err


def _other_model(state: Mapping[str, Any] | None, model: nn.Module) -> str | None:
    """``(it holds a PointSegmentor with classes ...)`` when the checkpoint's recorded config built
    another model class than ``model``'s, else None."""
    config = state.get("config") if isinstance(state, Mapping) else None
    recorded = config.get("model") if isinstance(config, Mapping) else None
    if not isinstance(recorded, Mapping) or not isinstance(recorded.get("type"), str):
        return None
    name = recorded["type"]
    from pc3d.plugin_manager import get_registry

    if name == type(model).__name__:
        return None
    entries = get_registry().find(name)
    if not entries or any(entry.obj is type(model) for entry in entries):
        return None  # the same model under another registered name, or a name this registry lacks
    classes = recorded.get("class_names")
    listed = f" of classes {', '.join(map(str, classes))}" if isinstance(classes, list) and classes else ""
    return f"(it holds a {name}{listed}: a checkpoint of another model)"


def class_order_mismatch(
    state: Mapping[str, Any], path: str | os.PathLike[str], model: nn.Module
) -> str | None:
    """Why the classes a checkpoint records (MMDetection3D's ``meta.dataset_meta.classes``, or
    what ``pc3d checkpoint convert`` kept) are not the model's ``class_names``, or None.

    Same count, other names or order: the weights load, and every label would name the wrong class.
    """
    from pc3d.nn.checkpoint_mmdet3d import checkpoint_class_names

    recorded = checkpoint_class_names(state)
    names = [str(n) for n in getattr(model, "class_names", None) or []]
    if recorded is None or not names or recorded == names:
        return None
    return (
        f"{path}: the checkpoint's classes {recorded} differ from the config's {names}; set the config's "
        "class_names (--set class_names=[...]) to the checkpoint's, in its order"
    )


def load_optimization_state(
    state: Mapping[str, Any],
    path: str | os.PathLike[str],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
) -> None:
    """Restore the optimizer, scheduler and loss-scaler states of a training checkpoint.

    Raises:
        CheckpointError: a state is missing or does not fit (other parameter groups, say).
    """
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise ckpt.CheckpointError(f"{path}: optimizer/scheduler state does not fit: {err}") from err


def write_checkpoint(trainer: Trainer, path: Path, *, periodic: bool) -> None:
    """Write ``trainer``'s checkpoint to ``path`` (rank 0 writes; every rank must call this).

    Args:
        trainer: the run.
        path: the file (``epoch_3.pth``, ``best.pth`` ...).
        periodic: a periodic checkpoint: ``last_checkpoint`` names it, ``train.keep_last``
            prunes older ones, and ``trainer.last_checkpoint`` becomes ``path``.
    """
    state = training_state(trainer)
    if trainer.dist.is_main:
        ckpt.save_checkpoint(state, path)
        if periodic:
            ckpt.write_last_pointer(trainer.work_dir, path)
            keep = trainer.spec.train.keep_last
            if keep is not None:
                # Only this run's line of checkpoints, up to the one just written: a later one
                # in the folder is an earlier run's (a fresh run in a used work dir), kept until
                # this run reaches and overwrites it.
                ipe = trainer.iters_per_epoch
                ours = [
                    p
                    for p in ckpt.list_checkpoints(trainer.work_dir, ipe)
                    if (ckpt.checkpoint_iteration(p, ipe) or 0) <= trainer.iteration
                ]
                for old in ours[:-keep]:
                    old.unlink(missing_ok=True)
        trainer.logger.event(
            f"saved checkpoint {path}", kind="checkpoint", path=str(path), iteration=trainer.iteration
        )
    if periodic:
        trainer.last_checkpoint = path


def restore_training_state(
    trainer: Trainer, path: str | os.PathLike[str], state: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Put ``trainer`` where the checkpoint ``state`` (loaded from ``path``) left off.

    Restores the weights, optimizer, scheduler, scaler and hook states, the position and the
    best metric; on rank 0, drops ``metrics.jsonl`` records after the checkpoint (the resumed run
    repeats those evaluations) and logs the resume.

    Returns:
        This rank's saved random-generator states, to restore right before the first step
        (building the rest of the run draws from the generators), or None.

    Raises:
        CheckpointError: the checkpoint cannot be continued from (see :func:`check_resumable`).
    """
    other = _other_model(state, trainer.model)
    if other is not None:  # said before any schedule or shape difference, which would follow from it
        raise ckpt.CheckpointError(f"{path}: cannot resume {type(trainer.model).__name__} from it {other}")
    check_resumable(state, path, trainer.shape, trainer.config.data)
    load_model_state(trainer.model, state["model"], path, state)
    load_optimization_state(state, path, trainer.optimizer, trainer.scheduler, trainer.scaler)
    trainer.iteration = int(state["iteration"])
    trainer.epoch = trainer.iteration // trainer.iters_per_epoch
    trainer.best = state.get("best")
    trainer.hooks.load_state_dict(state.get("hooks") or {})
    trainer.last_checkpoint = Path(path)
    if trainer.dist.is_main:
        dropped = rewrite_metrics_until(trainer.work_dir, trainer.iteration)
        trainer.logger.event(
            f"resumed from {path} at iteration {trainer.iteration} (epoch {trainer.epoch + 1}, "
            f"batch {trainer.iteration % trainer.iters_per_epoch}/{trainer.iters_per_epoch})"
            + (f"; dropped {dropped} later evaluation(s) from metrics.jsonl" if dropped else ""),
            kind="resume",
            path=str(path),
            iteration=trainer.iteration,
        )
    rng = state.get("rng") or []
    return rng[trainer.dist.rank] if trainer.dist.rank < len(rng) else None


def check_best_metric(spec: BestMetricSpec | None, metrics: Sequence[Any]) -> None:
    """Refuse a ``train.best_metric.name`` no metric gives, before any training, when every
    metric says what it gives (an optional ``names()`` method: the keys its ``compute`` returns).

    Raises:
        ConfigError: the name is not among them (with a "did you mean" and the names).
    """
    if spec is None or not metrics:
        return
    known: list[str] = []
    for metric in metrics:
        names = getattr(metric, "names", None)
        listed = names() if callable(names) else None
        if listed is None:
            return  # a metric that cannot say: checked after the first evaluation instead
        known.extend(str(n) for n in listed)
    if spec.name not in known:
        shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
        raise ConfigError(
            f"train.best_metric.name: '{spec.name}' is not a metric this config evaluates"
            f"{did_you_mean(spec.name, known)}; its metrics give: {shown}"
        )


def track_best(trainer: Trainer, metrics: Mapping[str, float]) -> None:
    """After an evaluation: when ``train.best_metric`` improved, record it and write ``best.pth``.

    A NaN or infinite value never counts as an improvement.

    Raises:
        ConfigError: ``train.best_metric.name`` is not among the evaluated metrics.
    """
    spec = trainer.spec.train.best_metric
    if spec is None:
        return
    if spec.name not in metrics:
        raise ConfigError(
            f"train.best_metric.name: '{spec.name}' is not among the evaluated metrics "
            f"({', '.join(metrics) or 'none'})"
        )
    value = metrics[spec.name]
    best = trainer.best
    better = (
        best is None
        or (spec.mode == "max" and value > best["value"])
        or (spec.mode == "min" and value < best["value"])
    )
    if better and math.isfinite(value):
        epoch = trainer.record_epoch
        trainer.best = {"name": spec.name, "value": value, "iteration": trainer.iteration, "epoch": epoch}
        write_checkpoint(trainer, trainer.work_dir / ckpt.BEST_NAME, periodic=False)
