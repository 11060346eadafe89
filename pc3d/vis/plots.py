"""Plots people would rather look at than numbers: training curves and precision-recall curves.

- :func:`plot_training_curves` reads a work directory's ``log.jsonl`` (training records: loss
  terms, learning rate per logged iteration) and ``metrics.jsonl`` (one record per evaluation)
  and draws losses, learning rate and validation metrics against the iteration, for the latest
  run in the folder (resumes joined: :func:`latest_run`).
- :func:`plot_pr_curves` draws the KITTI precision-recall curves of a
  :class:`~pc3d.evaluation.kitti_result.KittiEvalResult`: one panel per metric (2D box, BEV, 3D),
  one line per class and difficulty, for the strict overlap thresholds.

matplotlib is imported when a plot is drawn (``pip install matplotlib``; it is in pc3d's ``vis``
extra), with the non-interactive Agg backend: plots are files, also on machines without a screen.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.errors import FormatError, MissingDependencyError
from pc3d.io.atomic import atomic_write

__all__ = ["latest_run", "plot_pr_curves", "plot_training_curves", "read_jsonl"]

_NOT_METRICS = {"epoch", "iteration", "checkpoint", "time", "kind", "split", "num_samples", "lr", "event"}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise MissingDependencyError("plots need matplotlib: pip install matplotlib") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file (a torn last line of a killed run is skipped).

    Raises:
        FormatError: a line in the middle is not JSON (names the file and line).
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise FormatError(f"{path}:{number}: not JSON ({err.msg})") from None
    return records


def latest_run(records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The training records of the latest run in a ``log.jsonl``, and how many runs it holds.

    Every run in a work directory appends to its ``log.jsonl``. A run starts with a ``start``
    event; one preceded by a ``resume`` event continues the run before it (from the resumed
    iteration: the records the interrupted run wrote after its checkpoint are repeated by the
    resumed one and dropped here), any other begins a new run. Records before the first
    ``start`` (a log written by hand) count as one run.

    Returns:
        The ``train`` records of the latest run, in order, and the number of runs.
    """
    train: list[dict[str, Any]] = []
    runs = 0
    resumed_at: int | None = None
    for record in records:
        kind = record.get("kind")
        if kind == "resume":
            resumed_at = int(record.get("iteration", 0))
        elif kind == "start":
            if resumed_at is None:
                train, runs = [], runs + 1
            else:
                train = [r for r in train if r.get("iteration", 0) <= resumed_at]
            resumed_at = None
        elif kind == "train":
            runs = max(runs, 1)
            train.append(record)
    return train, runs


def _save(figure: Any, out: Path) -> Path:
    def write(handle: Any) -> None:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")

    path = atomic_write(out, write)
    _pyplot().close(figure)
    return path


def _series(
    records: Sequence[dict[str, Any]], key: str, skip: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    pairs = [
        (r["iteration"], r[key])
        for r in records
        if isinstance(r.get(key), (int, float)) and "iteration" in r and r[key] != skip
    ]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    data = np.asarray(pairs, dtype=np.float64)
    return data[:, 0], data[:, 1]


def plot_training_curves(
    work_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    max_metrics: int = 6,
    metrics: Sequence[str] | None = None,
) -> Path:
    """Draw losses, learning rate and validation metrics of a run into a PNG.

    Args:
        work_dir: the run's folder (with ``log.jsonl``, and ``metrics.jsonl`` once evaluated).
        out: the PNG to write (default ``work_dir/curves.png``).
        max_metrics: at most this many validation metrics are drawn, in
            :func:`pc3d.metric_names.headline_order` (KITTI's moderate strict AP40, then
            summaries: ``miou``, ``acc``, ``mAP_0.25``, COCO's ``AP``, ``top1``, ...). COCO's -1
            ("nothing to measure") is not drawn.
        metrics: draw exactly these validation metrics instead.

    Returns:
        The PNG's path.

    Raises:
        FileNotFoundError: no ``log.jsonl`` in ``work_dir``.
        FormatError: the log holds no training record.
    """
    folder = Path(work_dir)
    log_path = folder / "log.jsonl"
    if not log_path.is_file():
        raise FileNotFoundError(
            f"{log_path} does not exist: is {folder} the work directory of a training run?"
        )
    train, runs = latest_run(read_jsonl(log_path))
    if not train:
        raise FormatError(f"{log_path} holds no training record yet")
    metrics_path = folder / "metrics.jsonl"
    evals = read_jsonl(metrics_path) if metrics_path.is_file() else []
    loss_keys = sorted(
        {k for r in train for k, v in r.items() if k.startswith("loss") and isinstance(v, (int, float))}
    )
    metric_keys = sorted(
        {k for r in evals for k, v in r.items() if k not in _NOT_METRICS and isinstance(v, (int, float))}
    )
    if metrics is not None:
        metric_keys = [k for k in metrics if k in metric_keys]
    else:
        from pc3d.metric_names import headline_order

        metric_keys = headline_order(metric_keys)[:max_metrics]
    plt = _pyplot()
    panels = 2 + (1 if metric_keys else 0)
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8))
    for key in loss_keys:
        axes[0].plot(*_series(train, key), label=key, linewidth=1.2 if key == "loss" else 0.8)
    axes[0].set(title="training losses", xlabel="iteration", yscale="log" if loss_keys else "linear")
    axes[0].legend(fontsize=8)
    axes[1].plot(*_series(train, "lr"), color="tab:purple")
    axes[1].set(title="learning rate", xlabel="iteration")
    if metric_keys:
        for key in metric_keys:
            # COCO's -1 means "nothing to measure" (no large objects, say): not a point to draw.
            axes[2].plot(*_series(evals, key, skip=-1.0), marker="o", label=key)
        axes[2].set(title="validation", xlabel="iteration")
        axes[2].legend(fontsize=8)
    for axis in axes:
        axis.grid(alpha=0.3)
    latest = f" (the latest of {runs} runs in its log.jsonl)" if runs > 1 else ""
    figure.suptitle(f"{folder}{latest}", fontsize=9)
    return _save(figure, Path(out) if out is not None else folder / "curves.png")


def plot_pr_curves(result: Any, out: str | os.PathLike[str], overlap: str = "strict") -> Path:
    """Draw the KITTI precision-recall curves of ``result`` (a ``KittiEvalResult``) into a PNG.

    Args:
        result: the evaluation (its ``precision`` array, ``classes`` and ``ap40``).
        out: the PNG to write.
        overlap: ``"strict"`` (0.7/0.5/0.5 overlaps) or ``"loose"``.

    Returns:
        The PNG's path.
    """
    index = {"strict": 0, "loose": 1}.get(overlap)
    if index is None:
        raise FormatError(f"overlap must be 'strict' or 'loose', got {overlap!r}")
    plt = _pyplot()
    recall = np.linspace(0.0, 1.0, result.precision.shape[-1])
    names = ("2D box", "BEV", "3D")
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ("-", "--", ":")
    for m, axis in enumerate(axes):
        for c, cls in enumerate(result.classes):
            for d, difficulty in enumerate(("easy", "moderate", "hard")):
                ap = result.ap40[c, index, m, d]
                axis.plot(
                    recall,
                    result.precision[c, index, m, d],
                    styles[d],
                    color=colours[c % len(colours)],
                    label=f"{cls} {difficulty} (AP40 {ap:.1f})",
                )
        axis.set(title=f"{names[m]} ({overlap})", xlabel="recall", xlim=(0, 1), ylim=(0, 1.02))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("precision")
    axes[-1].legend(fontsize=7, loc="lower left")
    return _save(figure, Path(out))
