"""Smaller pieces: the model contract's errors, collate, device moves, per-sample seeding with
loader workers, hooks, console output, TensorBoard, interrupts."""

from __future__ import annotations

import io
import json
import sys
import types

import pytest
import torch
from torch import nn

from conftest import model_state
from pc3d.config import ConfigError, load_config
from pc3d.engine.adapter import ModelAdapter, total_loss
from pc3d.engine.hooks import HookList
from pc3d.engine.loaders import collate_lists, move_to_device
from pc3d.engine.logging import RunLogger, format_seconds
from pc3d.engine.runner import RunOptions, build_trainer, run_train
from pc3d.engine.seed import SeededDataset
from pc3d.errors import MissingDependencyError, Pc3dError
from pc3d.plugin_api import hookimpl
from pc3d.plugin_manager import PluginManager


class _Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def loss(self, points, gt_boxes, scale: float = 1.0):
        return {"loss": self.w * scale}

    def predict(self, points):
        return [p.shape[0] for p in points]


def test_model_adapter_passes_the_keys_each_method_names():
    adapter = ModelAdapter(_Detector())
    batch = {"points": [torch.zeros(3, 4)], "gt_boxes": [torch.zeros(1, 7)], "sample_id": ["000001"]}
    assert adapter(batch, mode="loss")["loss"].item() == 1.0
    assert adapter({**batch, "scale": 2.0}, mode="loss")["loss"].item() == 2.0
    assert adapter(batch, mode="predict") == [3]
    with pytest.raises(
        Pc3dError, match=r"_Detector.loss\(\) needs 'gt_boxes' but the batch has only 'points'"
    ):
        adapter({"points": []}, mode="loss")
    with pytest.raises(Pc3dError, match=r"model Linear has no loss\(\) method"):
        ModelAdapter(nn.Linear(1, 1))({}, mode="loss")


def test_collate_lists_and_device_moves():
    samples = [{"points": torch.zeros(2, 4), "id": 1}, {"points": torch.zeros(5, 4), "id": 2}]
    batch = collate_lists(samples)
    assert [p.shape[0] for p in batch["points"]] == [2, 5] and batch["id"] == [1, 2]
    with pytest.raises(Pc3dError, match="sample 1 has keys"):
        collate_lists([{"a": 1}, {"b": 2}])
    moved = move_to_device({"x": [torch.ones(1), (torch.ones(1), "s")], "n": 3}, torch.device("cpu"))
    assert moved["n"] == 3 and moved["x"][1][1] == "s"


def test_a_sample_is_the_same_whatever_the_order_it_is_drawn_in(registry):
    from engine_testplugin import TinyRegressionDataset

    seeded = SeededDataset(TinyRegressionDataset(num_samples=8, augment=1.0), seed=5)
    forward = [seeded[(2, i)]["x"] for i in range(8)]
    backward = [seeded[(2, i)]["x"] for i in reversed(range(8))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward))
    assert not torch.equal(seeded[(3, 0)]["x"], forward[0])  # another epoch, another draw
    # The caller's generator is untouched by loading a sample.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    seeded[(0, 1)]
    assert torch.equal(torch.rand(3), expected)


