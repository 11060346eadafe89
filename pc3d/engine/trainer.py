"""The training loop: steps, evaluation, checkpoints, exact resume, NaN stops.

**Model contract.** The engine trains any ``nn.Module`` with two methods (the det3d
``BEVDetector`` and classification ``ImageClassifier`` plugins have them)::

    model.loss(**batch) -> dict[str, Tensor]     # scalar losses; "loss" is the total to
                                                 # back-propagate (else the sum of all entries)
    model.predict(**batch) -> predictions        # whatever the configured metrics take

``batch`` is the collated mapping the data loader yields; each method receives the keys its
signature names (``points``, ``gt_boxes``, ``images`` ...), so a batch may carry extra keys for
metrics (sample ids, ground truth that ``predict`` does not take). Every returned entry is
logged. The engine calls these through a small ``forward(batch, mode)`` adapter, which is what
``DistributedDataParallel`` wraps, so gradient synchronisation works without the model knowing.

**Iterations.** ``trainer.iteration`` counts completed optimizer steps over the whole run;
epoch ``e`` (0-based) holds iterations ``e * iters_per_epoch`` to ``(e + 1) * iters_per_epoch - 1``.
A checkpoint records the iteration, and resuming continues at that position inside its epoch
with the same data order (a function of seed and epoch), the same per-sample augmentation (a
function of seed, epoch and index) and the model's random generators as they were saved.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, default_collate

import pc3d
from pc3d.config import Config, ConfigError
from pc3d.engine import checkpoint as ckpt
from pc3d.engine.dist import DistInfo, EvalShardSampler, ResumableDistributedSampler
from pc3d.engine.hooks import HookList
from pc3d.engine.logging import RunLogger, rewrite_metrics_until
from pc3d.engine.optim import build_optimizer, build_scheduler
from pc3d.engine.schema import LoaderSpec, RunSpec
from pc3d.engine.seed import (
    SeededDataset,
    capture_rng_state,
    derive_seed,
    preserved_rng,
    restore_rng_state,
    worker_init,
)
from pc3d.errors import Pc3dError

__all__ = [
    "ModelAdapter",
    "NonFiniteLossError",
    "Trainer",
    "collate_lists",
    "evaluate",
    "make_eval_loader",
    "move_to_device",
]

#: Keys a metric result may not use (they label the record in metrics.jsonl / --json).
RESERVED_RESULT_KEYS = ("epoch", "iteration", "checkpoint", "time", "kind", "split", "num_samples")


class NonFiniteLossError(Pc3dError):
    """The loss became NaN or infinite; the run stopped before the bad step touched the weights."""


# -- the model contract --------------------------------------------------------------------------


class _BatchCall:
    """Calls ``method(**batch)`` with the batch keys its signature names."""

    def __init__(self, method: Callable[..., Any], label: str) -> None:
        self.method = method
        self.label = label
        params = inspect.signature(method).parameters.values()
        self.takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        named = [
            p
            for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        self.names = [p.name for p in named]
        self.required = [p.name for p in named if p.default is inspect.Parameter.empty]

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        missing = [name for name in self.required if name not in batch]
        if missing:
            raise Pc3dError(
                f"{self.label} needs {', '.join(repr(m) for m in missing)} but the batch has "
                f"only {', '.join(repr(k) for k in batch) or 'no keys'}; the dataset (or its "
                "collate) must provide them"
            )
        if self.takes_all:
            return self.method(**batch)
        return self.method(**{name: batch[name] for name in self.names if name in batch})


class ModelAdapter(nn.Module):
    """``forward(batch, mode)`` -> ``model.loss(**batch)`` or ``model.predict(**batch)``.

    The wrapped model is ``self.model``; its state dict is what checkpoints store.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        name = type(model).__name__
        self._calls: dict[str, _BatchCall] = {}
        for mode in ("loss", "predict"):
            method = getattr(model, mode, None)
            if callable(method):
                self._calls[mode] = _BatchCall(method, f"{name}.{mode}()")

    def supports(self, mode: str) -> bool:
        return mode in self._calls

    def forward(self, batch: Mapping[str, Any], mode: str = "loss") -> Any:
        call = self._calls.get(mode)
        if call is None:
            raise Pc3dError(
                f"model {type(self.model).__name__} has no {mode}() method; the engine trains "
                "models with loss(**batch) -> dict of losses and evaluates them with "
                "predict(**batch) (see docs/engine.md)"
            )
        return call(batch)


