"""spconv 2, imported here and nowhere else in pc3d.

Two parts of pc3d use spconv: the voxelizer backend (:mod:`pc3d.ops.voxelize_spconv`, spconv's
`PointToVoxel`) and the sparse convolutions (:mod:`pc3d.nn.sparse`, which also picks the
algorithm per device). Both get the module from :func:`import_spconv`, so a missing package gives
one clear error naming what to install.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from pc3d.errors import MissingDependencyError

__all__ = ["SPCONV_INSTALL_HINT", "import_spconv"]

SPCONV_INSTALL_HINT = (
    "pip install spconv (CPU), or the build matching your CUDA, e.g. pip install spconv-cu120"
)


def import_spconv(submodule: str = "", purpose: str = "sparse convolution (SparseEncoder)") -> ModuleType:
    """`spconv.pytorch` (or one of its submodules), imported on first use.

    Args:
        submodule: a submodule of `spconv.pytorch` (`"utils"` for `PointToVoxel`), or empty.
        purpose: what needs spconv, for the error message.

    Raises:
        MissingDependencyError: spconv is not installed, naming the package to install.
    """
    name = "spconv.pytorch" + (f".{submodule}" if submodule else "")
    _quiet_fx_tracing_note()
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise MissingDependencyError(f"{purpose} needs spconv 2: {SPCONV_INSTALL_HINT}") from err


class _FxTracingNote(logging.Filter):
    """Drops torch's note on ``is_fx_tracing`` (a deprecation aimed at spconv's code, printed in
    glog format on the first sparse convolution); every other torch.fx record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("is_fx_tracing will return true")


def _quiet_fx_tracing_note() -> None:
    logger = logging.getLogger("torch.fx._symbolic_trace")
    if not any(isinstance(f, _FxTracingNote) for f in logger.filters):
        logger.addFilter(_FxTracingNote())
