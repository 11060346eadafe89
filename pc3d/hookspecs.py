"""The pc3d plugin contract: every hook a plugin may implement, and nothing else.

A plugin is an installed distribution that declares an entry point in the group ``pc3d``::

    [project.entry-points.pc3d]
    my_head = "my_package.plugin"

The entry point names a module (or any object) whose functions are marked with
:data:`hookimpl` and named after the hooks below. pc3d's own first-party plugins (``plugins/``)
use exactly this path; nothing is special-cased.

All hooks are optional. Each is called once per plugin, separately, so a plugin that raises is
reported with its name and error and skipped while every other plugin keeps working.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

PROJECT_NAME = "pc3d"

#: Marks the specifications below (used by pc3d only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin's implementation: ``@hookimpl`` above ``def pc3d_register(registry): ...``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

if TYPE_CHECKING:
    from pc3d.plugins import Registrar


@hookspec
def pc3d_register(registry: Registrar) -> None:
    """Register the plugin's components so that configs can name them by ``type:``.

    :param registry: the registration object for this plugin. Call
        ``registry.add_model(cls)``, ``add_backbone``, ``add_neck``, ``add_head``,
        ``add_voxel_encoder``, ``add_dataset``, ``add_transform``, ``add_metric``,
        ``add_train_hook`` (or ``registry.add(kind, cls)``); each takes the class (or factory
        function) and an optional ``name`` (default: its ``__name__``).

    A component is built by calling it with the keyword arguments of its config mapping, so its
    signature is its config schema: unknown keys, missing required arguments and wrong scalar
    types are reported against that signature.

    Contracts of the kinds the engine drives are in ``docs/engine.md``: models implement
    ``loss(**batch)`` and ``predict(**batch)``; metrics ``reset/update/compute`` (base class
    ``pc3d.engine.Metric``); train hooks the ``before_*``/``after_*`` methods of
    ``pc3d.engine.hooks``.

    Names are global per kind: if two plugins register the same name for the same kind, pc3d
    refuses to build anything and names both plugins. If this hook raises, nothing it registered
    is kept.
    """


@hookspec
def pc3d_config_dirs() -> list[Path]:
    """Return the folders holding this plugin's YAML configs.

    They are searched (in plugin order, after the including file's own folder) for ``_base_``
    entries and for config names given without a path, e.g. ``pc3d config show
    bevdet-tiny_kitti-3class.yaml``. Ship the configs inside the Python package (package data) so
    that they exist in wheel installs as well as editable ones.
    """


@hookspec
def pc3d_add_cli_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add subcommands to the ``pc3d`` command.

    :param subparsers: the ``pc3d`` sub-parser collection. Add a parser with
        ``subparsers.add_parser("name", help=...)`` and ``set_defaults(func=run)``, where
        ``run(args) -> int`` returns the exit status. A name already taken is reported as this
        plugin's error and the command is skipped.
    """
