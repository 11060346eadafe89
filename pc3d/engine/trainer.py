"""The training loop: steps, evaluation and checkpoint cadence, exact resume, NaN stops.

The model, dataset, metric and train-hook contracts are the protocols of :mod:`pc3d.plugin_api`
(``ModelProtocol``: ``loss(**batch)`` / ``predict(**batch)``); :mod:`pc3d.engine.adapter` calls
the model. Loaders come from :mod:`pc3d.engine.loaders`, the evaluation pass from
:mod:`pc3d.engine.evaluation`, the run's length and cadence from :mod:`pc3d.engine.plan`,
checkpoint contents and resume from :mod:`pc3d.engine.state`.

**Iterations.** ``trainer.iteration`` counts completed optimizer steps over the whole run;
epoch ``e`` (0-based) holds iterations ``e * iters_per_epoch`` to ``(e + 1) * iters_per_epoch - 1``.
A checkpoint records the iteration, and resuming continues at that position inside its epoch
with the same data order (a function of seed and epoch), the same per-sample augmentation (a
function of seed, epoch and index) and the model's random generators as they were saved.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pc3d.config import Config, ConfigError
from pc3d.engine import checkpoint as ckpt
from pc3d.engine import evaluation
from pc3d.engine.adapter import ModelAdapter, check_batch, check_trainable, total_loss
from pc3d.engine.dist import DistInfo
from pc3d.engine.hooks import HookList
from pc3d.engine.loaders import make_eval_loader, make_train_loader, move_to_device
from pc3d.engine.logging import RunLogger, RunningMeans
from pc3d.engine.optim import build_optimizer, build_scheduler
from pc3d.engine.plan import plan_run
from pc3d.engine.schema import RunSpec
from pc3d.engine.seed import derive_seed, restore_rng_state
from pc3d.engine.state import (
    RunShape,
    check_best_metric,
    class_order_mismatch,
    load_model_state,
    restore_training_state,
    track_best,
    training_state,
    write_checkpoint,
)
from pc3d.errors import Pc3dError

__all__ = ["NonFiniteLossError", "Trainer"]


class NonFiniteLossError(Pc3dError):
    """The loss became NaN or infinite; the run stopped before the bad step touched the weights."""


class Trainer:
    """One training run, built by ``pc3d.engine.runner.build_trainer``.

    Args:
        model: the plugin's model, already on ``dist.device``.
        spec: the parsed runtime sections of ``config``.
        config: the resolved config (saved in checkpoints).
        train_set: the training dataset.
        val_set: the evaluation dataset, or None.
        metrics: metric objects (see ``pc3d.engine.metric``).
        hooks: train hooks, in call order.
        work_dir: where logs and checkpoints go.
        dist: this process's place in the run.
        seed: the run's seed (a resumed run takes its checkpoint's).

    Raises:
        ConfigError: the model, data, schedule or optimizer sections do not make a run.
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
        check_best_metric(spec.train.best_metric, self.metrics)  # before any training
        self.hooks = hooks
        self.device = dist.device
        self.model = model
        self.work_dir_lock: Any = None  # rank 0: held while training (pc3d.engine.work_dir_lock)
        self.adapter = ModelAdapter(model)
        check_trainable(self.adapter, needs_predict=bool(self.metrics))
        if dist.distributed:
            evaluation.check_metrics_gatherable(self.metrics)
        self._init_data(train_set, val_set)
        self.plan = plan_run(spec, self.iters_per_epoch)
        self.max_iters = self.plan.max_iters
        self._init_optimization()
        self.wrapped = self._wrap_for_processes()

        self.iteration = 0
        self.epoch = 0
        self.best: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None
        self._saved_at = -1  # iteration of the last periodic checkpoint
        self._rng_to_restore: dict[str, Any] | None = None
        self.logger = RunLogger(
            work_dir, enabled=dist.is_main, total_iters=self.max_iters, tensorboard=spec.runtime.tensorboard
        )
        if spec.train.amp and not self.amp:
            self.logger.event("train.amp is set but the run is on the CPU: training in float32")

    def _init_data(self, train_set: Any, val_set: Any | None) -> None:
        train_spec = self.spec.data.train
        if train_spec is None:
            raise ConfigError("data.train: a training config needs a data.train section")
        self.train_spec = train_spec
        self.train_set = train_set
        train = make_train_loader(train_set, train_spec, self.dist, self.seed)
        self.train_loader = train.loader
        self.sampler = train.sampler
        self.loader_generator = train.generator
        self.iters_per_epoch = len(self.train_loader)
        self.val_set = val_set
        val_spec = self.spec.data.val
        self.val_loader = (
            make_eval_loader(val_set, val_spec, self.dist, self.seed)
            if val_set is not None and val_spec is not None and self.metrics
            else None
        )

    def _init_optimization(self) -> None:
        if self.spec.optimizer is None:
            raise ConfigError(
                f"{self.config.path or 'config'}: no 'optimizer' section (e.g. optimizer: {{type: "
                "AdamW, lr: 0.001}})"
            )
        self.optimizer = build_optimizer(self.model, self.spec.optimizer, self.config.node("optimizer"))
        self.scheduler = build_scheduler(
            self.optimizer,
            self.spec.schedule,
            total_iters=self.max_iters,
            iters_per_epoch=self.iters_per_epoch,
        )
        train = self.spec.train
        self.amp = train.amp and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if train.amp_dtype == "float16" else torch.bfloat16
        # Loss scaling is for float16 only; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp and self.amp_dtype == torch.float16
        )

    def _wrap_for_processes(self) -> nn.Module:
        if not self.dist.distributed:
            return self.adapter
        return DistributedDataParallel(
            self.adapter,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=self.spec.runtime.find_unused_parameters,
        )

    def close(self) -> None:
        """Release the distributed wrapper, the loaders' workers, the log files and the work
        directory's lock."""
        self.logger.close()
        if self.work_dir_lock is not None:
            self.work_dir_lock.release()
            self.work_dir_lock = None
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

    @property
    def shape(self) -> RunShape:
        """Processes, batch size and iterations per epoch: what a resumed run must share."""
        return RunShape(self.iters_per_epoch, self.dist.world_size, self.train_spec.batch_size)

    # -- resume / load -------------------------------------------------------------------------

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """``--load-from``: model weights only (strict); optimizer, schedule and counters start
        fresh."""
        state = ckpt.load_checkpoint(path)
        load_model_state(self.model, ckpt.model_state_from(state, path), path, state)
        self.logger.event(f"loaded weights from {path}", kind="load_from", path=str(path))
        mismatch = class_order_mismatch(state, path, self.model)
        if mismatch is not None:  # fine-tuning onto other classes may be meant: said, not refused
            warnings.warn(f"{mismatch} (fine-tuning onto other classes? then ignore this)", stacklevel=2)
            self.logger.event(mismatch, kind="class_order")

    def resume(self, path: str | os.PathLike[str], state: Mapping[str, Any] | None = None) -> None:
        """Continue exactly from the checkpoint at ``path``.

        Args:
            path: a training checkpoint of this run (or one of the same shape and schedule).
            state: its contents, if loaded already.

        Raises:
            CheckpointError: the file cannot be continued from (see ``check_resumable``).
        """
        state = ckpt.load_checkpoint(path) if state is None else state
        self._rng_to_restore = restore_training_state(self, path, state)
        self._saved_at = self.iteration

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
            deterministic=torch.are_deterministic_algorithms_enabled(),  # --deterministic or the config's
        )
        self.logger.start(self.iteration)
        self.hooks.call("before_train", self)
        terminate = _SigtermHandler()
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
            launcher = (
                f"torchrun --nproc_per_node {self.dist.world_size} -m pc3d train"
                if self.dist.distributed  # a resume needs as many processes
                else "pc3d train"
            )
            self.logger.event(
                f"interrupted at iteration {self.iteration}; continue with `{launcher} CONFIG "
                f"--work-dir {self.work_dir} --resume` (from {self.last_checkpoint or 'the start'})",
                kind="interrupted",
                iteration=self.iteration,
            )
            raise
        finally:
            terminate.restore()
            self.logger.close()
        return last_metrics

    def _run_epoch(self) -> dict[str, float]:
        ipe = self.iters_per_epoch
        self.epoch = self.iteration // ipe
        self.sampler.set_position(self.epoch, (self.iteration % ipe) * self.train_spec.batch_size)
        self.loader_generator.manual_seed(derive_seed(self.seed, self.epoch, self.dist.rank, 1))
        self.hooks.call("before_epoch", self)
        running = RunningMeans()
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
            final = self.iteration == self.max_iters
            if self.iteration % self.spec.train.log_every == 0 or self.iteration % ipe == 0 or final:
                self._log_running(running)
                running = RunningMeans()
            if not self.plan.by_epoch:
                metrics = self._evaluate_and_save(self.iteration, final) or metrics
        del batches  # shut the workers of a cut-short epoch down before the next starts
        if self.plan.by_epoch:
            metrics = self._evaluate_and_save(self.iteration // ipe, self.iteration == self.max_iters)
        self.hooks.call("after_epoch", self)
        return metrics

    def _evaluate_and_save(self, count: int, final: bool) -> dict[str, float]:
        """Evaluate and checkpoint where the cadence says, ``count`` epochs or iterations in."""
        metrics: dict[str, float] = {}
        if self.val_loader is not None and (count % self.plan.eval_every == 0 or final):
            metrics = self._evaluate_and_track()
        if count % self.plan.checkpoint_every == 0 or final:
            self.save_checkpoint()
        return metrics

    def _step(self, batch: Any) -> dict[str, float]:
        batch = check_batch(move_to_device(batch, self.device, self.train_spec.pin_memory), "data.train")
        lr = self.lr
        with self._autocast() or nullcontext():
            losses = self.wrapped(batch, mode="loss")
        total, values = total_loss(losses, type(self.model).__name__)
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
            parameters = self.model.parameters()
            norm = torch.nn.utils.clip_grad_norm_(parameters, clip.max_norm, norm_type=clip.norm_type)
            values["grad_norm"] = float(norm.item())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        values["lr"] = lr
        return values

    def _autocast(self) -> torch.autocast | None:
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp else None

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

    def _log_running(self, running: RunningMeans) -> None:
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
        # One set of BatchNorm statistics on every rank, rank 0's (what a checkpoint saves):
        # otherwise each rank scores its shard with the statistics of its own last batches.
        self.dist.broadcast_buffers(self.model)
        autocast = self._autocast()
        return evaluation.evaluate(
            self.adapter, self.val_loader, self.metrics, self.dist, autocast=autocast, progress="validate"
        )

    def _evaluate_and_track(self) -> dict[str, float]:
        metrics = self.evaluate()
        self.logger.log_eval(self.record_epoch, self.iteration, metrics)
        try:
            track_best(self, metrics)
        except ConfigError as err:  # a best_metric name no metric gives: keep what was trained
            path = self.save_checkpoint()
            raise ConfigError(
                f"{err}; the run so far is saved in {path}: fix the name and continue with --resume {path}"
            ) from err
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint contents (every rank calls this: RNG states are gathered)."""
        return training_state(self)

    def save_checkpoint(self) -> Path:
        """Write the periodic checkpoint for the current iteration (rank 0 writes; all ranks
        must call it)."""
        ipe = self.iters_per_epoch
        path = self.work_dir / ckpt.checkpoint_name(self.iteration // ipe, self.iteration, ipe)
        write_checkpoint(self, path, periodic=True)
        self._saved_at = self.iteration
        return path


class _SigtermHandler:
    """SIGTERM (torchrun stopping its workers, a batch system ending a job) handled as Ctrl-C
    while training, so the run logs where it stopped and how to resume; restored afterwards."""

    def __init__(self) -> None:
        self.previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._interrupt)

    @staticmethod
    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None
