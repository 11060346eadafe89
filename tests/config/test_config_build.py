"""Building components from config mappings: registry lookup, signature checks, errors with the
key's dotted path, its file and line, and "did you mean"."""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pytest

from pc3d.config import ARGUMENT_KINDS, ConfigError, Kind, Range, build, check_component, load_config
from pc3d.plugin_api import Registrar, hookimpl
from pc3d.plugin_manager import PluginManager
from pc3d.registry import KINDS, Registry


class Encoder:
    def __init__(self, in_channels: int, out_channels: int = 8, scale: float = 1.0, name: str | None = None):
        self.in_channels, self.out_channels, self.scale, self.name = in_channels, out_channels, scale, name


class Head:
    def __init__(self, num_classes: int, layers: Sequence[int] = (1,)):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.layers = num_classes, layers


class Flip:
    def __init__(self, p: Annotated[float, Range(min=0, max=1)] = 0.5):
        self.p = p


class Model:
    def __init__(
        self,
        backbone: Encoder,
        head: Head,
        transforms: list[Any] | None = None,
        options: dict[str, Any] | None = None,
    ):
        self.backbone, self.head, self.transforms, self.options = backbone, head, transforms, options


class Anything:
    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs


class Ambiguous:
    def __init__(self) -> None:
        pass


class _Plugin:
    @hookimpl
    def pc3d_register(self, registry: Registrar) -> None:
        registry.add_backbone(Encoder)
        registry.add_head(Head)
        registry.add_transform(Flip)
        registry.add_model(Model)
        registry.add_model(Anything)
        registry.add_head(Ambiguous)
        registry.add_backbone(Ambiguous)


@pytest.fixture(scope="module")
def registry() -> Registry:
    manager = PluginManager(autoload=False).load()
    manager.register_plugin(_Plugin(), "test-components")
    return manager.registry


def write(folder: Path, text: str) -> Path:
    path = folder / "model_test-3class.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def build_model(path: Path, registry: Registry, overrides: Sequence[str] = ()) -> Any:
    """The ``model`` of the config file ``path`` (with ``--set`` style ``overrides``), built."""
    config = load_config(path, list(overrides), search_dirs=[])
    return build(config.node("model"), kind="model", registry=registry)


MODEL = """
    model:
      type: Model
      backbone:
        type: Encoder
        in_channels: 4
        scale: 2
      head:
        type: Head
        num_classes: 3
        layers: [64, 64]
      transforms:
        - {type: Flip, p: 0.25}
        - {type: Flip}
      options:
        verbose: true
        helper: {type: Flip, p: 1.0, kind: transform}
"""


def model_build_error(folder: Path, registry: Registry, old: str, new: str) -> tuple[Path, str]:
    """Writes ``MODEL`` with ``old`` replaced by ``new`` into ``folder`` and builds its model.

    Args:
        folder: Where the config file goes.
        registry: The registry to build from.
        old: Text of ``MODEL`` to replace.
        new: What replaces it.

    Returns:
        The config file and the message of the ``ConfigError`` building it raised.
    """
    path = write(folder, MODEL.replace(old, new))
    with pytest.raises(ConfigError) as info:
        build_model(path, registry)
    return path, str(info.value)


def test_nested_components_are_built_depth_first(tmp_path, registry):
    model = build_model(write(tmp_path, MODEL), registry)
    assert isinstance(model, Model)
    assert (model.backbone.in_channels, model.backbone.out_channels, model.backbone.scale) == (4, 8, 2)
    assert model.head.layers == [64, 64]
    assert [t.p for t in model.transforms] == [0.25, 0.5]
    assert model.options["verbose"] is True and model.options["helper"].p == 1.0


def test_unknown_key_names_path_file_line_and_suggests(tmp_path, registry):
    path, message = model_build_error(tmp_path, registry, "num_classes: 3", "num_clases: 3")
    assert message.startswith(f"model.head.num_clases (from {path}:9): unknown argument 'num_clases'")
    assert "for head 'Head' (did you mean 'num_classes'?); Head accepts: num_classes, layers" in message


