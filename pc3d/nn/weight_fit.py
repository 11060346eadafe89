"""Why a set of weights does not fit a model: one short description for every loader.

``load_state_dict``'s own error lists every key, hundreds for a checkpoint of another
architecture (a SECOND checkpoint given to PointPillars: 6.7 kB on one line). This module
counts the keys per top-level module and names the first few of each kind instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["WeightDifferences", "first_named", "weight_differences", "weight_mismatch"]

#: Keys named per kind (missing, unexpected, other shape); the rest are counted.
MAX_NAMED = 6


@dataclass(frozen=True)
class WeightDifferences:
    """The keys that keep weights from loading strictly into a model.

    Attributes:
        unexpected: keys of the weights the model does not have.
        missing: keys of the model the weights do not have.
        shapes: ``"key: checkpoint (..) vs model (..)"`` for keys on both sides with other shapes.
    """

    unexpected: list[str]
    missing: list[str]
    shapes: list[str]

    @property
    def count(self) -> int:
        """How many keys differ in all (0: the weights fit)."""
        return len(self.unexpected) + len(self.missing) + len(self.shapes)


def weight_differences(expected: Mapping[str, Any], weights: Mapping[str, Any]) -> WeightDifferences:
    """The keys of ``weights`` and of a model's state dict ``expected`` that do not match."""
    return WeightDifferences(
        unexpected=[key for key in weights if key not in expected],
        missing=[key for key in expected if key not in weights],
        shapes=[
            f"{key}: checkpoint {_shape(value)} vs model {_shape(expected[key])}"
            for key, value in weights.items()
            if key in expected and _shape(value) != _shape(expected[key])
        ],
    )


def weight_mismatch(expected: Mapping[str, Any], weights: Mapping[str, Any]) -> str | None:
    """What keeps ``weights`` from loading strictly into a model whose state dict is ``expected``.

    Args:
        expected: the model's ``state_dict()``.
        weights: the weights to load (key -> tensor).

    Returns:
        None when every key is on both sides with the same shape; else one line such as (SECOND's
        KITTI checkpoint against the PointPillars model) ``"84 checkpoint keys the model does not
        have (middle_encoder 72, backbone 12): backbone.blocks.0.12.weight, ...; 48 model keys the
        checkpoint does not have (backbone 36, voxel_encoder 6, neck 6): ...; 63 keys with other
        shapes: backbone.blocks.0.0.weight: checkpoint (128, 256, 3, 3) vs model (64, 64, 3, 3),
        ..."``.
    """
    found = weight_differences(expected, weights)
    parts = []
    if found.unexpected:
        parts.append(
            f"{_counted(found.unexpected, 'checkpoint keys the model does not have')}: {first_named(found.unexpected)}"
        )
    if found.missing:
        parts.append(
            f"{_counted(found.missing, 'model keys the checkpoint does not have')}: {first_named(found.missing)}"
        )
    if found.shapes:
        parts.append(f"{len(found.shapes)} keys with other shapes: {first_named(found.shapes)}")
    return "; ".join(parts) or None


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(n) for n in shape) if shape is not None else None


def _counted(keys: list[str], what: str) -> str:
    """``"N <what> (module a, module b)"``: the count per top-level module."""
    modules = Counter(key.split(".", 1)[0] for key in keys)
    per_module = ", ".join(f"{name} {count}" for name, count in modules.most_common())
    return f"{len(keys)} {what} ({per_module})"


def first_named(items: list[str], limit: int = MAX_NAMED) -> str:
    """The first ``limit`` of ``items``, comma-separated, and how many more there are."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
