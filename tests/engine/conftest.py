"""Fixtures of the engine tests: a registry holding the tiny test components, configs written
from Python dicts, and an environment in which a subprocess (``python -m pc3d``, ``torchrun``)
finds the test components through a real ``pc3d`` entry point."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import engine_testplugin
import pytest
import torch
import yaml

from pc3d.config import merge
from pc3d.plugin_manager import PluginManager
from pc3d.registry import Registry

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: A config for the tiny regressor: 64 training samples in batches of 8 (8 iterations per
#: epoch), a 32-sample validation split, AdamW with warm-up and a step.
BASE_CONFIG: dict[str, Any] = {
    "model": {"type": "TinyRegressor", "in_dim": 4, "hidden": 16},
    "data": {
        "train": {"dataset": {"type": "TinyRegressionDataset", "num_samples": 64}, "batch_size": 8},
        "val": {
            "dataset": {"type": "TinyRegressionDataset", "num_samples": 32, "augment": 0.0, "split": 1},
            "batch_size": 16,
        },
    },
    "metrics": [{"type": "MeanSquaredError"}],
    "optimizer": {
        "type": "AdamW",
        "lr": 0.01,
        "weight_decay": 0.01,
        "paramwise": {"norm_decay": 0.0, "bias_decay": 0.0},
    },
    "schedule": {
        "epochs": 3,
        "warmup": {"iters": 4, "ratio": 0.1},
        "lr": {"type": "multistep", "milestones": [2]},
    },
    "train": {"log_every": 4},
    "runtime": {"seed": 0, "device": "cpu", "num_threads": 1},
}


@pytest.fixture(autouse=True)
def _deterministic_mode_off_after_each_test() -> Iterator[None]:
    # The root conftest pins one torch thread; trainers in deterministic mode switch torch's
    # process-wide flag on, which must not leak into the next test.
    yield
    torch.use_deterministic_algorithms(False)


@pytest.fixture
def registry() -> Registry:
    """A registry with only the engine's test components (no global plugin state touched)."""
    manager = PluginManager(autoload=False, allow=(), block=())
    manager.register_plugin(engine_testplugin, "engine-test")
    return manager.registry


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(overrides, name=...)``: BASE_CONFIG deep-merged with ``overrides`` (a
    mapping with ``_replace_: true`` replaces instead of merging), written as YAML."""

    def write(overrides: dict[str, Any] | None = None, name: str = "tiny.yaml") -> Path:
        data = merge(copy.deepcopy(BASE_CONFIG), overrides or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """Environment for subprocesses: the test plugin is an installed distribution (a
    ``*.dist-info`` with an entry point in group ``pc3d``) on ``PYTHONPATH``."""
    site = tmp_path / "site"
    info = site / "pc3d_engine_testplugin-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pc3d-engine-testplugin\nVersion: 0.0.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text("[pc3d]\nengine_test = engine_testplugin\n", encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(HERE), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env.pop("PC3D_DISABLE_PLUGIN_AUTOLOAD", None)
    return env


def python() -> str:
    return sys.executable


def model_state(path: Path) -> dict[str, torch.Tensor]:
    """The model weights of a pc3d checkpoint."""
    return torch.load(path, map_location="cpu", weights_only=True)["model"]
