"""The one type checker: values against type hints, for components and the engine's sections."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

import pytest

import pc3d.engine.schema as schema
from pc3d.config import Config, ConfigError, ConfigNode, Kind, Range, dump_config
from pc3d.config.type_checks import conform, describe_value, hint_name, to_dataclass


def node(value: Any, *path: str) -> ConfigNode:
    return ConfigNode(value, path)


class Drawable(Protocol):
    def draw(self) -> None: ...


@dataclass
class Inner:
    size: int
    mode: Literal["fast", "exact"] = "fast"


@dataclass
class Outer:
    inner: Inner | None = None
    items: list[Inner] = field(default_factory=list)
    ratio: float = 1.0


def test_scalars_and_conversions():
    assert conform(node(3), float) == 3.0 and isinstance(conform(node(3), float), float)
    assert conform(node([1, 2]), Sequence[float]) == [1.0, 2.0]
    assert conform(node((1, "a")), tuple[int, str]) == (1, "a")
    assert conform(node(None), int | None) is None
    with pytest.raises(ConfigError, match=r"^a.b \(from <dict>\): expected int, got a bool True$"):
        conform(node(True, "a", "b"), int)
    with pytest.raises(ConfigError, match=r"expected tuple\[int, str\], got a list \[1, 2, 3\]"):
        conform(node([1, 2, 3]), tuple[int, str])


def test_annotation_or_yaml_words():
    assert hint_name(Sequence[int]) == "Sequence[int]" and hint_name(str | None) == "str | None"
    assert hint_name(int | None, words=True) == "an integer or null"
    assert hint_name(bool, words=True) == "true or false" and hint_name(Inner, words=True) == "a mapping"
    assert hint_name(Annotated[list[int], Kind("head")], words=True) == "a list"
    with pytest.raises(ConfigError, match="expected an integer, got a string 'x'"):
        conform(node("x"), int, words=True)
    assert (
        describe_value(None) == "null"
        and describe_value(1.5) == "a float"
        and describe_value({}) == "a mapping"
    )


def test_hints_that_are_not_checked_let_values_through():
    anything = object()
    assert conform(node(anything), Any) is anything
    assert conform(node(anything), Drawable) is anything  # a protocol that is not runtime-checkable
    assert conform(node("x"), None) == "x"  # no annotation


def test_literals_suggest_and_dataclasses_report_the_inner_key():
    with pytest.raises(
        ConfigError,
        match=r"^mode \(from <dict>\): 'exat' is not one of fast, exact \(did you mean 'exact'\?\)$",
    ):
        conform(node("exat", "mode"), Literal["fast", "exact"])
    outer = to_dataclass(
        node({"inner": {"size": 2}, "items": [{"size": 1, "mode": "exact"}], "ratio": 2}), Outer
    )
    assert outer == Outer(Inner(2), [Inner(1, "exact")], 2.0)
    with pytest.raises(
        ConfigError, match=r"^s.items.0.size \(from <dict>\): expected an integer, got a string 'big'$"
    ):
        to_dataclass(node({"items": [{"size": "big"}]}, "s"), Outer)
    with pytest.raises(
        ConfigError,
        match=r"^s.inner.sise \(from <dict>\): unknown key 'sise' \(did you mean 'size'\?\); s.inner accepts: size, mode$",
    ):
        to_dataclass(node({"inner": {"sise": 1}}, "s"), Outer)
    with pytest.raises(ConfigError, match=r"^s.inner.size \(from <dict>\): required key 'size' is missing$"):
        to_dataclass(node({"inner": {}}, "s"), Outer)
    with pytest.raises(
        ConfigError, match=r"^s.inner \(from <dict>\): expected a mapping or null, got a list \[1\]$"
    ):
        to_dataclass(node({"inner": [1]}, "s"), Outer)


def test_range_checks_a_number_after_its_type():
    count = Annotated[int, Range(min=1)]
    assert conform(node(3, "n"), count) == 3
    with pytest.raises(ConfigError, match=r"^n \(from <dict>\): must be at least 1, got 0$"):
        conform(node(0, "n"), count)
    with pytest.raises(ConfigError, match=r"^n \(from <dict>\): expected int, got a bool True$"):
        conform(node(True, "n"), count)  # the type comes first
    assert conform(node(None, "n"), count | None) is None
    with pytest.raises(ConfigError, match=r"^n \(from <dict>\): must be at least 1, got -2$"):
        conform(node(-2, "n"), count | None)
    open_low = Annotated[float, Range(min=0, max=1, min_open=True)]
    assert conform(node(1, "r"), open_low) == 1.0
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"^r \(from <dict>\): must be in \(0, 1\], got "):
            conform(node(bad, "r"), open_low)
    assert Range(max=3, max_open=True).describe() == "less than 3"
    assert Range(max=3).describe() == "at most 3"
    assert Range(min=0, min_open=True).describe() == "more than 0"
    assert Range(min=0.5, max=2, max_open=True).describe() == "in [0.5, 2)"


def test_the_engine_schema_uses_this_checker():
    for name in ("_convert", "_name", "_kind", "_dotted"):
        assert not hasattr(schema, name)
    spec = schema.parse_section(node({"iters": 5}, "schedule", "warmup"), schema.WarmupSpec)
    assert spec == schema.WarmupSpec(iters=5) and isinstance(spec.ratio, float)


def test_dump_config_writes_atomically_with_the_umask_permissions(tmp_path):
    config = Config({"a": [1, 2]}, path=None)
    previous = os.umask(0o027)
    try:
        written = dump_config(config, tmp_path / "work")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(written.stat().st_mode) == 0o640  # 0o666 & ~umask, not mkstemp's 0o600
    assert sorted(p.name for p in written.parent.iterdir()) == ["config.yaml"]
