"""Which kind of component a nested mapping is: declared, never guessed.

:func:`pc3d.config.build` is told the kind of the mapping it starts from (``build(node,
"model")``). A component mapping nested inside it gets its kind, in this order, from:

1. the argument's type hint in the parent's constructor:
   ``bbox_head: Annotated[nn.Module, Kind("head")]`` (also inside ``list[...]`` or ``... | None``);
2. the argument's name, looked up in :data:`ARGUMENT_KINDS` (exact names only: ``backbone``,
   ``neck``, ``head``, ``voxel_encoder``, ``dataset``, ``transforms``, ...);
3. otherwise the mapping must say it: ``helper: {type: Flip, kind: transform}``.

``kind:`` may also be written where the kind is declared; it must then agree.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pc3d.config.keys import KIND_KEY, ConfigError, dotted
from pc3d.config.node import ConfigNode
from pc3d.registry import KINDS, describe_unknown_kind

__all__ = ["ARGUMENT_KINDS", "Kind", "argument_kind", "component_kind"]

#: Constructor arguments (and keys of plain mappings) whose name declares the kind of the
#: component mapping under them; for a list, the kind of each item.
ARGUMENT_KINDS: Mapping[str, str] = {
    "model": "model",
    "backbone": "backbone",
    "neck": "neck",
    "head": "head",
    "voxel_encoder": "voxel_encoder",
    "middle_encoder": "middle_encoder",
    "bbox_head": "head",
    "dataset": "dataset",
    "transform": "transform",
    "transforms": "transform",
    "pipeline": "transform",
    "metric": "metric",
    "metrics": "metric",
    "train_hook": "train_hook",
    "hooks": "train_hook",
}


@dataclass(frozen=True)
class Kind:
    """Declares the kind of component an argument takes, in its type hint.

    ``def __init__(self, bbox_head: Annotated[nn.Module, Kind("head")])`` lets a config write
    ``bbox_head: {type: CenterHead}`` without ``kind: head``.

    Attributes:
        name: One of the registry's kinds (``head``, ``backbone``, ...).
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in KINDS:
            raise ValueError(f"Kind({self.name!r}): {describe_unknown_kind(self.name)}")


def argument_kind(key: str, hint: Any = None) -> str | None:
    """The kind declared for the component under argument ``key`` (``None``: not declared).

    Args:
        key: The argument (or mapping key) name.
        hint: The argument's type hint, with ``Annotated`` extras kept.
    """
    declared = _kind_in_hint(hint)
    return declared if declared is not None else ARGUMENT_KINDS.get(key)


def component_kind(node: ConfigNode, declared: str | None, type_name: str) -> str:
    """The kind of the component mapping at ``node``: its ``kind:`` or the declared one.

    Args:
        node: The component mapping.
        declared: The kind its place declares (:func:`argument_kind`, or ``build``'s ``kind``).
        type_name: Its ``type:``, for the message.

    Raises:
        ConfigError: ``kind:`` is not a kind or contradicts the declared kind, or neither says
            what the component is.
    """
    stated = node.value.get(KIND_KEY)
    if stated is None and KIND_KEY not in node.value:
        if declared is None:
            raise ConfigError(
                f"{node.where()}: cannot tell what kind of component '{type_name}' is: "
                f"'{_place(node)}' does not declare one; add 'kind: <kind>' to the mapping "
                f"(kinds: {', '.join(KINDS)})"
            )
        return declared
    if not isinstance(stated, str) or stated not in KINDS:
        raise ConfigError(f"{node.where(KIND_KEY)}: {describe_unknown_kind(stated)}")
    if declared is not None and stated != declared:
        raise ConfigError(
            f"{node.where(KIND_KEY)}: 'kind: {stated}' contradicts its place: "
            f"'{_place(node)}' takes a {declared}"
        )
    return stated


def _place(node: ConfigNode) -> str:
    # A list item gets its kind from the list's key.
    path = node.path
    while path and path[-1].lstrip("-").isdigit():
        path = path[:-1]
    return dotted(path)


def _kind_in_hint(hint: Any) -> str | None:
    if hint is None:
        return None
    if typing.get_origin(hint) is typing.Annotated:
        for extra in hint.__metadata__:
            if isinstance(extra, Kind):
                return extra.name
    for arg in typing.get_args(hint):
        found = _kind_in_hint(arg)
        if found is not None:
            return found
    return None