def test_unknown_key_from_an_override_names_the_override(tmp_path, registry):
    with pytest.raises(ConfigError) as info:
        build_model(write(tmp_path, MODEL), registry, ["model.backbone.out_channel=16"])
    assert str(info.value).startswith(
        "model.backbone.out_channel (from --set model.backbone.out_channel=16): unknown argument"
    )
    assert "did you mean 'out_channels'?" in str(info.value)


def test_unknown_type_names_path_file_and_suggests(tmp_path, registry):
    path, message = model_build_error(tmp_path, registry, "type: Head", "type: Haed")
    assert message.startswith(f"model.head.type (from {path}:8): unknown head 'Haed'")
    assert "did you mean 'Head'?" in message and "Registered heads: Ambiguous, Head." in message
    _, wrong_kind = model_build_error(tmp_path, registry, "type: Head", "type: Encoder")
    assert "'Encoder' is registered as a backbone, not a head" in wrong_kind


def test_unknown_type_in_a_list_names_the_index(tmp_path, registry):
    path, message = model_build_error(tmp_path, registry, "- {type: Flip}", "- {type: Flop}")
    assert re.search(
        rf"^model.transforms.1.type \(from {path}:13\): unknown transform 'Flop' \(did you mean 'Flip'",
        message,
    )


def test_missing_required_arguments_are_named(tmp_path, registry):
    path, message = model_build_error(tmp_path, registry, "        in_channels: 4\n", "")
    assert re.search(
        rf"^model.backbone \(from {path}:3\): backbone 'Encoder' is missing required argument 'in_channels'",
        message,
    )
    with pytest.raises(ConfigError, match="model 'Model' is missing required arguments 'backbone', 'head'"):
        build({"type": "Model"}, kind="model", registry=registry)


def test_scalar_types_are_checked_against_annotations(registry):
    def head(**values: Any) -> dict[str, Any]:
        return {"type": "Head", **values}

    with pytest.raises(
        ConfigError, match=r"^num_classes \(from <dict>\): expected int, got a string 'three'"
    ):
        build(head(num_classes="three"), kind="head", registry=registry)
    with pytest.raises(ConfigError, match="expected int, got a bool True"):
        build(head(num_classes=True), kind="head", registry=registry)
    with pytest.raises(
        ConfigError, match=r"^layers \(from <dict>\): expected Sequence\[int\], got a list \['wide'\]"
    ):
        build(head(num_classes=2, layers=["wide"]), kind="head", registry=registry)
    with pytest.raises(ConfigError, match="expected float, got a string"):
        build({"type": "Flip", "p": "half"}, kind="transform", registry=registry)
    encoder = build(
        {"type": "Encoder", "in_channels": 3, "scale": 1, "name": None}, kind="backbone", registry=registry
    )
    assert encoder.scale == 1 and encoder.name is None  # int for float, None for Optional
    with pytest.raises(ConfigError, match=r"expected str \| None, got an int 5"):
        build({"type": "Encoder", "in_channels": 3, "name": 5}, kind="backbone", registry=registry)


def test_built_component_of_the_wrong_class_is_rejected(registry):
    config = {"type": "Model", "backbone": {"type": "Flip"}, "head": {"type": "Head", "num_classes": 2}}
    with pytest.raises(ConfigError, match="unknown backbone 'Flip'.*registered as a transform"):
        build(config, kind="model", registry=registry)
    sneaky = {"type": "Model", "backbone": [1, 2], "head": {"type": "Head", "num_classes": 2}}
    with pytest.raises(ConfigError, match=r"^backbone \(from <dict>\): expected Encoder, got a list"):
        build(sneaky, kind="model", registry=registry)


def test_var_keyword_components_accept_any_key(registry):
    built = build(
        {"type": "Anything", "whatever": 1, "nested": {"type": "Flip", "kind": "transform"}},
        kind="model",
        registry=registry,
    )
    assert built.kwargs["whatever"] == 1 and isinstance(built.kwargs["nested"], Flip)


def test_constructor_errors_are_tied_to_the_mapping(tmp_path, registry):
    path, message = model_build_error(tmp_path, registry, "num_classes: 3", "num_classes: 0")
    assert re.search(
        rf"^model.head \(from {path}:7\): building head 'Head' failed: num_classes must be >= 1, got 0",
        message,
    )


