"""Optimizers with parameter groups, and learning-rate schedules built from torch's schedulers.

**Optimizer** (config ``optimizer``): ``type`` is ``SGD``, ``Adam`` or ``AdamW``; ``lr``,
``weight_decay`` and any other argument of that torch optimizer (``momentum``, ``nesterov``,
``betas``, ``eps``, ``amsgrad`` ...) are passed on, checked against its signature.
``paramwise`` sets weight decay per kind of parameter:

- ``norm_decay``: weight decay of normalisation layers' weights and biases (BatchNorm,
  GroupNorm, LayerNorm, InstanceNorm, SyncBatchNorm); ``0`` is the usual choice;
- ``bias_decay``: weight decay of every other bias.

Unset means "same as ``weight_decay``".

**Schedule** (config ``schedule``), stepped once per iteration (after each optimizer step), so the
learning rate of iteration ``t`` (0-based: the ``t``-th optimizer step) with base rate ``lr``,
warm-up of ``W`` iterations from ``ratio`` and ``T`` iterations in all is:

- warm-up, ``t < W``: ``lr * (ratio + (1 - ratio) * t / W)`` (torch ``LinearLR``);
- ``constant``: ``lr``;
- ``multistep`` / ``1x`` / ``2x``: ``lr * gamma ** (number of milestones <= t)``, milestones
  converted to iterations (``epoch * iterations_per_epoch`` for epoch schedules), counted from the
  start of training (``MultiStepLR``); one inside the warm-up takes effect when warm-up ends, one
  past the end is never reached;
- ``cosine``: ``eta_min + (lr - eta_min) * (1 + cos(pi * (t - W) / (T - W))) / 2`` with
  ``eta_min = min_lr`` or ``lr * min_ratio`` (default 0) (``CosineAnnealingLR``);
- ``onecycle``: torch ``OneCycleLR`` over ``T`` steps with ``max_lr = lr`` (no extra warm-up).

The warm-up and the main curve are joined with ``SequentialLR`` at iteration ``W``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from pc3d.config import ConfigError, ConfigNode
from pc3d.engine.schema import LrSpec, ScheduleSpec
from pc3d.errors import suggest

__all__ = ["NORM_LAYERS", "OPTIMIZERS", "build_optimizer", "build_scheduler", "param_groups"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)

# Detectron/MMDetection step schedules, milestones in epochs (for 12 and 24 epochs).
_STEP_PRESETS = {"1x": [8, 11], "2x": [16, 22]}


def param_groups(
    model: nn.Module,
    weight_decay: float,
    norm_decay: float | None = None,
    bias_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into groups by weight decay.

    Groups come out in a fixed order (default, norm, bias), each listing its parameters in
    ``model.named_parameters()`` order, so a checkpoint's optimizer state maps back exactly.
    Shared parameters appear once.
    """
    norm_decay = weight_decay if norm_decay is None else norm_decay
    bias_decay = weight_decay if bias_decay is None else bias_decay
    seen: set[int] = set()
    groups: dict[str, list[nn.Parameter]] = {"default": [], "norm": [], "bias": []}
    for module in model.modules():
        is_norm = isinstance(module, NORM_LAYERS)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if is_norm:
                groups["norm"].append(param)
            elif name == "bias":
                groups["bias"].append(param)
            else:
                groups["default"].append(param)
    decay = {"default": weight_decay, "norm": norm_decay, "bias": bias_decay}
    return [
        {"params": params, "weight_decay": decay[kind], "group": kind}
        for kind, params in groups.items()
        if params
    ]


