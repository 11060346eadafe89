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

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from pc3d.config import ConfigError, ConfigNode
from pc3d.engine.plan import schedule_length
from pc3d.engine.schema import LrSpec, ScheduleSpec
from pc3d.errors import did_you_mean

__all__ = [
    "NORM_LAYERS",
    "OPTIMIZERS",
    "PARAMWISE_KEYS",
    "build_optimizer",
    "build_scheduler",
    "check_optimizer",
    "check_schedule",
    "param_groups",
]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}

#: Keys of ``optimizer.paramwise``.
PARAMWISE_KEYS = ("norm_decay", "bias_decay")

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


@dataclass(frozen=True)
class _OptimizerSpec:
    """The ``optimizer`` section, checked: what the torch optimizer is built with."""

    name: str
    cls: type[torch.optim.Optimizer]
    options: dict[str, Any]  # the torch optimizer's keyword arguments but weight_decay
    weight_decay: float
    paramwise: dict[str, float | None]


def _locator(node: ConfigNode | None) -> Callable[[str], str]:
    """How messages name a key of the section: with its file and line when the node is known."""

    def at(key: str) -> str:
        return node.where(key) if node is not None else f"optimizer.{key}"

    return at


def _parse_optimizer(spec: Mapping[str, Any], at: Callable[[str], str]) -> _OptimizerSpec:
    """The section's type, paramwise keys and arguments checked by name (no model needed)."""
    options = dict(spec)
    name = options.pop("type", None)
    if name is None:
        raise ConfigError(
            f"{at('type')}: required key 'type' is missing; pc3d builds {', '.join(OPTIMIZERS)}"
        )
    if name not in OPTIMIZERS:
        raise ConfigError(
            f"{at('type')}: unknown optimizer {name!r}{did_you_mean(str(name), OPTIMIZERS)}; "
            f"pc3d builds {', '.join(OPTIMIZERS)}"
        )
    cls = OPTIMIZERS[name]
    paramwise = _paramwise(options.pop("paramwise", None) or {}, at("paramwise"))
    _check_arguments(cls, name, options, at)
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    default_decay = 0.01 if cls is torch.optim.AdamW else 0.0
    weight_decay = float(options.pop("weight_decay", default_decay))
    return _OptimizerSpec(name, cls, options, weight_decay, paramwise)


def _construct(
    parsed: _OptimizerSpec, groups: list[dict[str, Any]], at: Callable[[str], str]
) -> torch.optim.Optimizer:
    """The torch optimizer over ``groups``; the values torch refuses become a ``ConfigError``."""
    try:
        return parsed.cls(groups, weight_decay=parsed.weight_decay, **parsed.options)  # type: ignore[call-arg]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{at('type')}: building {parsed.name} failed: {err}") from err


def check_optimizer(spec: Mapping[str, Any], node: ConfigNode | None = None) -> None:
    """Check the ``optimizer`` config section without a model (``pc3d config show --check``).

    The names are checked as :func:`build_optimizer` checks them; the values torch itself checks
    (a negative ``lr``, ``betas`` outside [0, 1), ``nesterov`` without ``momentum`` ...) by
    building the optimizer over one stand-in parameter.

    Args:
        spec: the section: ``type``, ``lr``, ``paramwise`` and the torch optimizer's arguments.
        node: the section in its config, so that errors name the file and line.

    Raises:
        ConfigError: what :func:`build_optimizer` would raise for these settings, but for a model
            with nothing to train.
    """
    at = _locator(node)
    parsed = _parse_optimizer(spec, at)
    stand_in = torch.zeros(1, requires_grad=True)
    _construct(parsed, [{"params": [stand_in], "weight_decay": parsed.weight_decay}], at)


def build_optimizer(
    model: nn.Module, spec: Mapping[str, Any], node: ConfigNode | None = None
) -> torch.optim.Optimizer:
    """The optimizer described by the ``optimizer`` config section (see the module docstring).

    Args:
        model: whose trainable parameters are optimized.
        spec: the section: ``type``, ``lr``, ``paramwise`` and the torch optimizer's arguments.
        node: the section in its config, so that errors name the file and line.

    Returns:
        The optimizer, with one parameter group per weight-decay kind (see ``param_groups``).

    Raises:
        ConfigError: no or an unknown type, an unknown argument or paramwise key (with "did you
            mean"), no ``lr``, a value of the wrong type or one torch refuses, or a model with
            nothing to train.
    """
    at = _locator(node)
    parsed = _parse_optimizer(spec, at)
    paramwise = parsed.paramwise
    groups = param_groups(
        model, parsed.weight_decay, paramwise.get("norm_decay"), paramwise.get("bias_decay")
    )
    if not groups:
        raise ConfigError("the model has no trainable parameters: nothing to optimize")
    return _construct(parsed, groups, at)


