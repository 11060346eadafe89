"""What a training run reports, on rank 0 only.

- Console: a tqdm progress bar over all iterations of the run (with ETA) when stderr is a
  terminal, and every ``log_every`` iterations one text line (epoch, iteration, losses, learning
  rate, time per iteration, ETA), which is what a log file or a CI console keeps.
- ``log.jsonl`` in the work directory: one JSON object per line for every logged value: training
  records (``"kind": "train"``), evaluations (``"eval"``), checkpoints (``"checkpoint"``) and
  events (start, resume, stop). Appended to, so a resumed run continues the same file.
- ``metrics.jsonl``: one object per evaluation (``epoch``, ``iteration``, each metric by name).
- TensorBoard event files in ``work_dir/tensorboard`` when the ``tensorboard`` package is
  importable (``runtime.tensorboard: null``, the default) or required (``true``).

Values are plain floats (``loss.item()``) by the time they reach here, so logging never keeps an
autograd graph alive. Every line is written with ``pc3d.io.jsonio``: a NaN or infinite value
(a metric that could not be computed, a diverged loss) is ``null``, so the files stay valid JSON.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pc3d.errors import MissingDependencyError
from pc3d.io.atomic import atomic_write_text
from pc3d.io.jsonio import dumps
from pc3d.metric_names import headline_order

__all__ = [
    "CONSOLE_METRICS",
    "RunLogger",
    "RunningMeans",
    "console_metrics",
    "format_seconds",
    "rewrite_metrics_until",
    "terminal_progress",
]

T = TypeVar("T")

LOG_NAME = "log.jsonl"
METRICS_NAME = "metrics.jsonl"


#: At most this many metrics are printed on an evaluation's console line (all go to the files).
CONSOLE_METRICS = 12


def console_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics an evaluation's console line shows: all of them when they are few; otherwise
    the first :data:`CONSOLE_METRICS` in :func:`headline_order` (KITTI's ranking numbers only,
    when there are any)."""
    if len(metrics) <= CONSOLE_METRICS:
        return dict(metrics)
    order = headline_order(metrics)
    if any("AP40_moderate_strict" in k for k in order):
        order = [k for k in order if "AP40_moderate_strict" in k]
    return {k: metrics[k] for k in order[:CONSOLE_METRICS]}


def terminal_progress(
    items: Iterable[T], label: str | None, unit: str = "batch", total: int | None = None
) -> Iterable[T]:
    """``items`` behind a tqdm bar labelled ``label`` when stderr is a terminal (cleared when
    done), else ``items`` as they are; ``label=None`` shows no bar.

    What the training bar does for iterations, for passes over batches or files (validation,
    ``pc3d test``, ``pc3d infer``): a log file or CI console gets no bar lines.
    """
    if label is None or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    if total is None and isinstance(items, Sized):
        total = len(items)
    return tqdm(items, total=total, desc=label, unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr)


def format_seconds(seconds: float) -> str:
    """``3725`` -> ``1:02:05``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


@dataclass
class RunningMeans:
    """Loss terms summed since the last log line (plain floats: nothing keeps a graph alive).

    Attributes:
        sums: each term's sum over the steps added.
        count: steps added.
        started: ``time.monotonic()`` when the first was about to start.
        lr: the last step's learning rate (not an average).
    """

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    started: float = field(default_factory=time.monotonic)
    lr: float = math.nan

    def add(self, values: Mapping[str, float]) -> None:
        """Add one step's values (``lr`` replaces, everything else sums)."""
        for key, value in values.items():
            if key == "lr":
                self.lr = value
            else:
                self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def means(self) -> dict[str, float]:
        """Each term's mean over the steps added (empty before the first)."""
        return {k: v / self.count for k, v in self.sums.items()} if self.count else {}