def build_optimizer(
    model: nn.Module, spec: Mapping[str, Any], node: ConfigNode | None = None
) -> torch.optim.Optimizer:
    """The optimizer described by the ``optimizer`` config section (see the module docstring).

    :param node: the section in its config, so that errors name the file and line.
    :raises ConfigError: unknown type or argument (with "did you mean"), no ``lr``.
    """

    def at(key: str) -> str:
        return node.where(key) if node is not None else f"optimizer.{key}"

    options = dict(spec)
    name = options.pop("type", None)
    if name not in OPTIMIZERS:
        hint = suggest(str(name), OPTIMIZERS)
        raise ConfigError(
            f"{at('type')}: unknown optimizer {name!r}"
            + (f"; did you mean '{hint}'?" if hint else "")
            + f" Optimizers: {', '.join(OPTIMIZERS)}"
        )
    cls = OPTIMIZERS[name]
    paramwise = options.pop("paramwise", None) or {}
    if not isinstance(paramwise, Mapping):
        raise ConfigError(f"{at('paramwise')}: expected a mapping with norm_decay / bias_decay")
    unknown = set(paramwise) - {"norm_decay", "bias_decay"}
    if unknown:
        key = sorted(unknown)[0]
        hint = difflib.get_close_matches(key, ["norm_decay", "bias_decay"], n=1)
        raise ConfigError(
            f"{at('paramwise')}: unknown key '{key}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
            + " paramwise accepts: norm_decay, bias_decay"
        )
    for key, value in paramwise.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{at('paramwise')}: {key} must be a number, got {value!r}")
    accepted = [
        p for p in inspect.signature(cls).parameters if p not in ("params", "self")
    ]
    for key in options:
        if key not in accepted:
            hint = difflib.get_close_matches(key, accepted + ["paramwise"], n=1)
            raise ConfigError(
                f"{at(key)}: unknown argument for {name}"
                + (f"; did you mean '{hint[0]}'?" if hint else "")
                + f" {name} accepts: {', '.join(accepted)}, paramwise"
            )
    if "lr" not in options:
        raise ConfigError(f"{at('lr')}: required key 'lr' is missing")
    for key in ("lr", "weight_decay", "momentum", "eps"):
        if key in options and (isinstance(options[key], bool) or not isinstance(options[key], (int, float))):
            raise ConfigError(f"{at(key)}: expected a number, got {options[key]!r}")
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    weight_decay = float(options.pop("weight_decay", 0.0 if cls is not torch.optim.AdamW else 0.01))
    groups = param_groups(
        model, weight_decay, paramwise.get("norm_decay"), paramwise.get("bias_decay")
    )
    if not groups:
        raise ConfigError("the model has no trainable parameters: nothing to optimize")
    try:
        return cls(groups, weight_decay=weight_decay, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{at('type')}: building {name} failed: {err}") from err


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    spec: ScheduleSpec,
    *,
    total_iters: int,
    iters_per_epoch: int,
    where: str = "schedule",
) -> lr_scheduler.LRScheduler:
    """The per-iteration LR scheduler for ``spec`` (formulas in the module docstring).

    :param total_iters: iterations in the whole run (``T``).
    :param iters_per_epoch: converts epoch milestones to iterations.
    :raises ConfigError: milestones out of order or inside the warm-up, options that do not
        belong to the chosen curve.
    """
    lr = spec.lr
    _check_lr_options(lr, f"{where}.lr")
    warmup_iters = spec.warmup.iters if spec.warmup is not None else 0
    if spec.warmup is not None:
        if warmup_iters < 1:
            raise ConfigError(f"{where}.warmup.iters: must be at least 1, got {warmup_iters}")
        if not 0 < spec.warmup.ratio <= 1:
            raise ConfigError(f"{where}.warmup.ratio: must be in (0, 1], got {spec.warmup.ratio}")
        if lr.type == "onecycle":
            raise ConfigError(
                f"{where}.warmup: onecycle brings its own warm-up (lr.pct_start); remove warmup"
            )
    # A run shorter than its warm-up (a smoke test with --set schedule.epochs=1) just never
    # leaves it.
    main_iters = max(total_iters - warmup_iters, 1)

    main: lr_scheduler.LRScheduler
    if lr.type == "constant":
        main = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif lr.type in ("multistep", "1x", "2x"):
        unit_iters = iters_per_epoch if spec.epochs is not None else 1
        milestones = _milestones(spec, lr, where)
        absolute = [m * unit_iters for m in milestones]
        # SequentialLR restarts the main scheduler's count at the end of warm-up. A milestone
        # inside the warm-up (a tiny debugging dataset) takes effect when the warm-up ends.
        main = lr_scheduler.MultiStepLR(
            optimizer, milestones=[max(a - warmup_iters, 0) for a in absolute], gamma=lr.gamma
        )
    elif lr.type == "cosine":
        if lr.min_lr is not None and lr.min_ratio is not None:
            raise ConfigError(f"{where}.lr: give min_lr or min_ratio, not both")
        base = optimizer.param_groups[0]["lr"]
        eta_min = lr.min_lr if lr.min_lr is not None else base * (lr.min_ratio or 0.0)
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=main_iters, eta_min=eta_min)
    elif lr.type == "onecycle":
        main = lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=total_iters,
            pct_start=lr.pct_start,
            div_factor=lr.div_factor,
            final_div_factor=lr.final_div_factor,
            anneal_strategy=lr.anneal_strategy,
            three_phase=lr.three_phase,
            # Momentum cycling would fight a config's own momentum/betas; keep them fixed.
            cycle_momentum=False,
        )
    else:  # pragma: no cover - the schema only lets the types above through
        raise ConfigError(f"{where}.lr.type: unknown schedule {lr.type!r}")

    if warmup_iters == 0:
        return main
    warmup = lr_scheduler.LinearLR(
        optimizer, start_factor=spec.warmup.ratio, end_factor=1.0, total_iters=warmup_iters  # type: ignore[union-attr]
    )
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warmup_iters])


def _milestones(spec: ScheduleSpec, lr: LrSpec, where: str) -> list[int]:
    if lr.type in _STEP_PRESETS:
        if spec.epochs is None:
            raise ConfigError(
                f"{where}.lr.type: '{lr.type}' is an epoch schedule (milestones "
                f"{_STEP_PRESETS[lr.type]} in epochs); set schedule.epochs or use type: "
                "multistep with milestones in iterations"
            )
        # A shortened run (--set schedule.epochs=1 for a smoke test) never reaches the steps;
        # that is allowed, as for any milestone past the end.
        return _STEP_PRESETS[lr.type]
    if not lr.milestones:
        raise ConfigError(f"{where}.lr.milestones: multistep needs a list of milestones")
    if any(b <= a for a, b in zip(lr.milestones, lr.milestones[1:])) or lr.milestones[0] < 1:
        raise ConfigError(f"{where}.lr.milestones: must be positive and increasing, got {lr.milestones}")
    return list(lr.milestones)


# Options of LrSpec that only some curves use: giving one to another curve is a mistake.
_OPTION_OWNERS: dict[str, tuple[str, ...]] = {
    "milestones": ("multistep",),
    "gamma": ("multistep", "1x", "2x"),
    "min_lr": ("cosine",),
    "min_ratio": ("cosine",),
    "pct_start": ("onecycle",),
    "div_factor": ("onecycle",),
    "final_div_factor": ("onecycle",),
    "anneal_strategy": ("onecycle",),
    "three_phase": ("onecycle",),
}


def _check_lr_options(lr: LrSpec, where: str) -> None:
    defaults = LrSpec()
    for option, owners in _OPTION_OWNERS.items():
        if lr.type not in owners and getattr(lr, option) != getattr(defaults, option):
            raise ConfigError(
                f"{where}.{option}: not used by lr type '{lr.type}' (it belongs to "
                f"{' / '.join(owners)})"
            )