def _paramwise(value: Any, where: str) -> dict[str, float | None]:
    """``optimizer.paramwise`` checked: a mapping of :data:`PARAMWISE_KEYS` to numbers."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping with norm_decay / bias_decay")
    for key, number in value.items():
        if key not in PARAMWISE_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(str(key), PARAMWISE_KEYS)}; paramwise "
                "accepts norm_decay and bias_decay"
            )
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))):
            raise ConfigError(f"{where}: {key} must be a number, got {number!r}")
    return dict(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_arguments(
    cls: type[torch.optim.Optimizer], name: str, options: Mapping[str, Any], at: Callable[[str], str]
) -> None:
    """Every key of ``options`` is an argument of the torch optimizer ``cls``; ``lr`` is given;
    the numbers are numbers, and in range where torch would refuse them."""
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("params", "self")]
    for key in options:
        if key not in accepted:
            raise ConfigError(
                f"{at(key)}: unknown argument {key!r} for {name}"
                f"{did_you_mean(key, [*accepted, 'paramwise'])}; {name} accepts "
                f"{', '.join(accepted)} and paramwise"
            )
    if "lr" not in options:
        raise ConfigError(f"{at('lr')}: required key 'lr' is missing")
    for key in ("lr", "weight_decay", "momentum", "eps"):
        if key in options and not _is_number(options[key]):
            raise ConfigError(f"{at(key)}: expected a number, got {options[key]!r}")
        if key in options and not options[key] >= 0:
            raise ConfigError(f"{at(key)}: must not be negative, got {options[key]!r}")
    betas = options.get("betas")
    if betas is not None and not (
        isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_is_number(b) for b in betas)
    ):
        raise ConfigError(f"{at('betas')}: expected a list of two numbers, e.g. [0.9, 0.999], got {betas!r}")
    if betas is not None and not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"{at('betas')}: both must be in [0, 1), got {list(betas)}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    spec: ScheduleSpec,
    *,
    total_iters: int,
    iters_per_epoch: int,
    where: str = "schedule",
) -> lr_scheduler.LRScheduler:
    """The per-iteration LR scheduler for ``spec`` (formulas in the module docstring).

    Args:
        optimizer: whose learning rates the schedule sets.
        spec: the parsed ``schedule`` section.
        total_iters: iterations in the whole run (``T``).
        iters_per_epoch: converts epoch milestones to iterations.
        where: the section's config path, for messages.

    Returns:
        A torch scheduler, stepped once per iteration.

    Raises:
        ConfigError: milestones out of order, options that do not belong to the chosen curve,
            a warm-up that does not fit.
    """
    check_schedule(spec, where)
    warmup_iters = _warmup_iters(spec, where)
    main = _main_curve(optimizer, spec, total_iters, iters_per_epoch, warmup_iters, where)
    if spec.warmup is None:
        return main
    warmup = lr_scheduler.LinearLR(
        optimizer, start_factor=spec.warmup.ratio, end_factor=1.0, total_iters=warmup_iters
    )
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warmup_iters])


def check_schedule(spec: ScheduleSpec, where: str = "schedule") -> None:
    """Check what :func:`build_scheduler` checks that needs neither an optimizer nor the data's
    size: one of epochs and iterations, options of another curve, the warm-up, the milestones
    (``pc3d config show --check``).

    Args:
        spec: the parsed ``schedule`` section.
        where: the section's config path, for messages.

    Raises:
        ConfigError: as :func:`build_scheduler`.
    """
    schedule_length(spec)
    _check_lr_options(spec.lr, f"{where}.lr")
    _warmup_iters(spec, where)
    if spec.lr.type in ("multistep", *_STEP_PRESETS):
        _milestones(spec, spec.lr, where)


def _warmup_iters(spec: ScheduleSpec, where: str) -> int:
    """The warm-up's length (0 without one), checked."""
    if spec.warmup is None:
        return 0
    if spec.lr.type == "onecycle":
        raise ConfigError(f"{where}.warmup: onecycle brings its own warm-up (lr.pct_start); remove warmup")
    return spec.warmup.iters


def _main_curve(
    optimizer: torch.optim.Optimizer,
    spec: ScheduleSpec,
    total_iters: int,
    iters_per_epoch: int,
    warmup_iters: int,
    where: str,
) -> lr_scheduler.LRScheduler:
    """The scheduler after the warm-up (from the start without one)."""
    lr = spec.lr
    if lr.type == "constant":
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if lr.type in ("multistep", "1x", "2x"):
        unit_iters = iters_per_epoch if spec.epochs is not None else 1
        absolute = [m * unit_iters for m in _milestones(spec, lr, where)]
        # SequentialLR restarts the main scheduler's count at the end of warm-up. A milestone
        # inside the warm-up (a tiny debugging dataset) takes effect when the warm-up ends.
        return lr_scheduler.MultiStepLR(
            optimizer, milestones=[max(a - warmup_iters, 0) for a in absolute], gamma=lr.gamma
        )
    if lr.type == "cosine":
        base = optimizer.param_groups[0]["lr"]
        eta_min = lr.min_lr if lr.min_lr is not None else base * (lr.min_ratio or 0.0)
        # A run shorter than its warm-up (a smoke test with --set schedule.epochs=1) just never
        # leaves it.
        main_iters = max(total_iters - warmup_iters, 1)
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=main_iters, eta_min=eta_min)
    if lr.type == "onecycle":
        return lr_scheduler.OneCycleLR(
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
    # The schema lets only the types above through.
    raise ConfigError(f"{where}.lr.type: unknown schedule {lr.type!r}")  # pragma: no cover


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
                f"{where}.{option}: not used by lr type '{lr.type}' (it belongs to {' / '.join(owners)})"
            )
    if lr.min_lr is not None and lr.min_ratio is not None:
        raise ConfigError(f"{where}: give min_lr or min_ratio, not both")
