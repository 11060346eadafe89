"""Build a training or test run from a config: the functions behind ``pc3d train`` and
``pc3d test``.

Order of a training run's set-up (it matters for reproducibility):

1. join the process group (``torchrun``) and pick the device;
2. seed every generator with ``runtime.seed`` (same on all ranks, so all ranks build identical
   weights); set deterministic mode if asked;
3. build the model, datasets, metrics and hooks through the plugin registry;
4. build the optimizer and schedule, then ``--load-from`` weights or ``--resume`` state;
5. reseed the generators per rank (``(seed, rank)``) so that dropout differs across ranks, or,
   when resuming, restore the generators saved in the checkpoint.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from pc3d.config import Config, ConfigError, build, dump_config
from pc3d.engine import checkpoint as ckpt
from pc3d.engine.adapter import ModelAdapter
from pc3d.engine.dist import DistInfo, destroy_distributed, init_distributed
from pc3d.engine.evaluation import evaluate
from pc3d.engine.hooks import HookList
from pc3d.engine.loaders import make_eval_loader
from pc3d.engine.logging import METRICS_NAME
from pc3d.engine.schema import LoaderSpec, RunSpec, parse_run_spec
from pc3d.engine.seed import derive_seed, seed_everything, set_deterministic
from pc3d.engine.state import class_order_mismatch, load_model_state
from pc3d.engine.trainer import Trainer
from pc3d.engine.work_dir_lock import WorkDirLock
from pc3d.io.jsonio import write_json
from pc3d.nn.fuse import inference_copy

__all__ = ["RunOptions", "build_trainer", "default_work_dir", "run_test", "run_train"]


@dataclass
class RunOptions:
    """What the command line adds to a config.

    Attributes:
        work_dir: where outputs go (default: ``work_dirs/<config name>``).
        resume: ``None`` (start fresh), ``True`` (latest checkpoint in the work dir) or a path.
        load_from: model weights to start from (overrides ``runtime.load_from``).
        device: ``auto``, ``cpu`` or ``cuda`` (overrides ``runtime.device``).
        deterministic: overrides ``runtime.deterministic`` when not None.
    """

    work_dir: str | os.PathLike[str] | None = None
    resume: bool | str | os.PathLike[str] | None = None
    load_from: str | os.PathLike[str] | None = None
    device: str | None = None
    deterministic: bool | None = None


def default_work_dir(config: Config) -> Path:
    """``work_dirs/<config file name without suffix>`` (MMDetection's convention)."""
    stem = config.path.stem if config.path is not None else "run"
    return Path("work_dirs") / stem


def _setup(spec: RunSpec, options: RunOptions) -> tuple[DistInfo, int]:
    runtime = spec.runtime
    if runtime.num_threads is not None:
        torch.set_num_threads(runtime.num_threads)
    deterministic = runtime.deterministic if options.deterministic is None else options.deterministic
    set_deterministic(deterministic)  # before CUDA starts: cuBLAS reads its workspace setting once
    dist = init_distributed(options.device or runtime.device, timeout_s=runtime.dist_timeout)
    seed = runtime.seed
    if seed is None:
        seed = dist.broadcast_object(int.from_bytes(os.urandom(4), "little"))
    seed_everything(seed)
    return dist, seed


def _build_model(
    config: Config, spec: RunSpec, dist: DistInfo, registry: Any, *, training: bool = True
) -> nn.Module:
    if spec.model is None:
        raise ConfigError(f"{config.path or 'config'}: no 'model' section")
    model = build(spec.model, "model", registry=registry)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{spec.model.where()}: model built a {type(model).__name__}, not a torch nn.Module"
        )
    if spec.runtime.sync_bn and training:  # an evaluation never syncs BatchNorm statistics
        if dist.device.type != "cuda":
            raise ConfigError(
                "runtime.sync_bn: torch's SyncBatchNorm runs on CUDA only; set it false on the CPU"
            )
        if dist.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model.to(dist.device)


