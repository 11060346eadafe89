"""Training with the tiny regressor: it learns, it is reproducible, it writes what it promises
(config, log.jsonl, metrics.jsonl, checkpoints), hooks run in order, bad configs are named."""

from __future__ import annotations

import json

import engine_testplugin
import pytest
import torch

from conftest import model_state
from pc3d.config import ConfigError, load_config
from pc3d.engine.checkpoint import BEST_NAME, LAST_POINTER
from pc3d.engine.runner import RunOptions, build_trainer, run_train


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_loss_goes_down_and_outputs_are_written(write_config, registry, tmp_path):
    config = load_config(
        write_config({"schedule": {"epochs": 4, "lr": {"milestones": [3]}}, "train": {"log_every": 1}})
    )
    metrics = run_train(config, RunOptions(work_dir=tmp_path), registry=registry)

    train = [r for r in _records(tmp_path / "log.jsonl") if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == list(range(1, 33))
    first_epoch = sum(r["loss"] for r in train[:8]) / 8
    last_epoch = sum(r["loss"] for r in train[-8:]) / 8
    assert last_epoch < 0.5 * first_epoch
    # The engine summed the two terms the model returned (no "loss" key) and logged each.
    for record in train:
        assert record["loss"] == pytest.approx(record["loss_mse"] + record["loss_l1"], rel=1e-5)
        assert record["epoch"] == (record["iteration"] - 1) // 8 + 1

    evaluations = _records(tmp_path / "metrics.jsonl")
    assert [(r["epoch"], r["iteration"]) for r in evaluations] == [(1, 8), (2, 16), (3, 24), (4, 32)]
    assert evaluations[-1]["mse"] < evaluations[0]["mse"]
    assert metrics == {"mse": evaluations[-1]["mse"], "count": 32.0}

    assert load_config(tmp_path / "config.yaml").data == config.data  # the resolved config
    assert (tmp_path / LAST_POINTER).read_text().strip() == "epoch_4.pth"
    state = torch.load(tmp_path / "epoch_4.pth", weights_only=True)
    assert state["iteration"] == 32 and state["epoch"] == 4 and state["seed"] == 0
    assert state["config"] == config.data
    assert {"model", "optimizer", "scheduler", "scaler", "rng"} <= set(state)


def test_two_seeded_runs_end_with_identical_weights(write_config, registry, tmp_path):
    # Dropout and augmentation draw random numbers: the seed must pin all of them.
    config = load_config(write_config({"model": {"dropout": 0.3}, "schedule": {"epochs": 2}}))
    run_train(config, RunOptions(work_dir=tmp_path / "a"), registry=registry)
    run_train(config, RunOptions(work_dir=tmp_path / "b"), registry=registry)
    a, b = model_state(tmp_path / "a/epoch_2.pth"), model_state(tmp_path / "b/epoch_2.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = load_config(
        write_config({"model": {"dropout": 0.3}, "schedule": {"epochs": 2}, "runtime": {"seed": 1}})
    )
    run_train(other, RunOptions(work_dir=tmp_path / "c"), registry=registry)
    c = model_state(tmp_path / "c/epoch_2.pth")
    assert not torch.equal(a["net.0.weight"], c["net.0.weight"])


def test_hooks_are_called_in_order_and_their_state_is_checkpointed(write_config, registry, tmp_path):
    engine_testplugin.CALLS.clear()
    config = load_config(
        write_config(
            {
                "schedule": {"epochs": 2},
                "data": {"train": {"dataset": {"num_samples": 16}}},
                "train": {
                    "hooks": [{"type": "RecordingHook", "tag": "a"}, {"type": "RecordingHook", "tag": "b"}]
                },
            }
        )
    )
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    calls = engine_testplugin.CALLS
    # Each point calls hook a, then hook b.
    assert [c[0] for c in calls] == ["a", "b"] * (len(calls) // 2)
    methods = [c[1:] for c in calls if c[0] == "a"]
    expected = [("before_train", 0, 0)]
    for epoch in range(2):
        expected.append(("before_epoch", epoch * 2, epoch))
        for step in range(2):
            it = epoch * 2 + step
            expected += [("before_iter", it, epoch), ("after_iter", it + 1, epoch)]
        expected.append(("after_epoch", epoch * 2 + 2, epoch))
    expected.append(("after_train", 4, 1))
    assert methods == expected
    state = torch.load(tmp_path / "epoch_2.pth", weights_only=True)
    # Saved after the last step, before that epoch's after_epoch and after_train (12 of 14 calls).
    assert state["hooks"] == {"0:RecordingHook": {"calls": 12}, "1:RecordingHook": {"calls": 12}}
    logged = [r for r in _records(tmp_path / "log.jsonl") if r["kind"] == "hook"]
    assert [r["a_calls"] for r in logged if "a_calls" in r] == [7, 13]


def test_keep_last_and_best_checkpoint(write_config, registry, tmp_path):
    config = load_config(
        write_config(
            {
                "schedule": {"epochs": 4, "lr": {"milestones": [3]}},
                "train": {"keep_last": 2, "best_metric": {"name": "mse", "mode": "min"}},
            }
        )
    )
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [BEST_NAME, "epoch_3.pth", "epoch_4.pth"]
    evaluations = _records(tmp_path / "metrics.jsonl")
    best = min(evaluations, key=lambda r: r["mse"])
    state = torch.load(tmp_path / BEST_NAME, weights_only=True)
    assert state["best"]["value"] == best["mse"] and state["iteration"] == best["iteration"]


def test_best_metric_must_be_an_evaluated_metric(write_config, registry, tmp_path):
    config = load_config(write_config({"train": {"best_metric": {"name": "mAP"}}}))
    with pytest.raises(
        ConfigError, match=r"'mAP' is not among the evaluated metrics \(mse, count\)"
    ) as error:
        run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    # What was trained up to that first evaluation is kept, and the message says how to go on.
    saved = tmp_path / "epoch_1.pth"
    assert saved.is_file() and f"continue with --resume {saved}" in str(error.value)
    fixed = load_config(
        write_config({"train": {"best_metric": {"name": "mse", "mode": "min"}}}, name="fixed.yaml")
    )
    trainer = build_trainer(fixed, RunOptions(work_dir=tmp_path, resume=saved), registry=registry)
    assert trainer.iteration == 8  # one epoch of 8 iterations
    trainer.close()


def test_a_best_metric_no_named_metric_gives_is_refused_before_training(write_config, registry, tmp_path):
    named = {"metrics": [{"type": "NamedMeanSquaredError"}], "train": {"best_metric": {"name": "MSE"}}}
    config = load_config(write_config(named))
    with pytest.raises(
        ConfigError,
        match=r"train.best_metric.name: 'MSE' is not a metric this config evaluates \(did you mean 'mse'\?\); "
        r"its metrics give: mse, count",
    ):
        run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    assert not list(tmp_path.glob("*.pth"))  # refused before the first step


def test_load_from_takes_weights_only(write_config, registry, tmp_path):
    config = load_config(
        write_config({"schedule": {"epochs": 1, "lr": {"type": "constant", "milestones": None}}})
    )
    run_train(config, RunOptions(work_dir=tmp_path / "first"), registry=registry)
    weights = model_state(tmp_path / "first/epoch_1.pth")
    # A plain state dict (as other toolkits save) works too.
    torch.save({"state_dict": weights}, tmp_path / "plain.pth")
    trainer = build_trainer(
        config, RunOptions(work_dir=tmp_path / "second", load_from=tmp_path / "plain.pth"), registry=registry
    )
    assert trainer.iteration == 0
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in weights.items())
    assert not trainer.optimizer.state  # a fresh optimizer
    trainer.close()

    # A refused start in a used work dir leaves the earlier run's files as they were.
    first = tmp_path / "first"
    kept = {name: (first / name).read_bytes() for name in ("config.yaml", "metrics.jsonl", "last_checkpoint")}
    wrong = load_config(write_config({"model": {"hidden": 8}}, name="wrong.yaml"))
    with pytest.raises(Exception, match="its weights do not fit"):
        build_trainer(wrong, RunOptions(work_dir=first, load_from=tmp_path / "plain.pth"), registry=registry)
    assert {name: (first / name).read_bytes() for name in kept} == kept
    assert not list(first.glob("metrics.*.jsonl"))  # not set aside either

    with pytest.raises(
        Exception, match=r"plain.pth: its weights do not fit TinyRegressor.* keys with other shapes: "
    ):
        build_trainer(
            wrong,
            RunOptions(work_dir=tmp_path / "third", load_from=tmp_path / "plain.pth"),
            registry=registry,
        )


def test_iteration_schedule_evaluates_and_checkpoints_in_iterations(write_config, registry, tmp_path):
    config = load_config(
        write_config(
            {
                "schedule": {"epochs": None, "iterations": 12, "lr": {"milestones": [10]}},
                "train": {"eval_every": 5, "checkpoint_every": 6},
            }
        )
    )
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    assert [r["iteration"] for r in _records(tmp_path / "metrics.jsonl")] == [5, 10, 12]
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["iter_12.pth", "iter_6.pth"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"trian": {}},
            r"trian \(from .*tiny.yaml:\d+\): unknown top-level key 'trian' \(did you mean 'train'\?\)",
        ),
        (
            {"train": {"grad_clp": {"max_norm": 1}}},
            r"train.grad_clp \(from .*tiny.yaml:\d+\): unknown key 'grad_clp' \(did you mean 'grad_clip'\?\)",
        ),
        (
            {"schedule": {"lr": {"type": "cosin"}}},
            r"schedule.lr.type \(from .*tiny.yaml:\d+\): 'cosin' is not one of .* \(did you mean 'cosine'\?\)",
        ),
        (
            {"optimizer": {"momentun": 0.9}},
            r"optimizer.momentun \(from .*tiny.yaml:\d+\): unknown argument 'momentun' for AdamW",
        ),
        (
            {"optimizer": {"type": "Adamw"}},
            r"optimizer.type \(from .*tiny.yaml:\d+\): unknown optimizer 'Adamw' \(did you mean 'AdamW'\?\)",
        ),
        (
            {"data": {"train": {"batch_size": "8"}}},
            r"data.train.batch_size \(from .*tiny.yaml:\d+\): expected an integer, got a string",
        ),
        (
            {"model": {"hiden": 3}},
            r"model.hiden \(from .*tiny.yaml:\d+\): unknown argument 'hiden' .*did you mean 'hidden'\?",
        ),
        (
            {"schedule": {"epochs": 2, "iterations": 5}},
            r"schedule: give exactly one of 'epochs' and 'iterations'",
        ),
        ({"schedule": {"lr": {"type": "cosine"}}}, r"schedule.lr.milestones: not used by lr type 'cosine'"),
        (
            {"runtime": {"device": "gpu"}},
            r"runtime.device \(from .*tiny.yaml:\d+\): 'gpu' is not one of auto, cpu, cuda",
        ),
    ],
)
def test_config_mistakes_are_named(write_config, registry, tmp_path, overrides, message):
    config = load_config(write_config(overrides))
    with pytest.raises(ConfigError, match=message):
        run_train(config, RunOptions(work_dir=tmp_path), registry=registry)


