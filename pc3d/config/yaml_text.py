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

__all__ = ["ConfigLoader", "load_yaml_value", "yaml_error_line", "yaml_problem"]


class ConfigLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader when PyYAML has it (else the Python one), reading ``1e-3`` as a float."""


# A number with an exponent and no decimal point (1e-3, -2E+5, 5e4): the floats YAML 1.1 misses.
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml_value(text: str) -> Any:
    """One YAML document (a ``--set`` value) read with :class:`ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)


def yaml_error_line(err: yaml.YAMLError, source: str) -> str:
    """``"<source>:<line>:<column>: invalid YAML: <problem>"``: a YAML error on one line (PyYAML's
    own message spans several, with a quote of the text)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    return f"{where}: invalid YAML: {yaml_problem(err)}"


def yaml_problem(err: yaml.YAMLError) -> str:
    """What PyYAML says is wrong, in one line (``did not find expected ',' or ']'``)."""
    return str(getattr(err, "problem", None) or str(err).splitlines()[0])