def _build_dataset(config: Config, split: str, registry: Any) -> Any:
    dataset = build(config.node(f"data.{split}.dataset"), "dataset", registry=registry)
    for attribute in ("__len__", "__getitem__"):
        if not callable(getattr(dataset, attribute, None)):
            raise ConfigError(
                f"data.{split}.dataset: {type(dataset).__name__} has no {attribute}; the engine "
                "needs a map-style dataset (len(dataset), dataset[i] -> sample)"
            )
    return dataset


def _build_list(config: Config, key: str, kind: str, registry: Any) -> list[Any]:
    value = config.get(key, None)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{config.node(key).where()}: expected a list of '- type: ...' entries")
    return [build(config.node(f"{key}.{i}"), kind, registry=registry) for i in range(len(value))]


def build_trainer(config: Config, options: RunOptions | None = None, *, registry: Any = None) -> Trainer:
    """Everything for a training run, ready for ``Trainer.train``.

    Args:
        config: the resolved config.
        options: what the command line adds (work dir, resume, weights, device).
        registry: where component names are looked up (default: the installed plugins').

    Returns:
        The trainer, with weights loaded or state resumed as ``options`` say.

    Raises:
        ConfigError: a section does not make a run (names the key).
        CheckpointError: the checkpoint to resume from or load is missing or unusable.
    """
    options = options or RunOptions()
    spec = parse_run_spec(config)
    if spec.data.train is None:
        raise ConfigError(f"{config.path or 'config'}: data.train is missing")
    dist, seed = _setup(spec, options)
    work_dir = Path(options.work_dir) if options.work_dir is not None else default_work_dir(config)
    resume_path = _resume_path(options.resume, work_dir, dist)
    resume_state: dict[str, Any] | None = None
    if resume_path is not None:
        resume_state = ckpt.load_checkpoint(resume_path)
        # The checkpoint's seed governs data order and augmentation: take it before building.
        saved_seed = resume_state.get("seed")
        if isinstance(saved_seed, int) and saved_seed != seed:
            seed = saved_seed
            seed_everything(seed)
    trainer, unfinished = _make_trainer(config, spec, dist, seed, work_dir, registry)
    try:
        if unfinished:
            trainer.logger.event(
                f"removed {len(unfinished)} unfinished checkpoint write(s) of an interrupted run: "
                + ", ".join(p.name for p in unfinished)
            )
        if options.resume is True and resume_path is None:
            trainer.logger.event(f"--resume: no checkpoint in {work_dir} yet; starting from the beginning")
        _start_from(trainer, options.load_from or spec.runtime.load_from, resume_path, resume_state)
        if dist.is_main:  # only once the run can start: a refused one leaves the earlier run's file
            dump_config(config, work_dir)
    except BaseException:
        trainer.close()  # the log file and loader workers; the caller never sees this trainer
        raise
    return trainer


def _resume_path(resume: bool | str | os.PathLike[str] | None, work_dir: Path, dist: DistInfo) -> Path | None:
    """The checkpoint ``--resume`` names: a path, or (``True``) the latest in the work dir."""
    if not resume:
        return None
    if resume is True:
        found = ckpt.resolve_resume(work_dir) if dist.is_main else None
        return dist.broadcast_object(found)
    path = Path(resume)
    if not path.is_file():
        raise ckpt.CheckpointError(f"--resume {path}: no such checkpoint")
    return path


T = TypeVar("T")


def _in_turn(dist: DistInfo, make: Callable[[], T]) -> T:
    """``make()`` on rank 0 first, then on the other ranks: building a data set may write files
    (a generated set, a converted copy), which the other ranks then read rather than write too."""
    if dist.distributed and not dist.is_main:
        dist.barrier()
    made = make()
    if dist.distributed and dist.is_main:
        dist.barrier()
    return made


