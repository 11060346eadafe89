"""The YAML reader of configs and ``--set`` values: PyYAML's safe loader with YAML 1.2's floats.

PyYAML follows YAML 1.1, whose floats need a decimal point: ``1e-3`` and ``5e-4`` read as
strings (``lr: 1e-3`` then fails as "expected a number, got '1e-3'"), while ``1.0e-3`` works.
YAML 1.2, Python and MMDetection3D's Python configs all take ``1e-3`` as a number, so this
loader does too. Nothing else changes: the safe constructor (tags stay data, no code runs).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["ConfigLoader", "load_yaml_value"]


class ConfigLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader when PyYAML has it (else the Python one), reading ``1e-3`` as a float."""


# A number with an exponent and no decimal point (1e-3, -2E+5, 5e4): the floats YAML 1.1 misses.
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml_value(text: str) -> Any:
    """One YAML document (a ``--set`` value) read with :class:`ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)
