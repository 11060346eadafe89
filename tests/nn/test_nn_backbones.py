"""Backbones and the FPN: output shapes per out index, gradients, frozen stages, norm choices."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import FPN, MLP, VGG, AlexNet, Backbone, FrozenBatchNorm2d, GoogLeNet, LeNet5, ResNet

# name -> (constructor, input shape, expected output shapes for out_indices = all stages)
CASES: dict[str, tuple[Callable[..., Backbone], tuple[int, ...], list[tuple[int, ...]]]] = {
    "mlp": (
        lambda **kw: MLP(in_features=64, hidden_channels=(32, 16, 8), **kw),
        (2, 1, 8, 8),
        [(2, 32), (2, 16), (2, 8)],
    ),
    "lenet5": (
        lambda **kw: LeNet5(**kw),
        (2, 1, 28, 28),
        [(2, 6, 14, 14), (2, 16, 5, 5), (2, 120, 1, 1), (2, 84, 1, 1)],
    ),
    "alexnet": (
        lambda **kw: AlexNet(**kw),
        (2, 3, 64, 64),
        [(2, 64, 7, 7), (2, 192, 3, 3), (2, 384, 3, 3), (2, 256, 3, 3), (2, 256, 1, 1)],
    ),
    # Every VGG, with or without batch norm, maps a 32 x 32 image to the same stage shapes.
    **{
        f"vgg{depth}{suffix}": (
            partial(VGG, depth=depth, **norm),
            (2, 3, 32, 32),
            [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2), (2, 512, 1, 1)],
        )
        for depth in (11, 16)
        for suffix, norm in (("", {}), ("_bn", {"norm": "bn"}))
    },
    "googlenet": (
        lambda **kw: GoogLeNet(**kw),
        (2, 3, 64, 64),
        [(2, 480, 8, 8), (2, 832, 4, 4), (2, 1024, 2, 2)],
    ),
    "resnet18": (
        lambda **kw: ResNet(depth=18, **kw),
        (2, 3, 64, 64),
        [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)],
    ),
    "resnet34": (
        lambda **kw: ResNet(depth=34, **kw),
        (2, 3, 32, 32),
        [(2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2), (2, 512, 1, 1)],
    ),
    # The bottleneck ResNets: the same stage shapes at any depth.
    **{
        f"resnet{depth}": (
            partial(ResNet, depth=depth),
            (2, 3, 32, 32),
            [(2, 256, 8, 8), (2, 512, 4, 4), (2, 1024, 2, 2), (2, 2048, 1, 1)],
        )
        for depth in (50, 101)
    },
    # A BEV pseudo-image: 64 channels, no ImageNet stem, stride-1 first stage.
    "resnet18_bev": (
        lambda **kw: ResNet(depth=18, in_channels=64, stem="none", strides=(1, 2, 2, 2), **kw),
        (2, 64, 32, 24),
        [(2, 64, 32, 24), (2, 128, 16, 12), (2, 256, 8, 6), (2, 512, 4, 3)],
    ),
    "resnet18_gn": (
        lambda **kw: ResNet(depth=18, norm="gn", stem="conv3", **kw),
        (2, 3, 16, 16),
        [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)],
    ),
    "resnet18_nonorm": (
        lambda **kw: ResNet(depth=18, norm="none", **kw),
        (2, 3, 32, 32),
        [(2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2), (2, 512, 1, 1)],
    ),
}


def _input(shape: tuple[int, ...], seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _all_stages(name: str) -> tuple[int, ...]:
    return tuple(range(len(CASES[name][2])))


def _backward(outs: tuple[Tensor, ...]) -> None:
    # A loss that reaches every output through a non-trivial path.
    sum((o * torch.linspace(-1, 1, o.numel()).view(o.shape)).square().mean() for o in outs).backward()


@pytest.mark.parametrize("name", list(CASES))
def test_backbone_shapes_and_metadata(name: str) -> None:
    build, in_shape, expected = CASES[name]
    model = build(out_indices=_all_stages(name)).eval()
    with torch.no_grad():
        outs = model(_input(in_shape))
    assert [tuple(o.shape) for o in outs] == expected
    assert model.out_channels == tuple(s[1] for s in expected)
    assert len(model.out_strides) == len(expected)
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize("name", ["mlp", "lenet5", "alexnet", "vgg11", "googlenet", "resnet18"])
def test_backbone_returns_exactly_the_requested_stages(name: str) -> None:
    build, in_shape, expected = CASES[name]
    subset = (0, len(expected) - 1)
    model_subset = build(out_indices=subset).eval()
    with torch.no_grad():
        outs = model_subset(_input(in_shape))
    assert [tuple(o.shape) for o in outs] == [expected[i] for i in subset]
    assert model_subset.out_channels == tuple(expected[i][1] for i in subset)


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "googlenet", "resnet18_bev"])
def test_strides_match_the_maps_for_divisible_inputs(name: str) -> None:
    build, in_shape, expected = CASES[name]
    model = build(out_indices=_all_stages(name))
    for shape, stride in zip(expected, model.out_strides):
        assert shape[-2:] == (in_shape[-2] // stride, in_shape[-1] // stride)


@pytest.mark.parametrize("name", list(CASES))
def test_backbone_gradients_reach_every_trainable_parameter(name: str) -> None:
    build, in_shape, _ = CASES[name]
    torch.manual_seed(0)
    model = build(out_indices=_all_stages(name)).train()
    x = _input(in_shape).requires_grad_(True)
    _backward(model(x))
    for pname, p in model.named_parameters():
        assert p.requires_grad
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Every stage learns something (guards against a stage wired out of the graph).
    for i, stage in enumerate(model.stages):
        norm = sum(float(p.grad.abs().sum()) for p in stage.parameters())
        assert norm > 0, f"{name}: stage {i} gets zero gradient"


@pytest.mark.parametrize(
    ("name", "frozen"),
    [
        ("resnet18", 1),
        ("resnet50", 2),
        ("vgg11_bn", 2),
        ("googlenet", 1),
        ("lenet5", 1),
        ("mlp", 2),
        ("alexnet", 3),
    ],
)
def test_frozen_stages_get_no_gradient_and_keep_bn_statistics(name: str, frozen: int) -> None:
    build, in_shape, _ = CASES[name]
    model = build(out_indices=_all_stages(name), frozen_stages=frozen).train()
    frozen_modules = ([model.stem] if model.has_stem else []) + list(model.stages[:frozen])
    frozen_ids = {id(p) for m in frozen_modules for p in m.parameters()}
    assert frozen_ids, "the frozen part has parameters"
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    _backward(model(_input(in_shape)))
    for pname, p in model.named_parameters():
        if id(p) in frozen_ids:
            assert not p.requires_grad and p.grad is None, f"{pname} is frozen but trainable"
        else:
            assert p.requires_grad and p.grad is not None and torch.isfinite(p.grad).all(), pname
    for m in frozen_modules:
        assert not any(
            sub.training for sub in m.modules() if isinstance(sub, nn.BatchNorm2d | nn.BatchNorm1d)
        )
    after = model.state_dict()
    prefixes = ["stem."] * model.has_stem + [f"stages.{i}." for i in range(frozen)]
    changed_unfrozen = False
    for key, value in before.items():
        if any(key.startswith(p) for p in prefixes):
            assert torch.equal(after[key], value), f"{key} changed although its stage is frozen"
        else:
            changed_unfrozen |= not torch.equal(after[key], value)
    if before and any(not any(k.startswith(p) for p in prefixes) for k in before):
        assert changed_unfrozen, "trainable BN layers must update their statistics"
    # train() again must not unfreeze.
    model.train()
    assert all(
        not sub.training for m in frozen_modules for sub in m.modules() if isinstance(sub, nn.BatchNorm2d)
    )


def test_frozen_stages_minus_one_and_zero() -> None:
    model = ResNet(depth=18, frozen_stages=0)
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for p in model.stages.parameters())
    assert all(p.requires_grad for p in ResNet(depth=18, frozen_stages=-1).parameters())
    assert all(p.requires_grad for p in VGG(depth=11, frozen_stages=0).parameters())


def test_norm_eval_keeps_every_bn_in_eval_mode() -> None:
    model = ResNet(depth=18, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = bns[-1].running_mean.clone()
    model(_input((2, 3, 32, 32)))
    assert torch.equal(bns[-1].running_mean, before)
    # The BN affine parameters still train (only the statistics are fixed).
    assert all(m.weight.requires_grad for m in bns)


def test_frozen_bn_norm_is_a_fixed_affine_map() -> None:
    model = ResNet(depth=18, norm="frozen_bn", stem="conv3").train()
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(not p.requires_grad for m in frozen for p in m.parameters())  # no parameters at all
    layer = frozen[0]
    layer.running_mean.uniform_(-1, 1)
    layer.running_var.uniform_(0.5, 2)
    layer.weight.uniform_(0.5, 2)
    layer.bias.uniform_(-1, 1)
    bn = nn.BatchNorm2d(layer.num_features).eval()
    bn.load_state_dict(
        {**{k: v for k, v in layer.state_dict().items()}, "num_batches_tracked": torch.tensor(0)}
    )
    x = _input((2, layer.num_features, 4, 4))
    torch.testing.assert_close(layer(x), bn(x))
    # And a BatchNorm2d state dict loads into it.
    fresh = FrozenBatchNorm2d(layer.num_features)
    fresh.load_state_dict(bn.state_dict())
    torch.testing.assert_close(fresh(x), bn(x))


def test_googlenet_aux_heads() -> None:
    model = GoogLeNet(aux_classes=5).train()
    x = _input((2, 3, 64, 64))
    feats, aux = model.forward_with_aux(x)
    assert [tuple(a.shape) for a in aux] == [(2, 5), (2, 5)]
    assert [tuple(f.shape) for f in feats] == [(2, 480, 8, 8), (2, 832, 4, 4), (2, 1024, 2, 2)]
    (sum(f.mean() for f in feats) + sum(a.square().mean() for a in aux)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert any(float(p.grad.abs().sum()) > 0 for p in model.aux_heads.parameters())
    # Plain forward gives the same features and no aux output; no aux heads by default.
    model.eval()
    with torch.no_grad():
        plain = model(x)
        again, _ = model.forward_with_aux(x)
    for a, b in zip(plain, again):
        torch.testing.assert_close(a, b)
    assert len(GoogLeNet().aux_heads) == 0


def test_bad_backbone_arguments_and_inputs() -> None:
    with pytest.raises(FormatError, match="depth"):
        ResNet(depth=20)
    with pytest.raises(FormatError, match="out_indices"):
        ResNet(depth=18, out_indices=(4,))
    with pytest.raises(FormatError, match="out_indices"):
        VGG(depth=11, out_indices=())
    with pytest.raises(FormatError, match="frozen_stages"):
        ResNet(depth=18, frozen_stages=5)
    with pytest.raises(FormatError, match="norm"):
        VGG(depth=16, norm="batchnorm")
    with pytest.raises(FormatError, match="strides"):
        ResNet(depth=18, strides=(1, 2, 2))
    with pytest.raises(ShapeError, match=r"\(B, 3, H, W\)"):
        ResNet(depth=18)(torch.zeros(1, 4, 32, 32))
    with pytest.raises(ShapeError, match="64 values"):
        MLP(in_features=64)(torch.zeros(2, 1, 7, 7))
    with pytest.raises(ShapeError, match="at least 28x28"):
        LeNet5()(torch.zeros(2, 1, 8, 8))
    assert ResNet(depth=18, out_indices=(-1,)).out_indices == (3,)


# ----------------------------------------------------------------------------------------- FPN
def _pyramid(channels: tuple[int, ...], sizes: list[tuple[int, int]], seed: int = 0) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, h, w, generator=gen, requires_grad=True) for c, (h, w) in zip(channels, sizes)]


@pytest.mark.parametrize(
    ("extra", "sizes", "expected"),
    [
        (False, [(16, 16), (8, 8), (4, 4), (2, 2)], [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]),
        ("on_input", [(16, 16), (8, 8), (4, 4), (2, 2)], [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]),
        ("on_lateral", [(16, 16), (8, 8), (4, 4), (2, 2)], [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]),
        ("on_output", [(16, 16), (8, 8), (4, 4), (2, 2)], [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]),
        # Odd sizes: the top-down pass upsamples to the exact finer size.
        (True, [(15, 13), (8, 7), (4, 4), (2, 2)], [(15, 13), (8, 7), (4, 4), (2, 2), (1, 1)]),
    ],
)
def test_fpn_shapes_and_gradients(
    extra: bool | str, sizes: list[tuple[int, int]], expected: list[tuple[int, int]]
) -> None:
    channels = (64, 128, 256, 512)
    neck = FPN(
        in_channels=channels, out_channels=32, num_outs=5, add_extra_convs=extra, in_strides=(4, 8, 16, 32)
    ).train()
    inputs = _pyramid(channels, sizes)
    outs = neck(inputs)
    assert [tuple(o.shape) for o in outs] == [(2, 32, *s) for s in expected]
    assert neck.out_channels == (32,) * 5
    assert neck.out_strides == (4, 8, 16, 32, 64)
    _backward(outs)
    for pname, p in neck.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in inputs)


def test_fpn_retinanet_p3_to_p7_from_a_resnet() -> None:
    backbone = ResNet(depth=18, out_indices=(1, 2, 3)).eval()
    neck = FPN(
        in_channels=backbone.out_channels,
        out_channels=16,
        num_outs=5,
        add_extra_convs="on_input",
        relu_before_extra_convs=True,
        in_strides=backbone.out_strides,
    ).eval()
    assert neck.extra_convs[0][0].in_channels == 512  # P6 reads C5
    assert neck.extra_convs[1][0].in_channels == 16  # P7 reads P6
    with torch.no_grad():
        outs = neck(backbone(_input((1, 3, 64, 64))))
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    assert neck.out_strides == (8, 16, 32, 64, 128)
    # P7 = conv(relu(P6)): recompute it by hand.
    p7 = neck.extra_convs[1](torch.relu(outs[3]))
    torch.testing.assert_close(p7, outs[4])


def test_fpn_top_down_pathway_by_hand() -> None:
    neck = FPN(in_channels=(4, 8), out_channels=6, num_outs=3).eval()
    inputs = [t.detach() for t in _pyramid((4, 8), [(4, 4), (2, 2)])]
    with torch.no_grad():
        outs = neck(inputs)
        lat0 = neck.lateral_convs[0](inputs[0])
        lat1 = neck.lateral_convs[1](inputs[1])
        merged = lat0 + lat1.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        torch.testing.assert_close(outs[0], neck.fpn_convs[0](merged))
        torch.testing.assert_close(outs[1], neck.fpn_convs[1](lat1))
        torch.testing.assert_close(outs[2], outs[1][:, :, ::2, ::2])  # 1x1/2 max pool


def test_fpn_start_level_and_bad_arguments() -> None:
    neck = FPN(in_channels=(8, 16, 32), out_channels=8, num_outs=2, start_level=1)
    outs = neck(_pyramid((8, 16, 32), [(8, 8), (4, 4), (2, 2)]))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 4, 4), (2, 8, 2, 2)]
    with pytest.raises(FormatError, match="num_outs"):
        FPN(in_channels=(8, 16), out_channels=8, num_outs=1)
    with pytest.raises(FormatError, match="add_extra_convs"):
        FPN(in_channels=(8, 16), out_channels=8, num_outs=3, add_extra_convs="on_top")
    with pytest.raises(ShapeError, match="2 inputs"):
        FPN(in_channels=(8, 16), out_channels=8, num_outs=2)(_pyramid((8,), [(4, 4)]))
    with pytest.raises(ShapeError, match="input 1"):
        FPN(in_channels=(8, 16), out_channels=8, num_outs=2)(_pyramid((8, 8), [(4, 4), (2, 2)]))