def test_loader_workers_do_not_change_the_result(write_config, registry, tmp_path):
    # Augmentation is seeded per (seed, epoch, index), so worker processes draw what the main
    # process would have drawn.
    base = {"schedule": {"epochs": 2}, "model": {"dropout": 0.2}}
    run_train(load_config(write_config(base)), RunOptions(work_dir=tmp_path / "w0"), registry=registry)
    with_workers = write_config(
        {**base, "data": {"train": {"num_workers": 2, "persistent_workers": True}}}, name="w2.yaml"
    )
    run_train(load_config(with_workers), RunOptions(work_dir=tmp_path / "w2"), registry=registry)
    a, b = model_state(tmp_path / "w0/epoch_2.pth"), model_state(tmp_path / "w2/epoch_2.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_misspelt_hook_method_is_reported():
    class Hook:
        def after_iteration(self, trainer, outputs):
            pass

    with pytest.raises(TypeError, match="defines 'after_iteration', which is not a hook method"):
        HookList([Hook()])


def test_a_failing_hook_is_named(write_config, registry, tmp_path):
    trainer = build_trainer(load_config(write_config()), RunOptions(work_dir=tmp_path), registry=registry)

    class Broken:
        def before_iter(self, trainer):
            if trainer.iteration == 3:
                raise RuntimeError("boom")

    trainer.hooks = HookList([Broken()], ["Broken"])
    with pytest.raises(RuntimeError, match="boom") as info:
        trainer.train()
    assert "in train hook Broken.before_iter (iteration 3)" in info.value.__notes__


def test_interrupt_tells_how_to_resume(write_config, registry, tmp_path, capsys):
    trainer = build_trainer(load_config(write_config()), RunOptions(work_dir=tmp_path), registry=registry)

    class CtrlC:
        def before_iter(self, trainer):
            if trainer.iteration == 10:
                raise KeyboardInterrupt

    trainer.hooks = HookList([CtrlC()], ["CtrlC"])
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    err = capsys.readouterr().err
    assert (
        f"interrupted at iteration 10; continue with `pc3d train CONFIG --work-dir {tmp_path} --resume` (from {tmp_path / 'epoch_1.pth'})"
        in err
    )
    # A run of two processes resumes with two: the message says how to launch them.
    import dataclasses

    class CtrlCAtOnce:
        def before_iter(self, trainer):
            raise KeyboardInterrupt  # before any collective of the (pretended) second process

    two = build_trainer(load_config(write_config()), RunOptions(work_dir=tmp_path / "two"), registry=registry)
    two.dist = dataclasses.replace(two.dist, world_size=2)
    two.hooks = HookList([CtrlCAtOnce()], ["CtrlCAtOnce"])
    with pytest.raises(KeyboardInterrupt):
        two.train()
    said = capsys.readouterr().err
    assert "continue with `torchrun --nproc_per_node 2 -m pc3d train CONFIG --work-dir" in said


def test_model_outputs_that_break_the_contract():
    with pytest.raises(
        Pc3dError, match=r"TinyRegressor.loss\(\) returned 'loss' of shape \(2,\); losses must be scalars"
    ):
        total_loss({"loss": torch.ones(2)}, "TinyRegressor")
    with pytest.raises(Pc3dError, match="expected a dict of name -> scalar loss"):
        total_loss(torch.ones(()), "TinyRegressor")
    total, values = total_loss(
        {"loss": torch.tensor(2.0), "loss_a": torch.tensor(1.5), "accuracy": 0.5}, "TinyRegressor"
    )
    assert total.item() == 2.0 and values == {"loss": 2.0, "loss_a": 1.5, "accuracy": 0.5}
    with pytest.raises(Pc3dError, match="returned no tensors to back-propagate"):
        total_loss({"accuracy": 0.5}, "TinyRegressor")


def test_batches_must_be_mappings(write_config, registry, tmp_path):
    config = load_config(write_config({"data": {"train": {"collate": "default"}}}))
    trainer = build_trainer(config, RunOptions(work_dir=tmp_path), registry=registry)
    trainer.train_loader.collate_fn = lambda samples: [s["x"] for s in samples]
    with pytest.raises(Pc3dError, match="data.train: a batch must be a mapping .* got list"):
        trainer.train()


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_shows_a_progress_bar_on_a_terminal_and_lines_with_eta(tmp_path):
    stream = _TTY()
    logger = RunLogger(tmp_path, enabled=True, total_iters=20, tensorboard=False, stream=stream)
    logger.start(5)  # resumed after 5 iterations
    logger.step(6, {"loss": 0.5, "lr": 0.1})
    logger.log_train(1, 6, 10, {"loss": 0.5, "lr": 0.1, "iter_time": 0.2})
    logger.close()
    text = stream.getvalue()
    assert "train:" in text and "6/20" in text  # tqdm's bar, starting from the resumed position
    assert "epoch 1 [6/10] iter 6/20  loss 0.5  lr 0.1  0.200 s/it  eta" in text
    assert format_seconds(3725) == "1:02:05" and format_seconds(65) == "1:05"
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])["loss"] == 0.5


def test_nothing_is_written_on_other_ranks(tmp_path):
    logger = RunLogger(tmp_path / "rank1", enabled=False, total_iters=5, stream=io.StringIO())
    logger.log_train(1, 1, 5, {"loss": 1.0})
    logger.log_eval(1, 1, {"mse": 1.0})
    logger.close()
    assert not (tmp_path / "rank1").exists()


def test_tensorboard_when_importable_and_when_required(tmp_path, monkeypatch):
    scalars: list[tuple[str, float, int]] = []

    class FakeWriter:
        def __init__(self, log_dir: str) -> None:
            self.log_dir = log_dir

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            scalars.append((tag, value, step))

        def close(self) -> None:
            scalars.append(("closed", 0.0, 0))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    logger = RunLogger(tmp_path, enabled=True, total_iters=4, stream=io.StringIO())
    logger.log_train(1, 2, 4, {"loss": 0.25, "lr": 0.1})
    logger.log_eval(1, 4, {"mse": 0.5})
    logger.close()
    assert scalars == [("train/loss", 0.25, 2), ("train/lr", 0.1, 2), ("val/mse", 0.5, 4), ("closed", 0.0, 0)]

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(MissingDependencyError, match="pip install tensorboard"):
        RunLogger(tmp_path, enabled=True, total_iters=4, tensorboard=True, stream=io.StringIO())
    quiet = RunLogger(tmp_path, enabled=True, total_iters=4, stream=io.StringIO())
    quiet.close()
    assert "tensorboard not installed" in (tmp_path / "log.jsonl").read_text()


def test_amp_on_the_cpu_falls_back_to_float32_and_says_so(write_config, registry, tmp_path, capsys):
    config = load_config(write_config({"train": {"amp": True}, "schedule": {"epochs": 1}}))
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    assert "train.amp is set but the run is on the CPU" in capsys.readouterr().err


