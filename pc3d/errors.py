"""Exceptions raised by pc3d for bad input.

Every error names what is wrong (the file, line, field or key) so that a user can fix the input
without reading pc3d's source. The CLI prints these as one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


class Pc3dError(Exception):
    """Base class of pc3d's own errors (bad input, bad config, missing optional dependency)."""


class FormatError(Pc3dError, ValueError):
    """A file or array does not have the expected format (names the file/line/field)."""


class ShapeError(Pc3dError, ValueError):
    """A tensor or array has the wrong shape (names the expected and the given shape)."""


class MissingDependencyError(Pc3dError, ImportError):
    """An optional dependency (open3d, spconv, pycocotools) is needed but not installed."""


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (case-insensitive), or None when none is close.

    The one "did you mean" matcher of pc3d: config keys, component names, optimizer arguments,
    class names and config files all use it.
    """
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(str(candidate).lower(), str(candidate))
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def did_you_mean(name: str, candidates: Iterable[str], spell: Callable[[str], str] = str) -> str:
    """The one spelling of a suggestion: ``" (did you mean 'x'?)"``, or ``""`` when none is close.

    It goes right after the unknown name, so a message reads as a sentence with and without it:
    ``"unknown key 'lrr' (did you mean 'lr'?); optimizer accepts: ..."``.

    Args:
        name: What was given.
        candidates: What would have been valid.
        spell: How the closest candidate is shown (e.g. as a full dotted key path).

    Returns:
        The suggestion with its leading space, or ``""``.
    """
    close = suggest(name, candidates)
    return f" (did you mean {spell(close)!r}?)" if close is not None else ""


def choose(table: Mapping[str, T], name: str, key: str, what: str) -> T:
    """``table[name]``, or a `FormatError` naming the config key, the unknown name, the closest
    known one and all of them: ``"<key>: unknown <what> 'x' (did you mean 'y'?); known: ..."``.

    Args:
        table: the known names and what each stands for.
        name: the name given.
        key: where the name was given (a config key path).
        what: what the names are, for the message (``"anchor generator"``).
    """
    if name not in table:
        raise FormatError(
            f"{key}: unknown {what} {name!r}{did_you_mean(name, table)}; known: {', '.join(table)}"
        )
    return table[name]
