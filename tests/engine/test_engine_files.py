"""What a run writes: new files with the permissions the umask gives (not a temp file's 0600),
replaced files with the mode they had, and valid JSON everywhere, with a metric that is NaN or
infinite written as null."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import engine_testplugin
import pytest
import torch

from pc3d.cli import main
from pc3d.config import load_config
from pc3d.engine import checkpoint as ckpt
from pc3d.engine.logging import METRICS_NAME, rewrite_metrics_until
from pc3d.engine.runner import RunOptions, run_train
from pc3d.plugin_manager import get_plugin_manager, get_registry


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _strict_json(text: str) -> object:
    """``json.loads`` that refuses NaN and Infinity (which Python's parser accepts by default)."""

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_checkpoint_and_pointer_get_the_umask_mode(tmp_path, umask_022):
    path = ckpt.save_checkpoint({"model": {"w": torch.ones(2)}}, tmp_path / "epoch_1.pth")
    ckpt.write_last_pointer(tmp_path, path)
    assert _mode(path) == 0o644
    assert _mode(tmp_path / ckpt.LAST_POINTER) == 0o644
    # Replacing a file gives the new one the same mode.
    ckpt.save_checkpoint({"model": {"w": torch.zeros(2)}}, path)
    assert _mode(path) == 0o644


def test_rewritten_metrics_file_keeps_its_mode(tmp_path, umask_022):
    metrics = tmp_path / METRICS_NAME
    metrics.write_text('{"iteration": 8, "mse": 1.0}\n{"iteration": 16, "mse": 0.5}\n')
    assert _mode(metrics) == 0o644
    assert rewrite_metrics_until(tmp_path, 8) == 1
    assert metrics.read_text() == '{"iteration": 8, "mse": 1.0}\n'
    assert _mode(metrics) == 0o644
    os.chmod(metrics, 0o600)  # a mode the user set survives the rewrite
    metrics.write_text('{"iteration": 8, "mse": 1.0}\n{"iteration": 16, "mse": 0.5}\n')
    assert rewrite_metrics_until(tmp_path, 8) == 1
    assert _mode(metrics) == 0o600


def test_a_run_writes_every_file_with_the_umask_mode(write_config, registry, tmp_path, umask_022):
    config = load_config(write_config({"schedule": {"epochs": 1}}))
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    written = [p for p in tmp_path.iterdir() if p.is_file()]
    assert {"epoch_1.pth", ckpt.LAST_POINTER, METRICS_NAME, "log.jsonl", "config.yaml"} <= {
        p.name for p in written
    }
    assert {p.name: _mode(p) for p in written} == {p.name: 0o644 for p in written}


@pytest.fixture
def cli_plugins():
    if ("model", "TinyRegressor") not in get_registry():
        get_plugin_manager().register_plugin(engine_testplugin, "engine-test")


def test_non_finite_metrics_are_null_in_every_json_output(write_config, tmp_path, cli_plugins, umask_022):
    config = write_config(
        {"schedule": {"epochs": 1}, "metrics": [{"type": "MeanSquaredError"}, {"type": "UndefinedMetric"}]}
    )
    work = tmp_path / "work"
    assert main(["train", str(config), "--work-dir", str(work)]) == 0

    [evaluation] = [_strict_json(line) for line in (work / METRICS_NAME).read_text().splitlines()]
    assert evaluation["undefined"] is None and evaluation["infinite"] is None
    assert evaluation["mse"] > 0
    log = [_strict_json(line) for line in (work / "log.jsonl").read_text().splitlines()]
    [logged] = [r for r in log if r["kind"] == "eval"]
    assert logged["undefined"] is None and logged["infinite"] is None

    result = tmp_path / "out" / "test.json"
    assert main(["test", str(config), str(work / "epoch_1.pth"), "--json", str(result)]) == 0
    written = _strict_json(result.read_text())
    assert written["undefined"] is None and written["infinite"] is None
    assert written["mse"] == pytest.approx(evaluation["mse"], rel=1e-6)
    assert _mode(result) == 0o644


def test_one_training_run_at_a_time_in_a_work_dir(write_config, registry, tmp_path):
    """A second run in the folder (a resume while the first still runs, say) is refused before it
    touches anything; the lock goes with the first run."""
    from pc3d.engine.runner import build_trainer
    from pc3d.errors import Pc3dError

    config = load_config(write_config({"schedule": {"epochs": 1}}))
    first = build_trainer(config, RunOptions(work_dir=tmp_path), registry=registry)
    (tmp_path / ".epoch_1.pth.0a1b2c3d.tmp").write_bytes(b"the first run's write in progress")
    with pytest.raises(
        Pc3dError,
        match=rf"{re.escape(str(tmp_path))}: another pc3d run is training in this work directory \(pid {os.getpid()} on ",
    ):
        build_trainer(config, RunOptions(work_dir=tmp_path, resume=True), registry=registry)
    assert (tmp_path / ".epoch_1.pth.0a1b2c3d.tmp").exists()  # not cleared as an unfinished write
    first.train()
    first.close()
    second = build_trainer(config, RunOptions(work_dir=tmp_path, resume=True), registry=registry)
    second.close()
