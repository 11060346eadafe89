"""MMDetection3D compatibility of the det3d models: its two anchor generators, by name.

MMDetection3D lays anchors out in two ways, and a checkpoint's head only fits the one it was
trained with:

- ``AlignedAnchor3DRangeGenerator`` (PointPillars): the centres sit in the middle of the ``W``
  (``H``) equal cells that split the range -- :class:`pc3d.nn.anchors_3d.AnchorGenerator3D`;
- ``Anchor3DRangeGenerator`` (SECOND): ``W`` (``H``) centres spaced evenly *from the range's start
  to its end*, both included (``torch.linspace(min, max, W)``) -- :class:`RangeAnchorGenerator3D`.

A config names one with ``generator:`` in ``bbox_head.anchor_generator`` (not ``type:``, which
would declare a registered component).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from pc3d.errors import FormatError, choose
from pc3d.nn.anchors_3d import AnchorGenerator3D

__all__ = ["ANCHOR_GENERATORS", "RangeAnchorGenerator3D", "build_anchor_generator"]


class RangeAnchorGenerator3D(AnchorGenerator3D):
    """MMDetection3D's ``Anchor3DRangeGenerator``: centres from range start to range end.

    Same arguments and layout as :class:`~pc3d.nn.anchors_3d.AnchorGenerator3D`; only the centres
    differ (``align_corner`` is ignored: MMDetection3D's generator has no such option).
    """

    def _centres(self, bounds: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
        ys = torch.linspace(bounds[1], bounds[4], height, device=bounds.device)
        xs = torch.linspace(bounds[0], bounds[3], width, device=bounds.device)
        return bounds[2:3], ys, xs


#: MMDetection3D's generator names -> pc3d's classes.
ANCHOR_GENERATORS: dict[str, type[AnchorGenerator3D]] = {
    "AlignedAnchor3DRangeGenerator": AnchorGenerator3D,
    "Anchor3DRangeGenerator": RangeAnchorGenerator3D,
}


def build_anchor_generator(
    settings: Mapping[str, Any], where: str = "model.bbox_head.anchor_generator"
) -> AnchorGenerator3D:
    """The anchor generator a head's ``anchor_generator`` mapping describes.

    Args:
        settings: the generator's arguments, with an optional ``generator`` naming MMDetection3D's
            generator (default ``AlignedAnchor3DRangeGenerator``).
        where: the config key named in errors.

    Returns:
        The generator.

    Raises:
        FormatError: an unknown ``generator`` name, or arguments the generator refuses (named
            under ``where``).
    """
    options = dict(settings)
    name = str(options.pop("generator", "AlignedAnchor3DRangeGenerator"))
    generator = choose(ANCHOR_GENERATORS, name, f"{where}.generator", "anchor generator")
    try:
        return generator(**options)
    except FormatError as err:
        # The generator names its own argument ("ranges: ..."); say where it sits in the config.
        raise FormatError(f"{where}.{err}") from err
    except TypeError as err:
        raise FormatError(f"{where}: {err}") from err