def test_grad_clip_bounds_the_step_and_logs_the_norm_before_clipping(write_config, registry, tmp_path):
    # Plain SGD with lr 1: the update is the clipped gradient itself.
    config = load_config(
        write_config(
            {
                "optimizer": {"_replace_": True, "type": "SGD", "lr": 1.0},
                "schedule": {
                    "epochs": None,
                    "iterations": 1,
                    "warmup": None,
                    "lr": {"type": "constant", "milestones": None},
                },
                "train": {"grad_clip": {"max_norm": 0.001}, "log_every": 1},
            }
        )
    )
    trainer = build_trainer(config, RunOptions(work_dir=tmp_path), registry=registry)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    trainer.close()
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(trainer.model.parameters(), before)))
    assert 0.0009 < float(step) <= 0.001 + 1e-7
    norms = [r["grad_norm"] for r in _records(tmp_path / "log.jsonl") if r["kind"] == "train"]
    assert len(norms) == 1 and norms[0] > 0.01


def test_a_fresh_run_in_a_used_work_dir_sets_the_earlier_results_aside(
    write_config, registry, tmp_path, capsys
):
    config = load_config(write_config({"schedule": {"epochs": 1}}))
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    earlier = (tmp_path / "metrics.jsonl").read_text()
    capsys.readouterr()
    trainer = build_trainer(config, RunOptions(work_dir=tmp_path), registry=registry)
    assert "holds an earlier run" in capsys.readouterr().err
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / LAST_POINTER).exists()
    [kept] = tmp_path.glob("metrics.*.jsonl")
    assert kept.read_text() == earlier
    trainer.train()
    trainer.close()
    assert len(_records(tmp_path / "metrics.jsonl")) == 1


