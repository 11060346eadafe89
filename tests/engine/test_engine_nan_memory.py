"""A NaN loss stops the run with a message naming the step and the terms, leaving the last good
checkpoint; memory stays flat over hundreds of iterations."""

from __future__ import annotations

import gc
import json
import os

import pytest
import torch

from pc3d.config import load_config
from pc3d.engine.checkpoint import LAST_POINTER, load_checkpoint
from pc3d.engine.runner import RunOptions, build_trainer, run_train
from pc3d.engine.trainer import NonFiniteLossError


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    write_config, registry, tmp_path
):
    # 8 iterations per epoch, a checkpoint each epoch; the loss turns NaN at iteration 11.
    config = load_config(write_config({"model": {"nan_after": 10}}))
    with pytest.raises(NonFiniteLossError) as info:
        run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    message = str(info.value)
    assert "loss is not finite at iteration 11 of 24 (epoch 2, batch 3/8)" in message
    assert "loss_mse=nan" in message and "loss=nan" in message and "loss_l1" not in message
    assert f"the last good checkpoint is {tmp_path / 'epoch_1.pth'}" in message

    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_1.pth"]
    assert (tmp_path / LAST_POINTER).read_text().strip() == "epoch_1.pth"
    state = load_checkpoint(tmp_path / "epoch_1.pth")
    assert state["iteration"] == 8
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "nan" and events[-1]["iteration"] == 11


def test_nan_before_any_checkpoint_says_so(write_config, registry, tmp_path):
    config = load_config(write_config({"model": {"nan_after": 0}}))
    with pytest.raises(NonFiniteLossError, match="iteration 1 of 24 .*no checkpoint was written before it"):
        run_train(config, RunOptions(work_dir=tmp_path), registry=registry)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _live_tensors() -> int:
    # type(), not isinstance(): some module objects warn when their __class__ is read.
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_memory_stays_flat_over_many_iterations(write_config, registry, tmp_path):
    # 300 iterations of batch 32 through a 256-wide layer, logging every one. A tensor kept per
    # iteration (a loss with its graph, an un-.item()'d logged value, a hook's history) shows in
    # the count of live tensors, which must not change between iterations 50 and 300 (a kept
    # loss adds 500); resident memory is the backstop for any other growth (about 2 MiB of
    # allocator noise here).
    config = load_config(
        write_config(
            {
                "model": {"hidden": 256},
                "data": {"train": {"dataset": {"num_samples": 128}, "batch_size": 32}, "val": None},
                "metrics": None,
                "schedule": {"epochs": 75, "lr": {"type": "cosine", "milestones": None}},
                "train": {"log_every": 1, "checkpoint_every": 1000},
            }
        )
    )
    trainer = build_trainer(config, RunOptions(work_dir=tmp_path), registry=registry)
    samples: dict[int, tuple[int, int]] = {}

    class Probe:
        def after_iter(self, trainer, outputs):
            if trainer.iteration in (50, 300):
                gc.collect()
                samples[trainer.iteration] = (_rss_bytes(), _live_tensors())

    trainer.hooks.hooks.append(Probe())
    trainer.hooks.names.append("Probe")
    trainer.train()
    trainer.close()
    (rss_early, tensors_early), (rss_late, tensors_late) = samples[50], samples[300]
    assert tensors_late == tensors_early
    assert rss_late - rss_early < 16 * 2**20, f"RSS grew {(rss_late - rss_early) / 2**20:.1f} MiB"