def _make_trainer(
    config: Config, spec: RunSpec, dist: DistInfo, seed: int, work_dir: Path, registry: Any
) -> tuple[Trainer, list[Path]]:
    """Build the components, clear unfinished checkpoint writes (rank 0), then the trainer;
    returns it and the temporary files that were removed."""
    model = _build_model(config, spec, dist, registry)
    train_set, val_set = _in_turn(
        dist,
        lambda: (
            _build_dataset(config, "train", registry),
            _build_dataset(config, "val", registry) if spec.data.val is not None else None,
        ),
    )
    metrics = _build_list(config, "metrics", "metric", registry)
    hook_objects = _build_list(config, "train.hooks", "train_hook", registry)
    names = [config.get(f"train.hooks.{i}.type") for i in range(len(hook_objects))]
    try:
        hooks = HookList(hook_objects, names)
    except TypeError as err:
        raise ConfigError(f"train.hooks: {err}") from err
    unfinished: list[Path] = []
    lock = None
    if dist.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        lock = WorkDirLock(work_dir)  # before touching anything another run may be writing
        unfinished = ckpt.remove_unfinished_writes(work_dir)
    # One keyword per Trainer field (shaped like other keyword calls, e.g. pc3d.vis.render's).
    trainer = Trainer(
        model=model,
        spec=spec,
        config=config,
        train_set=train_set,
        val_set=val_set,
        metrics=metrics,
        hooks=hooks,
        work_dir=work_dir,
        dist=dist,
        seed=seed,
    )
    trainer.work_dir_lock = lock
    return trainer, unfinished


def _start_from(
    trainer: Trainer,
    load_from: str | os.PathLike[str] | None,
    resume_path: Path | None,
    resume_state: dict[str, Any] | None,
) -> None:
    """Resume the checkpoint, or start fresh (from ``load_from``'s weights, if given)."""
    if resume_path is not None:
        if load_from:
            trainer.logger.event(f"--resume given: ignoring load_from {load_from}")
        trainer.resume(resume_path, state=resume_state)
        return
    if load_from:  # first: weights that do not fit leave the earlier run's files as they were
        trainer.load_weights(load_from)
    if trainer.dist.is_main:
        _retire_earlier_run(trainer)
    # Identical weights on every rank come from the shared seed; from here on each rank draws
    # its own dropout masks.
    seed_everything(derive_seed(trainer.seed, trainer.dist.rank))


def _retire_earlier_run(trainer: Trainer) -> None:
    """A fresh run in a work directory an earlier run used: its ``metrics.jsonl`` is set aside
    (renamed with a time stamp) so that the file describes this run only, and the
    ``last_checkpoint`` pointer is dropped so that a later ``--resume`` cannot pick up the
    earlier run's checkpoint before this run has written one."""
    work_dir = trainer.work_dir
    earlier = ckpt.list_checkpoints(work_dir)
    metrics = work_dir / METRICS_NAME
    notes = []
    if metrics.is_file():
        kept = work_dir / f"metrics.{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        metrics.rename(kept)
        notes.append(f"its metrics.jsonl is now {kept.name}")
    best = work_dir / ckpt.BEST_NAME
    if best.is_file():  # this run's first evaluation would replace it, better or not
        kept_best = work_dir / f"best.{time.strftime('%Y%m%d-%H%M%S')}.pth"
        best.rename(kept_best)
        notes.append(f"its best.pth is now {kept_best.name}")
    (work_dir / ckpt.LAST_POINTER).unlink(missing_ok=True)
    if earlier:
        notes.append(
            f"its checkpoints ({', '.join(p.name for p in earlier)}) are overwritten as this run reaches them"
        )
    if notes:
        trainer.logger.event(
            f"{work_dir} holds an earlier run; starting a new one ({'; '.join(notes)}). To "
            "continue the earlier run instead, use --resume",
            kind="new_run_in_used_dir",
        )


