"""Writing a resolved config: YAML text, and the copy every run keeps in its work directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pc3d.config.references import escape_references
from pc3d.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from pc3d.config.node import Config

__all__ = ["dump_config", "render_yaml"]


def render_yaml(data: Any) -> str:
    """Resolved config data as YAML that loads back to the same data.

    Key order is kept, short lists of scalars are written inline (``[0.2, 0.2]``), and a literal
    ``${`` is written ``$${`` so that it is not read as a reference.
    """
    return yaml.dump(escape_references(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def dump_config(config: Config, work_dir: str | os.PathLike[str], name: str = "config.yaml") -> Path:
    """Write the resolved config into ``work_dir`` (created if needed), atomically.

    The file is self-contained (no ``_base_``, no references, overrides applied), starts with a
    comment naming the source file and the overrides, and loads back to the same data. It is
    replaced atomically (:mod:`pc3d.io.atomic`) and gets the permissions of a normal new file
    under the process umask, so others can read it.

    Args:
        config: The config to write.
        work_dir: The folder to write into.
        name: The file name.

    Returns:
        The written file.
    """
    header = ["# Resolved pc3d config (bases merged, overrides applied, references resolved)."]
    if config.path is not None:
        header.append(f"# from: {config.path}")
    header.extend(f"# --set {item}" for item in config.overrides)
    text = "\n".join(header) + "\n" + config.to_yaml()
    return atomic_write_text(Path(work_dir) / name, text)


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes short lists of scalars inline (``[0.2, 0.2]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    inline = len(data) <= 12 and all(isinstance(v, (int, float, str, bool)) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_Dumper.add_representer(list, _represent_list)
