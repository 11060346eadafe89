"""Training runtime: ``pc3d train`` / ``pc3d test`` from a config, on the CPU, a GPU or many
processes (``torchrun``), with logs, checkpoints and exact resume. See ``docs/engine.md``."""

from pc3d.engine.adapter import ModelAdapter
from pc3d.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pc3d.engine.metric import Metric
from pc3d.engine.runner import RunOptions, build_trainer, run_test, run_train
from pc3d.engine.trainer import NonFiniteLossError, Trainer

__all__ = [
    "CheckpointError",
    "Metric",
    "ModelAdapter",
    "NonFiniteLossError",
    "RunOptions",
    "Trainer",
    "build_trainer",
    "load_checkpoint",
    "run_test",
    "run_train",
    "save_checkpoint",
]