def test_nested_kind_comes_from_a_declared_argument_or_an_explicit_kind(registry):
    built = build(
        {"type": "Anything", "helper": {"type": "Head", "num_classes": 2, "kind": "head"}},
        kind="model",
        registry=registry,
    )
    assert isinstance(built.kwargs["helper"], Head)  # 'helper' declares no kind: the mapping says it
    assert "kind" not in vars(built.kwargs["helper"])
    with pytest.raises(
        ConfigError,
        match=r"^helper \(from <dict>\): cannot tell what kind of component 'Head' is: 'helper' does not declare one; add 'kind: <kind>'",
    ):
        build(
            {"type": "Anything", "helper": {"type": "Head", "num_classes": 2}},
            kind="model",
            registry=registry,
        )
    # A name registered under two kinds is no problem once the kind is stated.
    assert isinstance(
        build(
            {"type": "Anything", "helper": {"type": "Ambiguous", "kind": "head"}},
            kind="model",
            registry=registry,
        ).kwargs["helper"],
        Ambiguous,
    )
    with pytest.raises(ConfigError, match=r"unknown transform 'Fliip' \(did you mean 'Flip'\?\)"):
        build(
            {"type": "Anything", "helper": {"type": "Fliip", "kind": "transform"}},
            kind="model",
            registry=registry,
        )


def test_an_unknown_or_contradicting_kind_is_an_error_with_the_key_path(tmp_path, registry):
    path = write(
        tmp_path, MODEL.replace("        in_channels: 4\n", "        in_channels: 4\n        kind: head\n")
    )
    with pytest.raises(
        ConfigError,
        match=rf"^model.backbone.kind \(from {path}:6\): 'kind: head' contradicts its place: 'model.backbone' takes a backbone",
    ):
        build_model(path, registry)
    with pytest.raises(
        ConfigError,
        match=r"^helper.kind \(from <dict>\): unknown component kind 'heads' \(did you mean 'head'\?\); kinds: model, ",
    ):
        build(
            {"type": "Anything", "helper": {"type": "Head", "kind": "heads"}}, kind="model", registry=registry
        )
    with pytest.raises(ConfigError, match=r"^kind \(from <dict>\): 'kind: backbone' contradicts"):
        build({"type": "Head", "num_classes": 1, "kind": "backbone"}, kind="head", registry=registry)
    items = {"type": "Anything", "steps": [{"type": "Flip"}]}
    with pytest.raises(
        ConfigError,
        match=r"^steps.0 \(from <dict>\): cannot tell what kind of component 'Flip' is: 'steps' does not declare one",
    ):
        build(items, kind="model", registry=registry)


class TwoHeads:
    def __init__(
        self,
        main: Annotated[Head, Kind("head")],
        extras: list[Annotated[Any, Kind("transform")]] | None = None,
    ):
        self.main, self.extras = main, extras


def test_a_constructor_type_hint_declares_the_kind(registry):
    manager = PluginManager(autoload=False).load()
    manager.register_plugin(_Plugin(), "test-components")

    class _More:
        @hookimpl
        def pc3d_register(self, registry: Registrar) -> None:
            registry.add_model(TwoHeads)

    manager.register_plugin(_More(), "more")
    built = build(
        {"type": "TwoHeads", "main": {"type": "Head", "num_classes": 2}, "extras": [{"type": "Flip"}]},
        kind="model",
        registry=manager.registry,
    )
    assert isinstance(built.main, Head) and isinstance(built.extras[0], Flip)
    with pytest.raises(
        ValueError, match=r"Kind\('heads'\): unknown component kind 'heads' \(did you mean 'head'\?\)"
    ):
        Kind("heads")


def test_every_documented_argument_kind_is_a_registry_kind():
    assert set(ARGUMENT_KINDS.values()) <= set(KINDS)
    assert (
        ARGUMENT_KINDS["transforms"] == "transform" and "heads" not in ARGUMENT_KINDS
    )  # exact names, no plural rule