def move_to_device(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors (and objects with a ``to(device)`` method) inside mappings, lists and tuples,
    moved to ``device``; everything else unchanged."""
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, Mapping):
        return {k: move_to_device(v, device, non_blocking) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(move_to_device(v, device, non_blocking) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(move_to_device(v, device, non_blocking) for v in value)
    to = getattr(value, "to", None)
    if callable(to) and not isinstance(value, (str, bytes, type)):
        try:
            return to(device)
        except TypeError:
            return value  # a `to` that is not a device move
    return value


def collate_lists(samples: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """``collate: list``: a mapping of lists, one entry per sample (variable-size inputs such as
    point clouds and per-sample boxes)."""
    if not samples:
        return {}
    first = samples[0]
    if not isinstance(first, Mapping):
        raise Pc3dError(
            f"collate 'list' needs samples that are mappings (name -> value), got {type(first).__name__}"
        )
    keys = list(first)
    for index, sample in enumerate(samples):
        if list(sample) != keys:
            raise Pc3dError(
                f"collate 'list': sample {index} has keys {list(sample)}, the first has {keys}"
            )
    return {key: [sample[key] for sample in samples] for key in keys}


def choose_collate(dataset: Any, spec: LoaderSpec) -> Callable[[list[Any]], Any]:
    if spec.collate == "list":
        return collate_lists
    if spec.collate == "auto":
        own = getattr(dataset, "collate", None)
        if callable(own):
            return own  # type: ignore[no-any-return]
    return default_collate  # type: ignore[no-any-return]


def make_eval_loader(dataset: Any, spec: LoaderSpec, dist: DistInfo, seed: int) -> DataLoader:  # type: ignore[type-arg]
    """A loader over this rank's shard of ``dataset`` (no shuffling, no padding)."""
    seeded = SeededDataset(dataset, seed)
    return DataLoader(
        seeded,
        batch_size=spec.batch_size,
        sampler=EvalShardSampler(len(dataset), dist.world_size, dist.rank),
        num_workers=spec.num_workers,
        collate_fn=choose_collate(dataset, spec),
        pin_memory=spec.pin_memory and dist.device.type == "cuda",
        drop_last=False,
        worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(derive_seed(seed, dist.rank, 2)),
    )


def evaluate(
    adapter: ModelAdapter,
    loader: DataLoader,  # type: ignore[type-arg]
    metrics: Sequence[Any],
    dist: DistInfo,
    *,
    autocast: Any = None,
) -> dict[str, float]:
    """Run ``predict`` over ``loader`` (this rank's shard), feed the metrics, gather their state
    across ranks and return every metric's results by name (identical on every rank)."""
    was_training = adapter.training
    adapter.eval()
    for metric in metrics:
        metric.reset()
    try:
        with torch.no_grad(), preserved_rng(dist.device), (autocast or nullcontext()):
            for batch in loader:
                batch = _check_batch(move_to_device(batch, dist.device), "evaluation")
                predictions = adapter(batch, mode="predict")
                for metric in metrics:
                    metric.update(predictions, batch)
    finally:
        adapter.train(was_training)
    results: dict[str, float] = {}
    for metric in metrics:
        if dist.distributed:
            metric.merge(dist.all_gather_object(metric.state()))
        computed = metric.compute()
        if not isinstance(computed, Mapping):
            raise Pc3dError(
                f"metric {type(metric).__name__}.compute() returned {type(computed).__name__}, "
                "expected a dict of name -> number"
            )
        for name, value in computed.items():
            if name in results or name in RESERVED_RESULT_KEYS:
                raise Pc3dError(
                    f"metric {type(metric).__name__} returns '{name}', which "
                    + ("another metric also returns" if name in results else "is a reserved key")
                )
            results[str(name)] = float(value)
    return results


def _check_loader_spec(spec: LoaderSpec, where: str) -> None:
    if spec.batch_size < 1:
        raise ConfigError(f"{where}.batch_size: must be at least 1, got {spec.batch_size}")
    if spec.num_workers < 0:
        raise ConfigError(f"{where}.num_workers: must be 0 or more, got {spec.num_workers}")


def _check_batch(batch: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(batch, Mapping):
        raise Pc3dError(
            f"{where}: a batch must be a mapping of argument names to values (e.g. "
            f"{{'points': ..., 'gt_boxes': ...}}), got {type(batch).__name__}; make the dataset "
            "return dicts or give it a collate that builds one"
        )
    return batch


# -- the trainer ---------------------------------------------------------------------------------


@dataclass
class _Running:
    """Sums since the last log line (plain floats: nothing keeps a graph alive)."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    started: float = field(default_factory=time.monotonic)
    lr: float = math.nan  # the last step's, not an average

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            if key == "lr":
                self.lr = value
            else:
                self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.sums.items()} if self.count else {}


class Trainer:
    """One training run, built by :func:`pc3d.engine.runner.build_trainer`.

    :param model: the plugin's model, already on ``dist.device``.
    :param spec: the parsed runtime sections of ``config``.
    :param train_set: the training dataset; :param val_set: the evaluation one (or None).
    :param metrics: metric objects (see :mod:`pc3d.engine.metric`).
    :param hooks: train hooks, in call order.
    :param seed: the run's seed (a resumed run takes its checkpoint's).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        spec: RunSpec,
        config: Config,
        train_set: Any,
        val_set: Any | None,
        metrics: Sequence[Any],
        hooks: HookList,
        work_dir: Path,
        dist: DistInfo,
        seed: int,
    ) -> None:
        self.spec = spec
        self.config = config
        self.work_dir = work_dir
        self.dist = dist
        self.seed = seed
        self.metrics = list(metrics)
        self.hooks = hooks
        self.device = dist.device
        self.model = model
        self.adapter = ModelAdapter(model)
        if not self.adapter.supports("loss"):
            raise ConfigError(
                f"model {type(model).__name__} has no loss() method; the engine trains models "
                "with loss(**batch) -> dict of losses (see docs/engine.md)"
            )
        if self.metrics and not self.adapter.supports("predict"):
            raise ConfigError(
                f"model {type(model).__name__} has no predict() method, needed to evaluate metrics"
            )
        if dist.distributed:
            for metric in self.metrics:
                if not (callable(getattr(metric, "state", None)) and callable(getattr(metric, "merge", None))):
                    raise ConfigError(
                        f"metric {type(metric).__name__} has no state()/merge(): it cannot be "
                        "gathered across processes (derive it from pc3d.engine.metric.Metric)"
                    )

        train_spec = spec.data.train
        if train_spec is None:
            raise ConfigError("data.train: a training config needs a data.train section")
        self.train_spec = train_spec
        self.train_set = train_set
        for split, loader_spec in (("train", train_spec), ("val", spec.data.val)):
            if loader_spec is not None:
                _check_loader_spec(loader_spec, f"data.{split}")
        if len(train_set) == 0:
            raise ConfigError(f"data.train.dataset: the dataset {type(train_set).__name__} is empty")
        seeded = SeededDataset(train_set, seed)
        self.sampler = ResumableDistributedSampler(
            seeded,
            num_replicas=dist.world_size,
            rank=dist.rank,
            shuffle=True if train_spec.shuffle is None else train_spec.shuffle,
            seed=seed,
            drop_last=False,
        )
        self.loader_generator = torch.Generator()
        self.train_loader = DataLoader(
            seeded,
            batch_size=train_spec.batch_size,
            sampler=self.sampler,
            num_workers=train_spec.num_workers,
            collate_fn=choose_collate(train_set, train_spec),
            pin_memory=train_spec.pin_memory and self.device.type == "cuda",
            drop_last=train_spec.drop_last,
            worker_init_fn=worker_init,
            generator=self.loader_generator,
            persistent_workers=train_spec.persistent_workers and train_spec.num_workers > 0,
        )
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch == 0:
            raise ConfigError(
                f"data.train: {len(train_set)} samples over {dist.world_size} process(es) give no "
                f"full batch of {train_spec.batch_size} (drop_last is set)"
            )

        schedule = spec.schedule
        if (schedule.epochs is None) == (schedule.iterations is None):
            raise ConfigError("schedule: give exactly one of 'epochs' and 'iterations'")
        self.by_epoch = schedule.epochs is not None
        length = schedule.epochs if schedule.epochs is not None else schedule.iterations
        assert length is not None
        if length < 1:
            raise ConfigError(f"schedule.{'epochs' if self.by_epoch else 'iterations'}: must be at least 1")
        self.max_iters = length * self.iters_per_epoch if self.by_epoch else length
        self.val_set = val_set
        self.val_loader = (
            make_eval_loader(val_set, spec.data.val, dist, seed)  # type: ignore[arg-type]
            if val_set is not None and self.metrics
            else None
        )

        train = spec.train
        for key in ("eval_every", "checkpoint_every", "log_every"):
            value = getattr(train, key)
            if value is not None and value < 1:
                raise ConfigError(f"train.{key}: must be at least 1, got {value}")
        once_per_epoch = 1 if self.by_epoch else self.iters_per_epoch
        self.eval_every: int = train.eval_every or once_per_epoch
        self.checkpoint_every: int = train.checkpoint_every or once_per_epoch
        if train.keep_last is not None and train.keep_last < 1:
            raise ConfigError("train.keep_last: must be at least 1 (or null to keep all)")
        if spec.optimizer is None:
            raise ConfigError(
                f"{config.path or 'config'}: no 'optimizer' section (e.g. optimizer: {{type: AdamW, "
                "lr: 0.001}})"
            )
        self.optimizer = build_optimizer(model, spec.optimizer, config.node("optimizer"))
        self.scheduler = build_scheduler(
            self.optimizer, schedule, total_iters=self.max_iters, iters_per_epoch=self.iters_per_epoch
        )
        self.amp = train.amp and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if train.amp_dtype == "float16" else torch.bfloat16
        # Loss scaling is for float16 only; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp and self.amp_dtype == torch.float16
        )

        if dist.distributed:
            self.wrapped: nn.Module = DistributedDataParallel(
                self.adapter,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=spec.runtime.find_unused_parameters,
            )
        else:
            self.wrapped = self.adapter

        self.iteration = 0
        self.epoch = 0
        self.best: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None
        self._saved_at = -1  # iteration of the last periodic checkpoint
        self._rng_to_restore: dict[str, Any] | None = None
        self.logger = RunLogger(
            work_dir,
            enabled=dist.is_main,
            total_iters=self.max_iters,
            tensorboard=spec.runtime.tensorboard,
        )
        if train.amp and not self.amp:
            self.logger.event("train.amp is set but the run is on the CPU: training in float32")

    def close(self) -> None:
        """Release the distributed wrapper, the loaders' workers and the log files."""
        self.logger.close()
        self.wrapped = self.adapter
        self.train_loader = None  # type: ignore[assignment]
        self.val_loader = None

    # -- public API for hooks ------------------------------------------------------------------

    def log(self, values: Mapping[str, float]) -> None:
        """Add scalars to ``log.jsonl`` / TensorBoard at the current iteration (rank 0)."""
        self.logger.extra(self.iteration, {k: float(v) for k, v in values.items()})

    @property
    def record_epoch(self) -> int:
        """The 1-based epoch of the last completed iteration, as logs and metrics.jsonl show it
        (an evaluation after the first epoch says epoch 1)."""
        return max(math.ceil(self.iteration / self.iters_per_epoch), 1)

    @property
    def lr(self) -> float:
        """The learning rate of the first parameter group for the next step."""
        return float(self.optimizer.param_groups[0]["lr"])

    # -- resume / load -------------------------------------------------------------------------

    def load_weights(self, path: str | Path) -> None:
        """``--load-from``: model weights only (strict); optimizer, schedule and counters start
        fresh."""
        state = ckpt.load_checkpoint(path)
        weights = ckpt.model_state_from(state, path)
        _load_model_state(self.model, weights, path)
        self.logger.event(f"loaded weights from {path}", kind="load_from", path=str(path))

    def resume(self, path: str | Path, state: Mapping[str, Any] | None = None) -> None:
        """Continue exactly from the checkpoint at ``path`` (``state``: its contents, if loaded
        already)."""
        state = ckpt.load_checkpoint(path) if state is None else state
        if state.get("format") != ckpt.FORMAT:
            raise ckpt.CheckpointError(
                f"{path} is not a pc3d training checkpoint (no optimizer or schedule state); "
                "use --load-from to start from its weights"
            )
        here = {
            "iterations per epoch": self.iters_per_epoch,
            "processes": self.dist.world_size,
            "batch size per process": self.train_spec.batch_size,
        }
        there = {
            "iterations per epoch": state.get("iters_per_epoch"),
            "processes": state.get("world_size"),
            "batch size per process": state.get("batch_size"),
        }
        different = [k for k in here if here[k] != there[k]]
        if different:
            details = ", ".join(f"{k} {there[k]} then, {here[k]} now" for k in different)
            raise ckpt.CheckpointError(
                f"cannot resume exactly from {path}: {details}. Resume with the same number of "
                "processes, batch size and dataset, or start a new run from its weights with "
                "--load-from"
            )
        saved_config = state.get("config") or {}
        for section in ("schedule", "optimizer"):
            if _plain(saved_config.get(section)) != _plain(self.config.data.get(section)):
                raise ckpt.CheckpointError(
                    f"cannot resume from {path}: the '{section}' section differs from the one the "
                    f"checkpoint was trained with ({json.dumps(saved_config.get(section))} then, "
                    f"{json.dumps(_plain(self.config.data.get(section)))} now); the learning-rate "
                    "curve would not continue. Start a new run from its weights with --load-from"
                )
        _load_model_state(self.model, state["model"], path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise ckpt.CheckpointError(f"{path}: optimizer/scheduler state does not fit: {err}") from err
        self.iteration = int(state["iteration"])
        self.epoch = self.iteration // self.iters_per_epoch
        self.best = state.get("best")
        self.hooks.load_state_dict(state.get("hooks") or {})
        rng = state.get("rng") or []
        self._rng_to_restore = rng[self.dist.rank] if self.dist.rank < len(rng) else None
        self.last_checkpoint = Path(path)
        self._saved_at = self.iteration
        if self.dist.is_main:
            dropped = rewrite_metrics_until(self.work_dir, self.iteration)
            self.logger.event(
                f"resumed from {path} at iteration {self.iteration} (epoch {self.epoch + 1}, "
                f"batch {self.iteration % self.iters_per_epoch}/{self.iters_per_epoch})"
                + (f"; dropped {dropped} later evaluation(s) from metrics.jsonl" if dropped else ""),
                kind="resume",
                path=str(path),
                iteration=self.iteration,
            )

    # -- the loop ------------------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        """Run to the end of the schedule; returns the last evaluation's metrics (may be empty)."""
        if self._rng_to_restore is not None:
            # Last thing before the first step: everything built since drew from the generators.
            restore_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        last_metrics: dict[str, float] = {}
        self.logger.event(
            f"training {type(self.model).__name__}: {self.max_iters} iterations "
            f"({self.iters_per_epoch} per epoch, {self.dist.world_size} process(es), batch "
            f"{self.train_spec.batch_size} per process) on {self.device}; work dir {self.work_dir}",
            kind="start",
            max_iters=self.max_iters,
            iters_per_epoch=self.iters_per_epoch,
            world_size=self.dist.world_size,
            seed=self.seed,
        )
        self.logger.start(self.iteration)
        self.hooks.call("before_train", self)
        try:
            while self.iteration < self.max_iters:
                last_metrics = self._run_epoch() or last_metrics
            if self._saved_at != self.iteration:
                self.save_checkpoint()  # "and at the end", whatever checkpoint_every says
            self.hooks.call("after_train", self)
            self.logger.event(
                f"done: {self.iteration} iterations; last checkpoint {self.last_checkpoint}",
                kind="end",
                iteration=self.iteration,
            )
        except KeyboardInterrupt:
            self.logger.event(
                f"interrupted at iteration {self.iteration}; continue with `pc3d train CONFIG "
                f"--work-dir {self.work_dir} --resume` (from {self.last_checkpoint or 'the start'})",
                kind="interrupted",
                iteration=self.iteration,
            )
            raise
        finally:
            self.logger.close()
        return last_metrics

    def _run_epoch(self) -> dict[str, float]:
        ipe = self.iters_per_epoch
        self.epoch = self.iteration // ipe
        position = self.iteration % ipe
        self.sampler.set_position(self.epoch, position * self.train_spec.batch_size)
        self.loader_generator.manual_seed(derive_seed(self.seed, self.epoch, self.dist.rank, 1))
        self.hooks.call("before_epoch", self)
        running = _Running()
        train = self.spec.train
        metrics: dict[str, float] = {}
        self.wrapped.train()
        batches = iter(self.train_loader)
        while self.iteration < min((self.epoch + 1) * ipe, self.max_iters):
            batch = next(batches)
            self.hooks.call("before_iter", self)
            values = self._step(batch)
            self.iteration += 1
            running.add(values)
            self.logger.step(self.iteration, values)
            self.hooks.call("after_iter", self, values)
            at_epoch_end = self.iteration % ipe == 0
            if self.iteration % train.log_every == 0 or at_epoch_end or self.iteration == self.max_iters:
                self._log_running(running)
                running = _Running()
            if not self.by_epoch:
                final = self.iteration == self.max_iters
                if self.val_loader is not None and (self.iteration % self.eval_every == 0 or final):
                    metrics = self._evaluate_and_track()
                if self.iteration % self.checkpoint_every == 0 or final:
                    self.save_checkpoint()
        del batches  # shut the workers of a cut-short epoch down before the next starts
        if self.by_epoch:
            done_epochs = self.iteration // ipe
            final = self.iteration == self.max_iters
            if self.val_loader is not None and (done_epochs % self.eval_every == 0 or final):
                metrics = self._evaluate_and_track()
            if done_epochs % self.checkpoint_every == 0 or final:
                self.save_checkpoint()
        self.hooks.call("after_epoch", self)
        return metrics

    def _step(self, batch: Any) -> dict[str, float]:
        batch = _check_batch(move_to_device(batch, self.device, self.train_spec.pin_memory), "data.train")
        lr = self.lr
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp else nullcontext()
        )
        with autocast:
            losses = self.wrapped(batch, mode="loss")
        total, values = self._total_loss(losses)
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        # Every rank must stop at the same step, or the others would wait in the next
        # all-reduce until the timeout.
        if self.dist.any_true(bool(bad)):
            self._stop_non_finite(values, bad)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        clip = self.spec.train.grad_clip
        if clip is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), clip.max_norm, norm_type=clip.norm_type
            )
            values["grad_norm"] = float(norm.item())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        values["lr"] = lr
        return values

    def _total_loss(self, losses: Any) -> tuple[Tensor, dict[str, float]]:
        name = f"{type(self.model).__name__}.loss()"
        if not isinstance(losses, Mapping) or not losses:
            raise Pc3dError(f"{name} returned {type(losses).__name__}, expected a dict of name -> scalar loss")
        values: dict[str, float] = {}
        tensors: dict[str, Tensor] = {}
        for key, value in losses.items():
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise Pc3dError(
                        f"{name} returned '{key}' of shape {tuple(value.shape)}; losses must be scalars"
                    )
                tensors[str(key)] = value
                values[str(key)] = float(value.detach().float().item())
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                values[str(key)] = float(value)  # logged only
            else:
                raise Pc3dError(f"{name} returned '{key}' as {type(value).__name__}, expected a tensor")
        if "loss" in tensors:
            total = tensors["loss"]
        elif tensors:
            total = torch.stack([t.reshape(()).float() for t in tensors.values()]).sum()
            values["loss"] = float(total.detach().item())
        else:
            raise Pc3dError(f"{name} returned no tensors to back-propagate")
        return total.reshape(()), values

    def _stop_non_finite(self, values: dict[str, float], bad: list[str]) -> None:
        per_rank = self.dist.all_gather_object({k: values[k] for k in bad})
        ranks = [r for r, terms in enumerate(per_rank) if terms]
        terms = {k: v for r in ranks for k, v in per_rank[r].items()}
        shown = ", ".join(f"{k}={v}" for k, v in terms.items())
        iteration = self.iteration + 1
        where = (
            f"iteration {iteration} of {self.max_iters} (epoch {self.epoch + 1}, batch "
            f"{self.iteration % self.iters_per_epoch + 1}/{self.iters_per_epoch})"
        )
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no checkpoint was written before it"
        )
        on_ranks = f" on rank(s) {', '.join(map(str, ranks))}" if self.dist.distributed else ""
        message = (
            f"loss is not finite at {where}{on_ranks}: {shown}. Training stopped before this step "
            f"changed the weights; {kept}. Lower the learning rate, add train.grad_clip, or check "
            "the data of this batch"
        )
        self.logger.event(message, kind="nan", iteration=iteration, terms=sorted(terms))
        raise NonFiniteLossError(message)

    def _log_running(self, running: _Running) -> None:
        means = running.means()
        if not means:
            return
        means["iter_time"] = (time.monotonic() - running.started) / max(running.count, 1)
        means = self.dist.mean(means)  # every rank's losses, not just rank 0's
        means["lr"] = running.lr
        self.logger.log_train(self.record_epoch, self.iteration, self.iters_per_epoch, means)

    # -- evaluation and checkpoints ------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Evaluate the configured metrics on the validation set now (every rank)."""
        if self.val_loader is None:
            return {}
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp else None
        return evaluate(self.adapter, self.val_loader, self.metrics, self.dist, autocast=autocast)

    def _evaluate_and_track(self) -> dict[str, float]:
        metrics = self.evaluate()
        epoch = self.record_epoch
        self.logger.log_eval(epoch, self.iteration, metrics)
        best_spec = self.spec.train.best_metric
        if best_spec is not None:
            if best_spec.name not in metrics:
                raise ConfigError(
                    f"train.best_metric.name: '{best_spec.name}' is not among the evaluated "
                    f"metrics ({', '.join(metrics) or 'none'})"
                )
            value = metrics[best_spec.name]
            better = (
                self.best is None
                or (best_spec.mode == "max" and value > self.best["value"])
                or (best_spec.mode == "min" and value < self.best["value"])
            )
            if better and math.isfinite(value):
                self.best = {"name": best_spec.name, "value": value, "iteration": self.iteration, "epoch": epoch}
                self._write(self.work_dir / ckpt.BEST_NAME, periodic=False)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint contents (every rank calls this: RNG states are gathered)."""
        rng = self.dist.all_gather_object(capture_rng_state())
        return {
            "format": ckpt.FORMAT,
            "format_version": ckpt.FORMAT_VERSION,
            "pc3d_version": pc3d.__version__,
            "torch_version": str(torch.__version__),  # TorchVersion is not weights-only safe
            "epoch": self.iteration // self.iters_per_epoch,
            "iteration": self.iteration,
            "iters_per_epoch": self.iters_per_epoch,
            "max_iters": self.max_iters,
            "world_size": self.dist.world_size,
            "batch_size": self.train_spec.batch_size,
            "seed": self.seed,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "hooks": self.hooks.state_dict(),
            "best": self.best,
            "config": _plain(self.config.data),
        }

    def save_checkpoint(self) -> Path:
        """Write the periodic checkpoint for the current iteration (rank 0 writes; all ranks
        must call it)."""
        name = ckpt.checkpoint_name(
            self.iteration // self.iters_per_epoch, self.iteration, self.iters_per_epoch
        )
        path = self._write(self.work_dir / name, periodic=True)
        self._saved_at = self.iteration
        return path

    def _write(self, path: Path, *, periodic: bool) -> Path:
        state = self.state_dict()
        if self.dist.is_main:
            ckpt.save_checkpoint(state, path)
            if periodic:
                ckpt.write_last_pointer(self.work_dir, path)
                self._prune()
            self.logger.event(
                f"saved checkpoint {path}", kind="checkpoint", path=str(path), iteration=self.iteration
            )
        if periodic:
            self.last_checkpoint = path
        return path

    def _prune(self) -> None:
        keep = self.spec.train.keep_last
        if keep is None:
            return
        found = ckpt.list_checkpoints(self.work_dir, self.iters_per_epoch)
        for old in found[:-keep]:
            old.unlink(missing_ok=True)


def _load_model_state(model: nn.Module, weights: Mapping[str, Any], path: str | Path) -> None:
    try:
        result = model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        raise ckpt.CheckpointError(
            f"{path}: its weights do not fit {type(model).__name__}: "
            + " ".join(line.strip() for line in lines[:6])
        ) from err
    del result


def _plain(value: Any) -> Any:
    """Config data as JSON types (YAML dates become strings), safe for weights_only loading."""
    return json.loads(json.dumps(value, default=str))
