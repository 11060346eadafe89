"""A tiny model, dataset, metric and train hooks for the engine's tests, registered through the
plugin contract like any plugin (in-process with ``register_plugin``; in subprocesses through an
entry point that the tests' ``conftest`` writes into a temporary ``*.dist-info``)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pc3d.engine.metric import Metric
from pc3d.errors import Pc3dError
from pc3d.plugin_api import Registrar, hookimpl

#: (tag, method, iteration, epoch) of every RecordingHook call in this process.
CALLS: list[tuple[str, str, int, int]] = []


class TinyRegressor(nn.Module):
    """``x: Tensor[B, in_dim] -> Tensor[B, out_dim]``: Linear -> LayerNorm -> ReLU -> Dropout ->
    Linear, trained with mean squared error.

    Args:
        in_dim: input features.
        hidden: hidden width.
        out_dim: outputs.
        dropout: dropout probability after the hidden layer.
        nan_after: from this many training calls of ``loss`` on, the loss is NaN.
        step_sleep: seconds to sleep in each training ``loss`` (slows a run down for a test
            that kills it part-way).
        fail_in: ``"loss"`` or ``"predict"``: that method raises a ``Pc3dError`` on its first
            call, as a head that validates its labels does; ``"loss_rank1"``: only on rank 1 of a
            multi-process run (the other ranks then lose their peer); ``"terms_rank1"``: rank 1
            returns one loss term more than the others.
        norm: ``"layer"`` (LayerNorm) or ``"batch"`` (BatchNorm1d: running statistics, buffers
            that ranks update apart).
    """

    def __init__(
        self,
        in_dim: int = 4,
        hidden: int = 16,
        out_dim: int = 1,
        dropout: float = 0.0,
        nan_after: int | None = None,
        step_sleep: float = 0.0,
        fail_in: str | None = None,
        norm: str = "layer",
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden) if norm == "batch" else nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_dim),
        )
        self.nan_after = nan_after
        self.step_sleep = step_sleep
        self.fail_in = fail_in
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def loss(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Two terms and no "loss" key: the engine back-propagates their sum."""
        self.calls += 1
        if self.fail_in == "loss" or (self.fail_in == "loss_rank1" and os.environ.get("RANK") == "1"):
            raise Pc3dError("model.head.num_classes: label 7 is outside 0..2 in this batch")
        if self.step_sleep:
            time.sleep(self.step_sleep)
        error = self(x) - y
        mse = error.square().mean()
        if self.nan_after is not None and self.calls > self.nan_after:
            mse = mse * float("nan")
        terms = {"loss_mse": mse, "loss_l1": 0.1 * error.abs().mean()}
        if self.fail_in == "terms_rank1" and os.environ.get("RANK") == "1":
            terms["loss_extra"] = 0.0 * mse  # a term only this rank has
        return terms

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        if self.fail_in == "predict":
            raise Pc3dError("model.head.num_classes: label 7 is outside 0..2 in this batch")
        return self(x)


class TinyRegressionDataset:
    """``y = x . w + noise``: ``w`` fixed by ``seed``, the samples by ``(seed, split)`` (a
    validation split shares ``w`` with the training one). Each access adds fresh augmentation
    noise drawn from torch's global generator (the engine seeds it per sample).

    A sample is ``{"x": Tensor[in_dim], "y": Tensor[out_dim], "index": int}``.
    """

    def __init__(
        self,
        num_samples: int = 64,
        in_dim: int = 4,
        out_dim: int = 1,
        augment: float = 0.05,
        seed: int = 0,
        split: int = 0,
    ) -> None:
        weights = torch.from_numpy(
            np.random.default_rng(seed).standard_normal((in_dim, out_dim)).astype(np.float32)
        )
        rng = np.random.default_rng([seed, split])
        self.x = torch.from_numpy(rng.standard_normal((num_samples, in_dim)).astype(np.float32))
        noise = torch.from_numpy(0.05 * rng.standard_normal((num_samples, out_dim)).astype(np.float32))
        self.y = self.x @ weights + noise
        self.augment = augment

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        x = self.x[index]
        if self.augment:
            x = x + self.augment * torch.randn_like(x)
        return {"x": x, "y": self.y[index], "index": index}


class MeanSquaredError(Metric):
    """``mse`` over all evaluated samples and ``count`` (how many were evaluated)."""

    def update(self, predictions: Tensor, batch: Mapping[str, Any]) -> None:
        error = (predictions - batch["y"]).square().sum(dim=1)
        self.results.append((float(error.sum().item()), int(error.shape[0])))

    def compute(self) -> dict[str, float]:
        total = sum(r[0] for r in self.results)
        count = sum(r[1] for r in self.results)
        return {"mse": total / max(count, 1), "count": float(count)}


