"""Learning-rate schedules give the values docs/engine.md documents (worked out by hand here),
and parameter groups get the documented weight decay."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from torch import nn

from pc3d.config import ConfigError, load_config
from pc3d.engine.optim import build_optimizer, build_scheduler, check_optimizer, check_schedule, param_groups
from pc3d.engine.runner import RunOptions, run_train
from pc3d.engine.schema import LrSpec, ScheduleSpec, WarmupSpec


def _lrs(spec: ScheduleSpec, total: int, per_epoch: int, lr: float = 1.0) -> list[float]:
    """The learning rate of each of ``total`` optimizer steps."""
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = build_scheduler(optimizer, spec, total_iters=total, iters_per_epoch=per_epoch)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_warmup_then_multistep_in_epochs_through_a_real_run(write_config, registry, tmp_path):
    # 8 iterations per epoch, 3 epochs; warm-up over 4 iterations from 0.1 x 0.01; x0.1 at epoch 2.
    config = load_config(write_config({"train": {"log_every": 1}}))
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    logged = [
        json.loads(line)["lr"]
        for line in (tmp_path / "log.jsonl").read_text().splitlines()
        if '"kind": "train"' in line
    ]
    expected = [0.001, 0.00325, 0.0055, 0.00775] + [0.01] * 12 + [0.001] * 8
    assert logged == pytest.approx(expected, rel=1e-12)


def test_warmup_then_cosine():
    spec = ScheduleSpec(
        iterations=10, warmup=WarmupSpec(iters=2, ratio=0.5), lr=LrSpec(type="cosine", min_lr=0.1)
    )
    values = _lrs(spec, total=10, per_epoch=5)
    assert values[:2] == pytest.approx([0.5, 0.75], rel=1e-12)
    # After warm-up: 0.1 + 0.9 * (1 + cos(pi * k / 8)) / 2 for k = 0..7
    hand = [0.1 + 0.9 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    assert values[2:] == pytest.approx(hand, rel=1e-9)


def test_cosine_min_ratio_without_warmup():
    spec = ScheduleSpec(epochs=2, lr=LrSpec(type="cosine", min_ratio=0.01))
    values = _lrs(spec, total=4, per_epoch=2, lr=2.0)
    hand = [0.02 + 1.98 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    assert values == pytest.approx(hand, rel=1e-9)


def test_step_1x_milestones_are_epochs_8_and_11():
    spec = ScheduleSpec(epochs=12, warmup=WarmupSpec(iters=3, ratio=0.25), lr=LrSpec(type="1x"))
    values = _lrs(spec, total=24, per_epoch=2)
    assert values[:3] == pytest.approx([0.25, 0.5, 0.75], rel=1e-12)
    assert values[3:16] == pytest.approx([1.0] * 13)
    assert values[16:22] == pytest.approx([0.1] * 6)  # from epoch 8 = iteration 16
    assert values[22:] == pytest.approx([0.01] * 2)  # from epoch 11 = iteration 22


def test_multistep_in_iterations_with_a_milestone_inside_warmup():
    spec = ScheduleSpec(
        iterations=8,
        warmup=WarmupSpec(iters=4, ratio=0.5),
        lr=LrSpec(type="multistep", milestones=[2, 6], gamma=0.5),
    )
    # The milestone at 2 falls inside the warm-up: it takes effect when warm-up ends (iteration 4).
    assert _lrs(spec, total=8, per_epoch=8) == pytest.approx([0.5, 0.625, 0.75, 0.875, 0.5, 0.5, 0.25, 0.25])


def test_onecycle():
    spec = ScheduleSpec(
        iterations=10, lr=LrSpec(type="onecycle", pct_start=0.3, div_factor=10, final_div_factor=100)
    )
    values = _lrs(spec, total=10, per_epoch=10)

    # Up from lr / 10 to lr over steps 0..2 (pct_start * 10 - 1), then down to lr / 10 / 100 at
    # step 9, both halves cosine.
    def cos_anneal(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))

    up = [cos_anneal(0.1, 1.0, k / 2) for k in range(3)]
    down = [cos_anneal(1.0, 0.001, k / 7) for k in range(1, 8)]
    assert values == pytest.approx(up + down, rel=1e-9)


def test_constant_and_errors():
    assert _lrs(ScheduleSpec(iterations=3), total=3, per_epoch=3) == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="onecycle brings its own warm-up"):
        _lrs(ScheduleSpec(iterations=5, warmup=WarmupSpec(iters=2), lr=LrSpec(type="onecycle")), 5, 5)
    with pytest.raises(ConfigError, match="must be positive and increasing"):
        _lrs(ScheduleSpec(epochs=5, lr=LrSpec(type="multistep", milestones=[3, 2])), 5, 1)
    with pytest.raises(ConfigError, match="give min_lr or min_ratio, not both"):
        _lrs(ScheduleSpec(epochs=5, lr=LrSpec(type="cosine", min_lr=0.1, min_ratio=0.1)), 5, 1)
    with pytest.raises(ConfigError, match="'1x' is an epoch schedule"):
        _lrs(ScheduleSpec(iterations=5, lr=LrSpec(type="1x")), 5, 1)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2, bias=False)
        self.ln = nn.LayerNorm(2)


def test_param_groups_decay_norms_and_biases_as_configured():
    net = _Net()
    groups = {g["group"]: g for g in param_groups(net, 0.05, norm_decay=0.0, bias_decay=0.01)}
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(groups["default"]["params"]) == {id(net.conv.weight), id(net.fc.weight)}
    assert ids(groups["norm"]["params"]) == ids([net.bn.weight, net.bn.bias, net.ln.weight, net.ln.bias])
    assert ids(groups["bias"]["params"]) == {id(net.conv.bias)}
    assert (
        groups["default"]["weight_decay"],
        groups["norm"]["weight_decay"],
        groups["bias"]["weight_decay"],
    ) == (0.05, 0.0, 0.01)

    optimizer = build_optimizer(
        net, {"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.05, "paramwise": {"norm_decay": 0}}
    )
    decays = {g["group"]: g["weight_decay"] for g in optimizer.param_groups}
    assert decays == {"default": 0.05, "norm": 0.0, "bias": 0.05}
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_norm_decay_zero_leaves_norm_weights_untouched_by_decay():
    # With zero gradients, only weight decay moves a parameter.
    net = _Net()
    optimizer = build_optimizer(
        net, {"type": "AdamW", "lr": 0.1, "weight_decay": 0.5, "paramwise": {"norm_decay": 0.0}}
    )
    before_bn, before_conv = net.bn.weight.detach().clone(), net.conv.weight.detach().clone()
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert torch.equal(net.bn.weight, before_bn)
    assert torch.allclose(net.conv.weight, before_conv * (1 - 0.1 * 0.5))


def test_optimizer_mistakes_are_one_sentence_with_the_key_and_a_suggestion():
    net = _Net()
    # AdamW has no momentum: no suggestion, and still one sentence.
    with pytest.raises(ConfigError) as info:
        build_optimizer(net, {"type": "AdamW", "lr": 0.1, "momentun": 0.9})
    assert str(info.value).startswith(
        "optimizer.momentun: unknown argument 'momentun' for AdamW; AdamW accepts lr, betas, eps, weight_decay, "
    )
    with pytest.raises(
        ConfigError,
        match=r"^optimizer.betaz: unknown argument 'betaz' for AdamW \(did you mean 'betas'\?\); AdamW accepts lr, betas, .* and paramwise$",
    ):
        build_optimizer(net, {"type": "AdamW", "lr": 0.1, "betaz": [0.9, 0.99]})
    with pytest.raises(
        ConfigError,
        match=r"^optimizer.zzz: unknown argument 'zzz' for SGD; SGD accepts lr, momentum, .* and paramwise$",
    ):
        build_optimizer(net, {"type": "SGD", "lr": 0.1, "zzz": 1})
    with pytest.raises(
        ConfigError,
        match=r"^optimizer.paramwise: unknown key 'norm_decy' \(did you mean 'norm_decay'\?\); paramwise accepts norm_decay and bias_decay$",
    ):
        build_optimizer(net, {"type": "SGD", "lr": 0.1, "paramwise": {"norm_decy": 0}})
    with pytest.raises(
        ConfigError,
        match=r"^optimizer.type: unknown optimizer 'sgd' \(did you mean 'SGD'\?\); pc3d builds SGD, Adam, AdamW$",
    ):
        build_optimizer(net, {"type": "sgd", "lr": 0.1})


# Mistakes in the optimizer section, and the message each gives (the key first).
OPTIMIZER_MISTAKES = [
    (
        {"type": "AdamW", "lr": 0.1, "betaz": [0.9, 0.99]},
        r"^optimizer.betaz: unknown argument 'betaz' for AdamW \(did you mean 'betas'\?\); ",
    ),
    (
        {"type": "AdamX", "lr": 0.1},
        r"^optimizer.type: unknown optimizer 'AdamX' \(did you mean 'Adam'\?\); pc3d builds SGD, Adam, AdamW$",
    ),
    ({"lr": 0.1}, r"^optimizer.type: required key 'type' is missing; pc3d builds SGD, Adam, AdamW$"),
    ({"type": "SGD", "momentum": 0.9}, r"^optimizer.lr: required key 'lr' is missing$"),
    ({"type": "SGD", "lr": -0.1}, r"^optimizer.lr: must not be negative, got -0.1$"),
    (
        {"type": "Adam", "lr": 0.1, "betas": [0.9]},
        r"^optimizer.betas: expected a list of two numbers, e.g. \[0.9, 0.999\], got \[0.9\]$",
    ),
    (
        {"type": "Adam", "lr": 0.1, "betas": [0.9, 1.5]},
        r"^optimizer.betas: both must be in \[0, 1\), got \[0.9, 1.5\]$",
    ),
    (
        {"type": "SGD", "lr": 0.1, "nesterov": True},
        r"^optimizer.type: building SGD failed: Nesterov momentum requires",
    ),
    (
        {"type": "SGD", "lr": 0.1, "paramwise": {"bias_decy": 0}},
        r"^optimizer.paramwise: unknown key 'bias_decy' \(did you mean 'bias_decay'\?\)",
    ),
]


@pytest.mark.parametrize(("spec", "message"), OPTIMIZER_MISTAKES)
def test_the_optimizer_check_needs_no_model_and_says_what_building_says(spec, message):
    with pytest.raises(ConfigError, match=message) as checked:
        check_optimizer(spec)
    with pytest.raises(ConfigError) as built:
        build_optimizer(_Net(), spec)
    assert str(checked.value) == str(built.value)


def test_the_optimizer_check_passes_what_builds():
    for spec in (
        {"type": "SGD", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        {"type": "AdamW", "lr": 1e-3, "betas": [0.95, 0.99], "paramwise": {"norm_decay": 0}},
        {"type": "Adam", "lr": 0, "eps": 1e-6, "amsgrad": True},
    ):
        check_optimizer(spec)
        build_optimizer(_Net(), spec)


def test_the_schedule_check_needs_no_optimizer():
    check_schedule(ScheduleSpec(epochs=12, lr=LrSpec(type="1x")))
    for spec, message in (
        (
            ScheduleSpec(epochs=5, lr=LrSpec(type="cosine", min_lr=0.1, min_ratio=0.1)),
            "^schedule.lr: give min_lr or min_ratio, not both$",
        ),
        (
            ScheduleSpec(epochs=5, lr=LrSpec(type="multistep", milestones=[3, 2])),
            "must be positive and increasing",
        ),
        (ScheduleSpec(iterations=5, lr=LrSpec(type="2x")), "'2x' is an epoch schedule"),
        (
            ScheduleSpec(iterations=5, lr=LrSpec(type="constant", gamma=0.5)),
            r"^schedule.lr.gamma: not used by lr type 'constant'",
        ),
        (
            ScheduleSpec(iterations=5, warmup=WarmupSpec(iters=2), lr=LrSpec(type="onecycle")),
            "onecycle brings its own warm-up",
        ),
    ):
        with pytest.raises(ConfigError, match=message):
            check_schedule(spec)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optimizer.betaz=[0.9,0.99]",
            r"optimizer.betaz \(from --set optimizer.betaz=\[0.9,0.99\]\): unknown argument 'betaz' for AdamW \(did you mean 'betas'\?\)",
        ),
        (
            "optimizer.type=AdamX",
            r"optimizer.type \(from --set optimizer.type=AdamX\): unknown optimizer 'AdamX' \(did you mean 'Adam'\?\)",
        ),
        ("optimizer.lr=-1", r"optimizer.lr \(from --set optimizer.lr=-1\): must not be negative, got -1"),
        ("schedule.lr.gamma=0.5", r"schedule.lr.gamma: not used by lr type"),
    ],
)
def test_config_show_check_checks_the_optimizer_and_schedule(override, message, capsys):
    from pc3d.cli import main

    config = "pillar-center-tiny_kitti-mini-3class"
    assert main(["config", "show", config, "--check", "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pc3d config: error: "), err
    assert re.search(message, err), err
    assert main(["config", "show", config, "--check"]) == 0
