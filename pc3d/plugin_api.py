"""The pc3d plugin contract: everything a plugin implements or receives, in one module.

A plugin is an installed distribution that declares an entry point in the group ``pc3d``::

    [project.entry-points.pc3d]
    my_head = "my_package.plugin"

The entry point names a module (or any object) whose functions are marked with :data:`hookimpl`
and named after the hooks below. pc3d's own plugins (``plugins/``, and the core modules in
``pc3d.plugin_manager.CORE_PLUGINS``) use exactly this path; nothing is special-cased::

    from pc3d.plugin_api import Registrar, hookimpl

    @hookimpl
    def pc3d_register(registry: Registrar) -> None:
        registry.add_head(MyHead)

This module holds:

1. the hooks, :func:`pc3d_register` and :func:`pc3d_config_dirs` (both optional);
2. :data:`hookimpl`, the marker for a plugin's hook functions (import it from here);
3. :class:`Registrar`, the registration object ``pc3d_register`` receives;
4. the protocols of what the engine drives: :class:`ModelProtocol`, :class:`DatasetProtocol`,
   :class:`MetricProtocol` (+ :class:`DistributedMetricProtocol`) and :class:`TrainHookProtocol`
   (+ :class:`StatefulTrainHookProtocol`). They are ``runtime_checkable``, so
   ``isinstance(model, ModelProtocol)`` checks that the methods exist.

Each hook is called once per plugin, separately, so a plugin that raises is reported with its
name and error and skipped while every other plugin keeps working. Plugin CLI commands are not
hooks: they are entry points of the group ``pc3d.commands`` (see ``docs/plugins.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

from pc3d.registry import PluginError, Registration, check_kind

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "HOOK_NAMES",
    "PROJECT_NAME",
    "TRAIN_HOOK_METHODS",
    "DatasetProtocol",
    "DistributedMetricProtocol",
    "MetricProtocol",
    "ModelProtocol",
    "Registrar",
    "StatefulTrainHookProtocol",
    "TrainHookProtocol",
    "hookimpl",
    "pc3d_config_dirs",
    "pc3d_register",
]

PROJECT_NAME = "pc3d"

#: Marks the hook specifications below (used by pc3d only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin's hook function: ``@hookimpl`` above ``def pc3d_register(registry): ...``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: Every hook a plugin may implement; any other ``pc3d_*`` function marked ``@hookimpl`` is an error.
HOOK_NAMES: tuple[str, ...] = ("pc3d_register", "pc3d_config_dirs")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


# -- the registration object ---------------------------------------------------------------------


class Registrar:
    """The registration object handed to a plugin's :func:`pc3d_register`.

    Each ``add_*`` method takes a class (or factory function) and an optional ``name`` (default:
    its ``__name__``); a config builds it by calling it with the keyword arguments of its mapping.
    Registrations are staged and committed only when the whole hook returns, so a plugin that
    fails half-way leaves nothing behind.

    Attributes:
        plugin: The plugin's entry-point name.
        distribution: Its installed distribution, if any.
        pending: What the plugin registered so far.
    """

    def __init__(self, plugin: str, distribution: str | None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.pending: list[Registration] = []

    def add(self, kind: str, obj: Callable[..., Any], name: str | None = None) -> None:
        """Register ``obj`` as a ``kind`` named ``name``.

        Args:
            kind: One of :data:`pc3d.registry.KINDS`.
            obj: A class or factory function.
            name: The name configs use in ``type:``; default ``obj.__name__``.

        Raises:
            PluginError: Unknown kind, ``obj`` not callable, an invalid name (letters, digits,
                ``_ . -``), or the same kind and name registered twice by this plugin.
        """
        check_kind(kind)
        if not callable(obj):
            raise PluginError(f"{kind} {name or obj!r}: expected a class or function, got {obj!r}")
        name = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(f"{kind} {obj!r}: invalid name {name!r} (letters, digits, _ . -)")
        if any(r.kind == kind and r.name == name for r in self.pending):
            raise PluginError(f"registers {kind} '{name}' twice")
        self.pending.append(Registration(kind, name, obj, self.plugin, self.distribution))

    def add_model(self, obj: Callable[..., ModelProtocol], name: str | None = None) -> None:
        """A whole model (detector, classifier, segmentor): builds a :class:`ModelProtocol`."""
        self.add("model", obj, name)

    def add_backbone(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A backbone (an ``nn.Module`` a model takes as an argument)."""
        self.add("backbone", obj, name)

    def add_neck(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A neck (FPN, BEV neck ...)."""
        self.add("neck", obj, name)

    def add_head(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A head (classification, detection, segmentation)."""
        self.add("head", obj, name)

    def add_voxel_encoder(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """Points -> voxel/pillar features or a BEV map."""
        self.add("voxel_encoder", obj, name)

    def add_middle_encoder(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """Voxel features -> a BEV map (a scatter of pillars, a sparse 3D encoder)."""
        self.add("middle_encoder", obj, name)

    def add_dataset(self, obj: Callable[..., DatasetProtocol], name: str | None = None) -> None:
        """A data set: builds a :class:`DatasetProtocol`."""
        self.add("dataset", obj, name)

    def add_transform(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A data transform (augmentation pipeline step)."""
        self.add("transform", obj, name)

    def add_metric(self, obj: Callable[..., MetricProtocol], name: str | None = None) -> None:
        """An evaluation metric: builds a :class:`MetricProtocol` (``pc3d.engine.Metric`` helps)."""
        self.add("metric", obj, name)

    def add_train_hook(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A training-loop hook: builds an object with some :class:`TrainHookProtocol` methods."""
        self.add("train_hook", obj, name)


# -- the hooks -----------------------------------------------------------------------------------


@hookspec
def pc3d_register(registry: Registrar) -> None:
    """Register the plugin's components so that configs can name them by ``type:``.

    A component is built by calling it with the keyword arguments of its config mapping, so its
    signature is its config schema: unknown keys, missing required arguments and wrong scalar
    types are reported against that signature. Names are global per kind: if two plugins
    register the same kind and name, pc3d refuses to build anything and names both plugins. If
    this hook raises, nothing it registered is kept.

    Args:
        registry: The registration object for this plugin (``registry.add_model(cls)``,
            ``add_backbone``, ``add_neck``, ``add_head``, ``add_voxel_encoder``, ``add_middle_encoder``, ``add_dataset``,
            ``add_transform``, ``add_metric``, ``add_train_hook``, or ``add(kind, cls)``).
    """


@hookspec
def pc3d_config_dirs() -> list[Path]:
    """Return the folders holding this plugin's YAML configs.

    They are searched (in plugin order, after the including file's own folder) for ``_base_``
    entries and for config names given without a path, e.g. ``pc3d config show
    pillar-center-tiny_kitti-3class.yaml``. Ship the configs inside the Python package (package
    data) so that they exist in wheel installs as well as editable ones.

    Returns:
        Existing folders; one that does not exist is reported as a warning of the plugin.
    """
    return []


# -- what the engine drives ----------------------------------------------------------------------


@runtime_checkable
class ModelProtocol(Protocol):
    """A model the engine trains and evaluates (registered with :meth:`Registrar.add_model`).

    It is a ``torch.nn.Module`` (the engine checks) with two methods. ``batch`` is the collated
    mapping the data loader yields; each method receives the keys its own signature names
    (``points``, ``gt_boxes``, ``images`` ...), so a batch may carry extra keys for the metrics,
    and a method taking ``**batch`` receives all of them. A missing key is reported naming the
    method and the keys the batch has.
    """

    def loss(self, *args: Any, **kwargs: Any) -> Mapping[str, Tensor]:
        """The training losses of one batch.

        Returns:
            Scalar tensors by name, all logged; ``"loss"`` is the total to back-propagate (where
            it is missing, the sum of all entries is).
        """
        ...

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Predictions for one batch, in the form the configured metrics' ``update`` takes."""
        ...


@runtime_checkable
class DatasetProtocol(Protocol):
    """A map-style data set (registered with :meth:`Registrar.add_dataset`).

    A sample is a mapping (name -> value). Batches are collated by the data set's own
    ``collate(samples) -> batch`` static method when it has one (``collate: auto``, the default),
    else by torch's ``default_collate``; a config may choose ``collate: list`` for variable-size
    samples. Augmentation may use torch's random generator: the engine seeds it per sample.
    """

    def __len__(self) -> int:
        """The number of samples."""
        ...

    def __getitem__(self, index: int) -> Any:
        """Sample ``index`` (``0 <= index < len(self)``), a mapping of name -> value."""
        ...


@runtime_checkable
class MetricProtocol(Protocol):
    """An evaluation metric (registered with :meth:`Registrar.add_metric`).

    The engine calls :meth:`reset`, then :meth:`update` once per batch, then :meth:`compute`.
    ``pc3d.engine.Metric`` implements everything but ``update`` and ``compute`` for metrics that
    keep a list of per-batch results.
    """

    def reset(self) -> None:
        """Forget everything (called before each evaluation)."""
        ...

    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None:
        """Take one batch.

        Args:
            predictions: The model's ``predict`` output for the batch.
            batch: The collated batch it came from (ground truth inside).
        """
        ...

    def compute(self) -> dict[str, float]:
        """The results, by metric name (names must not clash with other metrics')."""
        ...


@runtime_checkable
class DistributedMetricProtocol(MetricProtocol, Protocol):
    """A metric several processes (``torchrun``) evaluate together; the engine requires this
    when it runs distributed.

    Every rank calls :meth:`state`, the engine gathers the list across ranks and calls
    :meth:`merge` with it on every rank, then :meth:`compute`. Evaluation shards are not padded,
    so merged results equal a single-process evaluation.
    """

    def state(self) -> Any:
        """This rank's accumulated state; picklable, small, on the CPU."""
        ...

    def merge(self, states: list[Any]) -> None:
        """Replace the state by all ranks' states.

        Args:
            states: One :meth:`state` per rank, in rank order.
        """
        ...


#: The training-loop methods of :class:`TrainHookProtocol`, in the order the loop reaches them.
TRAIN_HOOK_METHODS: tuple[str, ...] = (
    "before_train",
    "before_epoch",
    "before_iter",
    "after_iter",
    "after_epoch",
    "after_train",
)


@runtime_checkable
class TrainHookProtocol(Protocol):
    """Code called at fixed points of the training loop (registered with
    :meth:`Registrar.add_train_hook`, switched on under ``train.hooks`` in a config).

    Every method is optional: implement the ones you need, or derive from this class to get
    no-ops for the rest (``isinstance`` holds only for objects with all six). Hooks run on every
    rank, in the order the config lists them; use ``trainer.dist.is_main`` to act on rank 0 only.
    A method whose name starts with ``before_``/``after_`` but is not one of these is refused
    (it would silently never run).

    What a hook may use on ``trainer``: ``model`` (the plugin's model, unwrapped),
    ``optimizer``, ``scheduler``, ``epoch``, ``iteration``, ``max_iters``, ``iters_per_epoch``,
    ``work_dir``, ``dist``, ``config`` and ``log(values)`` to add scalars to the log. A learning
    rate changed in ``before_iter`` is overwritten by the scheduler's next step unless the hook
    also adjusts ``trainer.scheduler`` (an extra schedule belongs in ``after_iter``).
    """

    def before_train(self, trainer: Any) -> None:
        """Once, after building and resuming, before the first step."""
        return None

    def before_epoch(self, trainer: Any) -> None:
        """Before each epoch; ``trainer.epoch`` is the epoch starting (0-based)."""
        return None

    def before_iter(self, trainer: Any) -> None:
        """Before each step; ``trainer.iteration`` is the number of completed steps."""
        return None

    def after_iter(self, trainer: Any, outputs: Mapping[str, float]) -> None:
        """After each step; ``outputs`` are the step's losses as floats, plus ``"lr"``."""
        return None

    def after_epoch(self, trainer: Any) -> None:
        """After evaluation and checkpointing for the epoch."""
        return None

    def after_train(self, trainer: Any) -> None:
        """Once, after the final checkpoint."""
        return None


@runtime_checkable
class StatefulTrainHookProtocol(Protocol):
    """A train hook with state to save in checkpoints, for exact resume (both methods)."""

    def state_dict(self) -> dict[str, Any]:
        """The hook's state (saved in each checkpoint)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on resume)."""
        ...
