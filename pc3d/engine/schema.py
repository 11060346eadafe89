"""The runtime sections of a training config, checked key by key.

Components (``model``, datasets, metrics, hooks) are built by :func:`pc3d.config.build` against
their constructors' signatures. The sections the engine itself reads (``data``, ``optimizer``,
``schedule``, ``train``, ``runtime``) are described here as dataclasses: an unknown key, a value
of the wrong type or a missing required key is a :class:`pc3d.config.ConfigError` naming the
key's dotted path, the file and line it came from, and a "did you mean" where one is close.

The whole schema, with defaults, is in ``docs/engine.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pc3d.config import Config, ConfigError, ConfigNode, Range
from pc3d.config.type_checks import describe_value, to_dataclass
from pc3d.errors import did_you_mean

__all__ = [
    "TOP_LEVEL_KEYS",
    "DataSpec",
    "GradClipSpec",
    "LoaderSpec",
    "LrSpec",
    "RunSpec",
    "RuntimeSpec",
    "ScheduleSpec",
    "TrainSpec",
    "WarmupSpec",
    "parse_run_spec",
    "parse_section",
]

#: A count of one or more (batch size, epochs, an interval).
AtLeastOne = Annotated[int, Range(min=1)]
#: A count of zero or more.
NonNegative = Annotated[int, Range(min=0)]
#: A number above zero (a norm, a factor, seconds).
Positive = Annotated[float, Range(min=0, min_open=True)]
#: A fraction in (0, 1].
Fraction = Annotated[float, Range(min=0, max=1, min_open=True)]


@dataclass
class LoaderSpec:
    """``data.train`` / ``data.val`` / ``data.test``."""

    dataset: dict[str, Any]  # a component mapping (``type: <dataset>``), built by the runner
    batch_size: AtLeastOne = 1  # per process; the global batch is batch_size x processes
    num_workers: NonNegative = 0
    shuffle: bool | None = None  # default: true for train, false otherwise
    drop_last: bool = False
    collate: Literal["auto", "default", "list"] = "auto"
    pin_memory: bool = False
    persistent_workers: bool = False


@dataclass
class DataSpec:
    train: LoaderSpec | None = None
    val: LoaderSpec | None = None
    test: LoaderSpec | None = None


@dataclass
class WarmupSpec:
    """Linear warm-up from ``lr * ratio`` to ``lr`` over the first ``iters`` iterations."""

    iters: AtLeastOne
    ratio: Fraction = 0.001


@dataclass
class LrSpec:
    """The learning-rate curve after warm-up (``schedule.lr``).

    - ``constant``;
    - ``multistep``: times ``gamma`` at each of ``milestones`` (in epochs for an epoch schedule,
      in iterations for an iteration schedule, counted from the start of training);
    - ``1x`` / ``2x``: ``multistep`` at epochs 8, 11 / 16, 22 (Detectron/MMDetection's step
      schedules, meant for ``epochs: 12`` / ``24``; a milestone past the end is never reached);
    - ``cosine``: from ``lr`` down to ``min_lr`` (or ``lr * min_ratio``) at the end;
    - ``onecycle``: torch's ``OneCycleLR`` peaking at the optimizer's ``lr`` (brings its own
      warm-up: ``pct_start``).
    """

    type: Literal["constant", "multistep", "1x", "2x", "cosine", "onecycle"] = "constant"
    milestones: list[int] | None = None
    gamma: Positive = 0.1
    min_lr: Annotated[float, Range(min=0)] | None = None
    min_ratio: Annotated[float, Range(min=0, max=1)] | None = None
    pct_start: Annotated[float, Range(min=0, max=1, min_open=True, max_open=True)] = 0.3
    div_factor: Positive = 25.0
    final_div_factor: Positive = 1e4
    anneal_strategy: Literal["cos", "linear"] = "cos"
    three_phase: bool = False


@dataclass
class ScheduleSpec:
    """How long to train (``epochs`` or ``iterations``, one of them) and the LR curve."""

    epochs: AtLeastOne | None = None
    iterations: AtLeastOne | None = None
    warmup: WarmupSpec | None = None
    lr: LrSpec = field(default_factory=LrSpec)


@dataclass
class GradClipSpec:
    max_norm: Positive
    norm_type: Positive = 2.0


@dataclass
class BestMetricSpec:
    name: str
    mode: Literal["max", "min"] = "max"


@dataclass
class TrainSpec:
    """``train``: the loop's behaviour. ``eval_every`` and ``checkpoint_every`` count in the
    schedule's unit (epochs for an epoch schedule, iterations for an iteration schedule); unset,
    they mean once per epoch (every ``iterations per epoch`` iterations in an iteration
    schedule). The last iteration is always evaluated and checkpointed."""

    grad_clip: GradClipSpec | None = None
    amp: bool = False  # mixed precision on CUDA (ignored with a warning on the CPU)
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    eval_every: AtLeastOne | None = None
    checkpoint_every: AtLeastOne | None = None
    keep_last: AtLeastOne | None = None  # None keeps every periodic checkpoint
    best_metric: BestMetricSpec | None = None
    log_every: AtLeastOne = 10  # iterations
    hooks: list[dict[str, Any]] = field(default_factory=list)  # train_hook components


@dataclass
class RuntimeSpec:
    seed: int | None = 0  # runs are seeded by default; null draws a seed (logged, checkpointed)
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    sync_bn: bool = False
    find_unused_parameters: bool = False
    num_threads: AtLeastOne | None = None  # torch intra-op threads per process; None: torch's default
    dist_timeout: Positive = 1800.0  # seconds a collective waits for the other ranks
    tensorboard: bool | None = None  # None: when the tensorboard package is importable
    load_from: str | None = None  # start from these weights (like --load-from)


@dataclass
class RunSpec:
    """Everything the engine reads, parsed; components stay as config nodes for ``build``."""

    data: DataSpec
    optimizer: dict[str, Any] | None
    schedule: ScheduleSpec
    train: TrainSpec
    runtime: RuntimeSpec
    model: ConfigNode | None
    metrics: ConfigNode | None


#: Top-level keys a training config may have. ``class_names``, ``point_cloud_range``, ``voxel_size``
#: and ``data_root`` are shared values the sections refer to (``${point_cloud_range}``), written
#: once; keys starting with ``_`` are free for YAML anchors.
TOP_LEVEL_KEYS: tuple[str, ...] = (
    "model",
    "data",
    "optimizer",
    "schedule",
    "train",
    "runtime",
    "metrics",
    "class_names",
    "point_cloud_range",
    "voxel_size",
    "data_root",
)

_SECTIONS: dict[str, type] = {
    "data": DataSpec,
    "schedule": ScheduleSpec,
    "train": TrainSpec,
    "runtime": RuntimeSpec,
}


def parse_run_spec(config: Config) -> RunSpec:
    """Check the top-level keys and parse the engine's sections of ``config``.

    Args:
        config: A loaded config.

    Returns:
        The engine's sections, parsed; the components (model, metrics) as config nodes.

    Raises:
        ConfigError: An unknown top-level key, or a wrong key or value in a section.
    """
    root = config.node()
    for key in config.data:
        if not isinstance(key, str) or key in TOP_LEVEL_KEYS or key.startswith("_"):
            continue
        raise ConfigError(
            f"{root.where(key)}: unknown top-level key '{key}'{did_you_mean(key, TOP_LEVEL_KEYS)}; "
            f"a training config has: {', '.join(TOP_LEVEL_KEYS)} (and '_'-prefixed keys for YAML anchors)"
        )
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        node = root.child(name) if config.data.get(name) is not None else ConfigNode({}, (name,), config)
        sections[name] = parse_section(node, cls)
    optimizer = config.data.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, Mapping):
        raise ConfigError(
            f"{root.where('optimizer')}: expected a mapping with 'type: SGD|Adam|AdamW', "
            f"got {describe_value(optimizer)}"
        )
    return RunSpec(
        data=sections["data"],
        optimizer=dict(optimizer) if optimizer is not None else None,
        schedule=sections["schedule"],
        train=sections["train"],
        runtime=sections["runtime"],
        model=root.child("model") if config.data.get("model") is not None else None,
        metrics=root.child("metrics") if config.data.get("metrics") is not None else None,
    )


def parse_section(node: ConfigNode, cls: type) -> Any:
    """Build dataclass ``cls`` from the mapping at ``node``, checking every key and type.

    The checks are :func:`pc3d.config.type_checks.to_dataclass`'s, with expected types named in
    YAML words (``expected an integer``, ``expected true or false``).

    Args:
        node: The section's mapping (``null`` reads as empty).
        cls: One of this module's ``...Spec`` dataclasses.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: An unknown key (with "did you mean"), a missing required key, a wrong type.
    """
    return to_dataclass(node, cls, words=True)