def test_a_fresh_run_in_a_used_work_dir_keeps_its_own_checkpoints_and_sets_the_old_best_aside(
    write_config, registry, tmp_path
):
    best = {"best_metric": {"name": "mse", "mode": "min"}}
    earlier = load_config(write_config({"schedule": {"epochs": 3}, "train": best}, name="earlier.yaml"))
    run_train(earlier, RunOptions(work_dir=tmp_path), registry=registry)
    old_best = (tmp_path / "best.pth").read_bytes()
    fresh = load_config(
        write_config({"schedule": {"epochs": 1}, "train": {**best, "keep_last": 1}}, name="fresh.yaml")
    )
    run_train(fresh, RunOptions(work_dir=tmp_path), registry=registry)
    # keep_last prunes this run's line only: its epoch_1.pth stays (and last_checkpoint names
    # it); the earlier run's later epochs are left until this run reaches them.
    assert (tmp_path / "epoch_1.pth").is_file() and (tmp_path / "epoch_3.pth").is_file()
    assert (tmp_path / "last_checkpoint").read_text().strip() == "epoch_1.pth"
    set_aside = list(tmp_path.glob("best.*.pth"))
    assert len(set_aside) == 1 and set_aside[0].read_bytes() == old_best
    assert (tmp_path / "best.pth").read_bytes() != old_best
