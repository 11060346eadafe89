"""The plugin contract (pc3d.plugin_api): hooks, the one hookimpl marker, the registrar, the
protocols, and that every first-party registration satisfies its protocol."""

from __future__ import annotations

import inspect
import typing

import pluggy
import pytest
from torch import nn

import pc3d.plugin_manager
import pc3d.registry
from pc3d import plugin_api
from pc3d.engine.hooks import HOOK_METHODS, HookList
from pc3d.engine.metric import Metric
from pc3d.plugin_api import (
    DatasetProtocol,
    DistributedMetricProtocol,
    MetricProtocol,
    ModelProtocol,
    Registrar,
    StatefulTrainHookProtocol,
    TrainHookProtocol,
)
from pc3d.plugin_manager import PluginManager
from pc3d.registry import KINDS

PROTOCOLS = (
    ModelProtocol,
    DatasetProtocol,
    MetricProtocol,
    DistributedMetricProtocol,
    TrainHookProtocol,
    StatefulTrainHookProtocol,
)
FIRST_PARTY = {"pc3d", "pc3d-classification", "pc3d-det2d", "pc3d-det3d", "pc3d-seg"}


def protocol_methods(protocol: type) -> set[str]:
    names: set[str] = set()
    for base in protocol.__mro__:
        if base not in (object, typing.Protocol, typing.Generic):
            names |= {n for n, v in vars(base).items() if callable(v) and (n[0] != "_" or n in SPECIAL)}
    return names


SPECIAL = {"__len__", "__getitem__"}


def test_contract_module_defines_the_protocols():
    for protocol in PROTOCOLS:
        assert typing.Protocol in protocol.__mro__, protocol
        assert isinstance(object(), protocol) is False  # runtime_checkable, else a TypeError
        assert protocol.__name__ in plugin_api.__all__
    assert protocol_methods(ModelProtocol) == {"loss", "predict"}
    assert protocol_methods(DatasetProtocol) == {"__len__", "__getitem__"}
    assert protocol_methods(MetricProtocol) == {"reset", "update", "compute"}
    assert protocol_methods(DistributedMetricProtocol) == {"reset", "update", "compute", "state", "merge"}
    assert protocol_methods(TrainHookProtocol) == set(plugin_api.TRAIN_HOOK_METHODS) == set(HOOK_METHODS)
    assert protocol_methods(StatefulTrainHookProtocol) == {"state_dict", "load_state_dict"}


def test_hook_specs_are_exactly_the_contract():
    pm = pluggy.PluginManager(plugin_api.PROJECT_NAME)
    pm.add_hookspecs(plugin_api)
    specs = sorted(name for name in vars(pm.hook) if name.startswith("pc3d_"))
    assert specs == sorted(plugin_api.HOOK_NAMES) == ["pc3d_config_dirs", "pc3d_register"]
    assert isinstance(plugin_api.hookimpl, pluggy.HookimplMarker)
    assert plugin_api.hookimpl.project_name == "pc3d"


def test_hookimpl_comes_from_the_contract_module_only():
    for module in (pc3d.registry, pc3d.plugin_manager):
        assert not hasattr(module, "hookimpl"), module.__name__
        assert not hasattr(module, "Registrar"), module.__name__


def test_registrar_has_one_add_method_per_kind():
    for kind in KINDS:
        method = getattr(Registrar, f"add_{kind}")
        assert inspect.signature(method).parameters.keys() == {"self", "obj", "name"}
        assert method.__doc__, f"Registrar.add_{kind} has no docstring"


def test_protocols_tell_a_conforming_class_from_one_that_is_not():
    class Complete(nn.Module):
        def loss(self, points):
            return {}

        def predict(self, points):
            return []

    class NoPredict(nn.Module):
        def loss(self, points):
            return {}

    assert issubclass(Complete, ModelProtocol) and not issubclass(NoPredict, ModelProtocol)
    assert issubclass(Metric, DistributedMetricProtocol)

    class Local:
        def reset(self): ...
        def update(self, predictions, batch): ...
        def compute(self):
            return {}

    assert isinstance(Local(), MetricProtocol) and not isinstance(Local(), DistributedMetricProtocol)
    assert isinstance([{"x": 1}], DatasetProtocol)  # a list of samples is a map-style data set
    assert not isinstance(object(), DatasetProtocol)


def test_train_hook_derived_from_the_protocol_gets_no_ops():
    calls = []

    class CountSteps(TrainHookProtocol):
        def after_iter(self, trainer, outputs):
            calls.append(outputs["loss"])

    hook = CountSteps()
    assert isinstance(hook, TrainHookProtocol)
    hooks = HookList([hook])
    trainer = type("Trainer", (), {"iteration": 0})()
    for method in HOOK_METHODS:
        hooks.call(method, trainer, *([{"loss": 1.5}] if method == "after_iter" else []))
    assert calls == [1.5]
    assert hooks.state_dict() == {}  # no state unless the hook has state_dict()


def registrations(kind: str):
    manager = PluginManager().load()
    loaded = {p.distribution for p in manager.loaded}
    assert FIRST_PARTY <= loaded, [f"{p.label}: {p.error}" for p in manager.plugins if p.status != "loaded"]
    found = [r for r in manager.registry.entries() if r.kind == kind and r.owner in FIRST_PARTY]
    assert found, f"no first-party {kind} registered"
    return found


def bindable(function, *args) -> bool:
    try:
        inspect.signature(function).bind(*args)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("kind", ["model", "metric", "dataset"])
def test_first_party_registrations_are_classes(kind):
    for reg in registrations(kind):
        assert isinstance(reg.obj, type), f"{reg.owner} registers {kind} {reg.name} as a non-class"


def test_first_party_models_satisfy_the_model_protocol():
    for reg in registrations("model"):
        assert issubclass(reg.obj, ModelProtocol), f"{reg.owner}: {reg.name}"
        assert issubclass(reg.obj, nn.Module), f"{reg.owner}: {reg.name} is not an nn.Module"


def test_first_party_metrics_satisfy_the_distributed_metric_protocol():
    for reg in registrations("metric"):
        cls = reg.obj
        assert issubclass(cls, DistributedMetricProtocol), f"{reg.owner}: {reg.name}"
        assert bindable(cls.update, None, [], {}), f"{reg.name}.update(predictions, batch)"
        assert bindable(cls.merge, None, []), f"{reg.name}.merge(states)"
        for method in ("reset", "compute", "state"):
            assert bindable(getattr(cls, method), None), f"{reg.name}.{method}()"


def test_first_party_datasets_satisfy_the_dataset_protocol():
    for reg in registrations("dataset"):
        cls = reg.obj
        assert issubclass(cls, DatasetProtocol), f"{reg.owner}: {reg.name}"
        assert bindable(cls.__getitem__, None, 0) and bindable(cls.__len__, None), reg.name