class NamedMeanSquaredError(MeanSquaredError):
    """:class:`MeanSquaredError` that says its names before evaluating (``names()``)."""

    def names(self) -> list[str]:
        return ["mse", "count"]


class UndefinedMetric(Metric):
    """``undefined``: NaN, as a metric over no positives is (and ``infinite``: +inf)."""

    def update(self, predictions: Tensor, batch: Mapping[str, Any]) -> None:
        self.results.append(1)

    def compute(self) -> dict[str, float]:
        return {"undefined": float("nan"), "infinite": float("inf")}


class RecordingHook:
    """Appends ``(tag, method, iteration, epoch)`` to :data:`CALLS` at every hook point, and
    logs ``hook_calls`` through ``trainer.log`` after each epoch."""

    def __init__(self, tag: str = "hook") -> None:
        self.tag = tag
        self.calls = 0

    def _record(self, method: str, trainer: Any) -> None:
        self.calls += 1
        CALLS.append((self.tag, method, trainer.iteration, trainer.epoch))

    def before_train(self, trainer: Any) -> None:
        self._record("before_train", trainer)

    def before_epoch(self, trainer: Any) -> None:
        self._record("before_epoch", trainer)

    def before_iter(self, trainer: Any) -> None:
        self._record("before_iter", trainer)

    def after_iter(self, trainer: Any, outputs: Mapping[str, float]) -> None:
        assert "loss" in outputs and "lr" in outputs
        self._record("after_iter", trainer)

    def after_epoch(self, trainer: Any) -> None:
        self._record("after_epoch", trainer)
        trainer.log({f"{self.tag}_calls": self.calls})

    def after_train(self, trainer: Any) -> None:
        self._record("after_train", trainer)

    def state_dict(self) -> dict[str, int]:
        return {"calls": self.calls}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.calls = int(state["calls"])


class KittiMiniDataset:
    """Real KITTI frames (``tests/data/kitti/training``) as detector samples:
    ``{"points": Tensor[N, 4], "gt_boxes": Tensor[M, 7] (LiDAR, bottom centre), "gt_labels":
    Long[M]}``, objects of other classes dropped. ``max_points`` keeps a random subset (drawn
    from torch's generator, which the engine seeds per sample) to keep CPU tests quick.

    Point clouds differ in size, so the dataset brings its own ``collate`` (lists per key).
    """

    def __init__(self, root: str, frames: list[int], class_names: list[str], max_points: int = 20000) -> None:
        from pc3d.io.kitti import load_kitti_frame

        self.samples = []
        for frame_id in frames:
            frame = load_kitti_frame(root, frame_id)
            assert frame.labels is not None
            objects = frame.labels.objects()
            keep = np.isin(objects.types, class_names)
            boxes = frame.labels.to_lidar_boxes(frame.calib).tensor[torch.from_numpy(keep)]
            labels = torch.tensor([class_names.index(t) for t in objects.types[keep]], dtype=torch.long)
            points = torch.from_numpy(np.ascontiguousarray(frame.points.array, dtype=np.float32))
            self.samples.append((points, boxes.float(), labels))
        self.max_points = max_points

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        points, boxes, labels = self.samples[index]
        if points.shape[0] > self.max_points:
            points = points[torch.randperm(points.shape[0])[: self.max_points]]
        return {"points": points, "gt_boxes": boxes, "gt_labels": labels}

    @staticmethod
    def collate(samples: list[dict[str, Tensor]]) -> dict[str, list[Tensor]]:
        return {key: [sample[key] for sample in samples] for key in samples[0]}


class DetectionCount(Metric):
    """How many boxes a detector predicts per sample, and how many ground-truth boxes there are
    (a smoke-test metric, not an accuracy)."""

    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None:
        for detections, gt in zip(predictions, batch["gt_boxes"]):
            self.results.append((len(detections), int(gt.shape[0])))

    def compute(self) -> dict[str, float]:
        samples = max(len(self.results), 1)
        return {
            "detections_per_sample": sum(r[0] for r in self.results) / samples,
            "gt_per_sample": sum(r[1] for r in self.results) / samples,
        }


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_model(TinyRegressor)
    registry.add_dataset(TinyRegressionDataset)
    registry.add_dataset(KittiMiniDataset)
    registry.add_metric(MeanSquaredError)
    registry.add_metric(NamedMeanSquaredError)
    registry.add_metric(DetectionCount)
    registry.add_metric(UndefinedMetric)
    registry.add_train_hook(RecordingHook)