class RunLogger:
    """Console, JSON-lines and TensorBoard output of one run (inert on ranks other than 0).

    Args:
        work_dir: where ``log.jsonl``, ``metrics.jsonl`` and ``tensorboard/`` go.
        enabled: False on ranks other than 0.
        total_iters: the run's length, for the bar and the ETA.
        tensorboard: True requires it, None uses it when importable, False never.
        stream: console stream (stderr).

    Raises:
        MissingDependencyError: ``tensorboard`` is True and the package is not installed.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        enabled: bool,
        total_iters: int,
        tensorboard: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.enabled = enabled
        self.total_iters = total_iters
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        self._writer: Any = None
        self._log_file: TextIO | None = None
        self._log_created = False
        self._start_time = time.monotonic()
        self._start_iter = 0
        if not enabled:
            return
        work_dir.mkdir(parents=True, exist_ok=True)
        self._log_created = not (work_dir / LOG_NAME).exists()
        self._log_file = open(work_dir / LOG_NAME, "a", encoding="utf-8")
        if tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                if tensorboard:
                    raise MissingDependencyError(
                        "runtime.tensorboard is true but the tensorboard package is not installed "
                        "(pip install tensorboard)"
                    ) from err
                self.event("tensorboard not installed: no TensorBoard event files are written")
            else:
                self._writer = SummaryWriter(log_dir=str(work_dir / "tensorboard"))

    # -- progress ------------------------------------------------------------------------------

    def start(self, start_iter: int) -> None:
        """Begin the progress display at ``start_iter`` completed iterations."""
        self._start_time = time.monotonic()
        self._start_iter = start_iter
        if not self.enabled:
            return
        isatty = getattr(self.stream, "isatty", None)
        if callable(isatty) and isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total_iters,
                initial=start_iter,
                file=self.stream,
                dynamic_ncols=True,
                unit="it",
                desc="train",
                smoothing=0.05,
            )

    def eta_seconds(self, iteration: int) -> float:
        """Remaining time from the mean speed of this process's iterations so far."""
        done = iteration - self._start_iter
        if done <= 0:
            return math.nan
        per_iter = (time.monotonic() - self._start_time) / done
        return per_iter * (self.total_iters - iteration)

    def step(self, iteration: int, values: dict[str, float]) -> None:
        """One iteration done (``iteration`` completed in all): advance the bar."""
        if self._bar is not None:
            self._bar.update(iteration - self._bar.n)
            if "loss" in values:
                self._bar.set_postfix(
                    loss=f"{values['loss']:.4g}", lr=f"{values.get('lr', 0):.3g}", refresh=False
                )

    # -- records -------------------------------------------------------------------------------

    def log_train(self, epoch: int, iteration: int, iters_per_epoch: int, values: dict[str, float]) -> None:
        """A training record: loss terms averaged over the iterations since the last record (and
        over ranks), the learning rate of the last step, seconds per iteration (``iter_time``).

        Args:
            epoch: 1-based epoch of ``iteration``.
            iteration: completed iterations.
            iters_per_epoch: iterations in one epoch (for the position shown in the epoch).
            values: the averaged values by name.
        """
        if not self.enabled:
            return
        eta = self.eta_seconds(iteration)
        record = {"kind": "train", "epoch": epoch, "iteration": iteration, **values, "eta_s": eta}
        self._write(record)
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(f"train/{key}", value, iteration)
        in_epoch = iteration - (epoch - 1) * iters_per_epoch
        terms = "  ".join(f"{k} {v:.4g}" for k, v in values.items() if k not in ("lr", "iter_time"))
        self.print(
            f"epoch {epoch} [{in_epoch}/{iters_per_epoch}] iter {iteration}/{self.total_iters}  "
            f"{terms}  lr {values.get('lr', math.nan):.4g}  "
            f"{values.get('iter_time', math.nan):.3f} s/it  eta {format_seconds(eta)}"
        )

    def log_eval(self, epoch: int, iteration: int, metrics: dict[str, float]) -> None:
        """An evaluation: ``log.jsonl``, ``metrics.jsonl``, TensorBoard, console."""
        if not self.enabled:
            return
        record = {"epoch": epoch, "iteration": iteration, **metrics}
        self._write({"kind": "eval", **record})
        with open(self.work_dir / METRICS_NAME, "a", encoding="utf-8") as handle:
            handle.write(dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(f"val/{key}", value, iteration)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in console_metrics(metrics).items())
        hidden = len(metrics) - len(console_metrics(metrics))
        more = f"  (+{hidden} more in {METRICS_NAME})" if hidden else ""
        self.print(f"eval  epoch {epoch} iter {iteration}  {shown}{more}")

    def event(self, message: str, **fields: Any) -> None:
        """A one-off event (start, resume, checkpoint, stop): console and ``log.jsonl``."""
        if not self.enabled:
            return
        self._write({"kind": fields.pop("kind", "event"), "message": message, **fields})
        self.print(message)

    def extra(self, iteration: int, values: dict[str, float]) -> None:
        """Values a train hook logs (``trainer.log``)."""
        if not self.enabled:
            return
        self._write({"kind": "hook", "iteration": iteration, **values})
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, iteration)

    def print(self, line: str) -> None:
        """One console line (below the progress bar, if there is one)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._log_file is not None
        record = {"time": round(time.time(), 3), **record}
        self._log_file.write(dumps(record) + "\n")
        self._log_file.flush()

    def close(self) -> None:
        """Close the progress bar, TensorBoard writer and log file."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            log = self.work_dir / LOG_NAME
            if self._log_created and log.is_file() and log.stat().st_size == 0:
                log.unlink()  # a run refused before its first record leaves no empty log behind


def rewrite_metrics_until(work_dir: Path, iteration: int) -> int:
    """Drop ``metrics.jsonl`` records after ``iteration`` (evaluations of a run that was
    interrupted after its last checkpoint: the resumed run repeats them). Returns how many were
    dropped. The file is rewritten atomically."""
    path = work_dir / METRICS_NAME
    if not path.is_file():
        return 0
    kept: list[str] = []
    dropped = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1  # a line cut short by the kill
            continue
        if int(record.get("iteration", 0)) > iteration:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        atomic_write_text(path, "".join(k + "\n" for k in kept))
    return dropped
