"""Old home of the plugin machinery, kept for the importers not yet switched.

The plugin contract is :mod:`pc3d.plugin_api`, discovery is :mod:`pc3d.plugin_manager`, the
registry of names is :mod:`pc3d.registry`; import from those.
"""

from pc3d.errors import suggest
from pc3d.plugin_manager import config_dirs
from pc3d.registry import KINDS, UnknownComponentError, get_registry

__all__ = ["KINDS", "UnknownComponentError", "config_dirs", "get_registry", "suggest"]
