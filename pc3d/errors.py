"""Exceptions raised by pc3d for bad input.

Every error names what is wrong (the file, line, field or key) so that a user can fix the input
without reading pc3d's source. The CLI prints these as one line and exits with status 2.
"""


class Pc3dError(Exception):
    """Base class of pc3d's own errors (bad input, bad config, missing optional dependency)."""


class FormatError(Pc3dError, ValueError):
    """A file or array does not have the expected format (names the file/line/field)."""


class ShapeError(Pc3dError, ValueError):
    """A tensor or array has the wrong shape (names the expected and the given shape)."""


class MissingDependencyError(Pc3dError, ImportError):
    """An optional dependency (open3d, spconv, pycocotools) is needed but not installed."""