def run_train(config: Config, options: RunOptions | None = None, *, registry: Any = None) -> dict[str, float]:
    """``pc3d train``: train to the end of the schedule.

    Args:
        config: the resolved config.
        options: what the command line adds.
        registry: where component names are looked up (default: the installed plugins').

    Returns:
        The last evaluation's metrics (empty without ``data.val`` and ``metrics``).

    Raises:
        Pc3dError: a config, data or checkpoint problem, a non-finite loss, or an error the
            model raises (each with a message for one line).
    """
    trainer: Trainer | None = None
    try:
        trainer = build_trainer(config, options, registry=registry)
        metrics = trainer.train()
        trainer.dist.barrier()  # no rank leaves the group while another still writes
        return metrics
    finally:
        if trainer is not None:
            # DistributedDataParallel must go before its process group does: freeing it after
            # destroy_process_group can hang a gloo rank at exit.
            trainer.close()
        destroy_distributed()


def run_test(
    config: Config,
    checkpoint: str | os.PathLike[str],
    *,
    json_path: str | os.PathLike[str] | None = None,
    device: str | None = None,
    registry: Any = None,
    optimize: bool = False,
) -> dict[str, float]:
    """``pc3d test``: evaluate ``checkpoint`` with the config's metrics.

    The data is ``data.test`` (else ``data.val``). Rank 0 prints the results and, with
    ``json_path``, writes them with the checkpoint, its position, the split and the number of
    samples.

    Args:
        config: the resolved config.
        checkpoint: a pc3d checkpoint or a weights file.
        json_path: where to write the results as JSON (NaN/inf as null), or None.
        device: ``auto``, ``cpu`` or ``cuda`` (default: ``runtime.device``).
        registry: where component names are looked up (default: the installed plugins').
        optimize: evaluate the model's ``optimize_for_inference()`` copy where it has one (the
            record says ``"optimized"``).

    Returns:
        The results by metric name.

    Raises:
        Pc3dError: a config, data or checkpoint problem, or an error the model raises.
    """
    spec = parse_run_spec(config)
    split = "test" if spec.data.test is not None else "val"
    loader_spec: LoaderSpec | None = spec.data.test or spec.data.val
    if loader_spec is None:
        raise ConfigError(f"{config.path or 'config'}: pc3d test needs data.test or data.val")
    try:
        dist, seed = _setup(spec, RunOptions(device=device))
        model = _build_model(config, spec, dist, registry, training=False)
        metrics = _build_list(config, "metrics", "metric", registry)
        if not metrics:
            raise ConfigError(f"{config.path or 'config'}: pc3d test needs a 'metrics' list")
        # The checkpoint before the data: building a data set may read or generate a lot.
        state = ckpt.load_checkpoint(checkpoint)
        load_model_state(model, ckpt.model_state_from(state, checkpoint), checkpoint, state)
        mismatch = class_order_mismatch(state, checkpoint, model)
        if mismatch is not None:  # every label would name the wrong class
            raise ckpt.CheckpointError(mismatch)
        dataset = _in_turn(dist, lambda: _build_dataset(config, split, registry))
        fast = inference_copy(model) if optimize else None
        model = model if fast is None else fast
        loader = make_eval_loader(dataset, loader_spec, dist, seed)
        results = evaluate(ModelAdapter(model), loader, metrics, dist, progress=f"test ({split})")
    finally:
        destroy_distributed()
    if dist.is_main:
        trained = state.get("format") == ckpt.FORMAT
        record: dict[str, Any] = {
            "checkpoint": str(checkpoint),
            "epoch": state.get("epoch") if trained else None,
            "iteration": state.get("iteration") if trained else None,
            "split": split,
            "num_samples": len(dataset),
            "optimized": fast is not None,
            **results,
        }
        _report(results, record, json_path)
    return results


def _report(
    results: dict[str, float], record: dict[str, Any], json_path: str | os.PathLike[str] | None
) -> None:
    width = max((len(k) for k in results), default=0)
    for name, value in results.items():
        print(f"{name:<{width}}  {value:.6g}")
    if json_path is not None:
        # Written atomically, with a metric that is NaN or infinite as null (valid JSON).
        target = write_json(json_path, record)
        print(f"metrics written to {target}", file=sys.stderr)