def test_cuda_asked_for_without_cuda(write_config, registry, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = load_config(write_config())
    with pytest.raises(Pc3dError, match="device 'cuda' asked for, but torch sees no CUDA device"):
        run_train(config, RunOptions(work_dir=tmp_path, device="cuda"), registry=registry)


class _PlainModels:
    """A second plugin: a model with no loss() method."""

    @hookimpl
    def pc3d_register(self, registry) -> None:
        def plain_linear(in_dim: int = 4) -> nn.Module:
            return nn.Linear(in_dim, 1)

        registry.add_model(plain_linear, name="PlainLinear")


def test_model_without_loss_is_a_config_error(write_config, tmp_path):
    import engine_testplugin

    manager = PluginManager(autoload=False, allow=(), block=())
    manager.register_plugin(engine_testplugin, "engine-test")
    manager.register_plugin(_PlainModels(), "plain")
    config = load_config(write_config({"model": {"_replace_": True, "type": "PlainLinear"}}))
    with pytest.raises(ConfigError, match=r"model Linear has no loss\(\) method"):
        run_train(config, RunOptions(work_dir=tmp_path), registry=manager.registry)


def test_the_package_exports_resolve():
    import pc3d.engine

    assert all(getattr(pc3d.engine, name) is not None for name in pc3d.engine.__all__)
    assert pc3d.engine.ModelAdapter.__module__ == "pc3d.engine.adapter"


def test_console_line_shows_the_headline_metrics() -> None:
    from pc3d.engine.logging import CONSOLE_METRICS, console_metrics

    few = {"top1": 0.9, "top5": 1.0}
    assert console_metrics(few) == few
    kitti = {
        f"KITTI/{c}_{m}_AP40_{d}_{o}": 1.0
        for c in ("Car", "Cyclist")
        for m in ("2D", "BEV", "3D")
        for d in ("easy", "moderate", "hard")
        for o in ("strict", "loose")
    }
    shown = console_metrics(kitti)
    assert set(shown) == {k for k in kitti if "moderate_strict" in k} and len(shown) == 6
    many = {f"m{i}": float(i) for i in range(30)}
    assert list(console_metrics(many)) == [f"m{i}" for i in range(CONSOLE_METRICS)]
    # SemanticKITTI: 19 per-class IoUs, then the summaries, which the line must not hide.
    seg = {**{f"class{i}": float("nan") for i in range(19)}, "miou": 0.4, "acc": 0.8, "acc_cls": 0.5}
    assert list(console_metrics(seg))[:3] == ["miou", "acc", "acc_cls"]
    indoor = {
        **{f"chair{i}_AP_0.25": 0.1 for i in range(8)},
        **{f"c{i}_rec_0.25": 0.1 for i in range(8)},
        "mAP_0.25": 0.3,
    }
    assert next(iter(console_metrics(indoor))) == "mAP_0.25"


def test_plot_draws_no_coco_minus_one(tmp_path) -> None:
    """COCO reports -1 where it has nothing to measure (APl without large objects)."""
    from pc3d.vis.plots import _series

    evals = [{"iteration": 10, "APl": -1.0, "AP": 0.2}, {"iteration": 20, "APl": 0.5, "AP": 0.3}]
    steps, values = _series(evals, "APl", skip=-1.0)
    assert steps.tolist() == [20] and values.tolist() == [0.5]
    assert _series(evals, "AP", skip=-1.0)[1].tolist() == [0.2, 0.3]


def test_terminal_progress_draws_on_a_terminal_only(monkeypatch, tmp_path):
    from pc3d.data.synthetic import write_synthetic_kitti
    from pc3d.engine.logging import terminal_progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file
    assert list(terminal_progress(range(3), "work")) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""
    write_synthetic_kitti(tmp_path / "synth", scenes=2, seed=0, progress=True)
    assert "pc3d data synth" not in sys.stderr.getvalue()

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert list(terminal_progress(iter(range(3)), "work", unit="scene", total=3)) == [0, 1, 2]
    assert "work:   0%" in sys.stderr.getvalue() and "0/3" in sys.stderr.getvalue()


def test_a_run_logger_closed_before_any_record_leaves_no_empty_log(tmp_path) -> None:
    from pc3d.engine.logging import LOG_NAME, RunLogger

    quiet = RunLogger(
        tmp_path / "refused", enabled=True, total_iters=10, tensorboard=False, stream=io.StringIO()
    )
    quiet.close()
    assert not (tmp_path / "refused" / LOG_NAME).exists()
    used = RunLogger(tmp_path / "used", enabled=True, total_iters=10, tensorboard=False, stream=io.StringIO())
    used.event("started", kind="start")
    used.close()
    assert (tmp_path / "used" / LOG_NAME).stat().st_size > 0
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / LOG_NAME).write_text("")  # an earlier file is never removed
    RunLogger(
        tmp_path / "kept", enabled=True, total_iters=10, tensorboard=False, stream=io.StringIO()
    ).close()
    assert (tmp_path / "kept" / LOG_NAME).exists()