def test_an_unknown_type_lists_the_installed_plugins(registry):
    with pytest.raises(
        ConfigError,
        match=r"unknown head 'Haed' \(did you mean 'Head'\?\).* Loaded plugins: pc3d, test-components\.",
    ):
        build({"type": "Haed"}, kind="head", registry=registry)
    with pytest.raises(
        ConfigError,
        match=r"'mmdet3d.CenterHead' looks like it comes from a plugin 'mmdet3d', which is not installed or not enabled \(`pc3d plugins` lists installed ones\)",
    ):
        build({"type": "mmdet3d.CenterHead"}, kind="head", registry=registry)


def test_an_unknown_type_in_a_config_shipped_by_a_package_suspects_a_missing_plugin(tmp_path, registry):
    package = tmp_path / "pc3d_gone"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "configs").mkdir()
    path, message = model_build_error(package / "configs", registry, "type: Head", "type: GoneHead")
    assert message.startswith(f"model.head.type (from {path}:8): unknown head 'GoneHead'")
    assert (
        f"{path} ships with the package 'pc3d_gone', which registers no components here: the plugin providing 'GoneHead' may not be installed or enabled (`pc3d plugins` lists installed ones)."
        in message
    )
    # A config outside any package gets no such guess.
    _, plain = model_build_error(tmp_path, registry, "type: Head", "type: GoneHead")
    assert "ships with the package" not in plain


def test_mapping_without_type_and_bad_kinds(registry):
    with pytest.raises(ConfigError, match=r"^type \(from <dict>\): type missing; write 'type: <head name>'"):
        build({"num_classes": 3}, kind="head", registry=registry)
    with pytest.raises(ConfigError, match="type must be a name, got 3"):
        build({"type": 3}, kind="head", registry=registry)
    with pytest.raises(ConfigError, match="expected a mapping with 'type: <model name>', got a list"):
        build([1], kind="model", registry=registry)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown component kind 'heads'"):
        build({"type": "Head"}, kind="heads", registry=registry)


def test_bounds_in_a_constructors_annotation_are_checked_at_the_key(registry, tmp_path):
    path = write(
        tmp_path,
        """
        model:
          type: Model
          backbone: {type: Encoder, in_channels: 3}
          head: {type: Head, num_classes: 2}
          transforms:
            - {type: Flip, p: 1.5}
        """,
    )
    config = load_config(path)
    where = rf"model.transforms.0.p \(from {re.escape(str(path))}:6\)"
    with pytest.raises(ConfigError, match=rf"^{where}: must be in \[0, 1\], got 1.5$"):
        build(config.node("model"), "model", registry=registry)
    with pytest.raises(ConfigError, match=rf"^{where}: must be in \[0, 1\], got 1.5$"):
        check_component(config.node("model"), "model", registry=registry)


def test_check_component_checks_every_level_and_calls_no_constructor(registry, monkeypatch):
    calls: list[str] = []
    for cls in (Encoder, Head, Model):
        original = cls.__init__

        @functools.wraps(original)  # keeps the signature the builder checks against
        def spy(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            calls.append(type(self).__name__)
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    good = {
        "type": "Model",
        "backbone": {"type": "Encoder", "in_channels": 3},
        "head": {"type": "Head", "num_classes": 0},
    }
    # num_classes 0 is refused by Head's constructor only: a dry check cannot see it, build does.
    assert check_component(good, "model", registry=registry) is None
    assert calls == []
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        build(good, "model", registry=registry)
    assert calls == ["Encoder", "Head"]
    nested_typo = {**good, "head": {"type": "Head", "num_clases": 2}}
    with pytest.raises(
        ConfigError, match=r"^head.num_clases \(from <dict>\): unknown argument 'num_clases' for head 'Head'"
    ):
        check_component(nested_typo, "model", registry=registry)
    wrong_type = {**good, "backbone": {"type": "Encoder", "in_channels": "three"}}
    with pytest.raises(
        ConfigError, match=r"^backbone.in_channels \(from <dict>\): expected int, got a string 'three'"
    ):
        check_component(wrong_type, "model", registry=registry)
