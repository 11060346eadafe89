"""YAML configs: ``_base_`` inheritance, ``--set`` overrides, ``${...}`` references, provenance,
type checks, and building components. ``docs/config.md`` describes the format.

A config is YAML *data*; nothing in it is ever executed. The modules, in the order a config
goes through them:

- :mod:`~pc3d.config.loading`: read files (``yaml.safe_load``), follow ``_base_``, find configs
  by name in the folders plugins contribute;
- :mod:`~pc3d.config.merging`: deep merge (mappings merge, everything else replaces;
  ``_replace_: true`` replaces a mapping);
- :mod:`~pc3d.config.overrides`: ``--set dotted.key=yaml_value``;
- :mod:`~pc3d.config.references`: ``${dotted.key}``, resolved after merging and overrides;
- :mod:`~pc3d.config.node`: the resolved :class:`Config` and :class:`ConfigNode` (a value with
  its key path; every key remembers its ``file:line`` or ``--set`` origin);
- :mod:`~pc3d.config.kinds` and :mod:`~pc3d.config.building`: ``{type: Name, ...}`` mappings
  built through the plugin registry, each nested component's kind declared, never guessed;
- :mod:`~pc3d.config.type_checks`: values against type hints and their bounds
  (:class:`Range`; the one implementation, also used by the engine's sections);
- :mod:`~pc3d.config.dumping`: the resolved config written into a run's work directory.
"""

from pc3d.config.building import build, check_component
from pc3d.config.dumping import dump_config
from pc3d.config.keys import BASE_KEY, KIND_KEY, PLUGINS_KEY, REPLACE_KEY, TYPE_KEY, ConfigError, KeyPath
from pc3d.config.kinds import ARGUMENT_KINDS, Kind
from pc3d.config.loading import find_config, list_configs, load_config
from pc3d.config.merging import merge
from pc3d.config.node import Config, ConfigNode
from pc3d.config.overrides import apply_overrides
from pc3d.config.type_checks import Range

__all__ = [
    "ARGUMENT_KINDS",
    "BASE_KEY",
    "KIND_KEY",
    "PLUGINS_KEY",
    "REPLACE_KEY",
    "TYPE_KEY",
    "Config",
    "ConfigError",
    "ConfigNode",
    "KeyPath",
    "Kind",
    "Range",
    "apply_overrides",
    "build",
    "check_component",
    "dump_config",
    "find_config",
    "list_configs",
    "load_config",
    "merge",
]
