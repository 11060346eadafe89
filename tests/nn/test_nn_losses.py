"""Losses against direct formulas and hand values; weighting, reductions and avg_factor."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import (  # the public path on purpose: pc3d.nn re-exports these
    CrossEntropyLoss,
    FocalLoss,
    GaussianFocalLoss,
    GIoULoss,
    L1Loss,
    SmoothL1Loss,
    bbox_overlaps,
    cross_entropy,
    gaussian_focal_loss,
    generalized_box_iou,
    giou_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
)


def _focal_direct(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    """The focal loss as printed in the paper, element by element in float64."""
    out = torch.zeros_like(logits, dtype=torch.float64)
    for n in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            p = 1 / (1 + math.exp(-float(logits[n, c])))
            if int(targets[n]) == c:
                out[n, c] = -alpha * (1 - p) ** gamma * math.log(p)
            else:
                out[n, c] = -(1 - alpha) * p**gamma * math.log(1 - p)
    return out


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, 0.25), (1.5, 0.5), (0.0, 0.75)])
def test_focal_loss_matches_the_direct_formula(gamma: float, alpha: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 5, generator=gen) * 3
    targets = torch.randint(0, 6, (12,), generator=gen)  # 5 = background
    targets[:2] = 5
    direct = _focal_direct(logits, targets, gamma, alpha)
    ours = sigmoid_focal_loss(logits, targets, gamma=gamma, alpha=alpha, reduction="none")
    torch.testing.assert_close(ours.double(), direct, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets, gamma=gamma, alpha=alpha, reduction="sum").double(),
        direct.sum(),
        rtol=1e-5,
        atol=1e-6,
    )
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets, gamma=gamma, alpha=alpha).double(),
        direct.mean(),
        rtol=1e-5,
        atol=1e-6,
    )
    # avg_factor: sum / number of positives; per-sample weights scale rows.
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets, gamma=gamma, alpha=alpha, avg_factor=7.0).double(),
        direct.sum() / 7,
        rtol=1e-5,
        atol=1e-6,
    )
    weight = torch.rand(12, generator=gen)
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, targets, weight, gamma=gamma, alpha=alpha, reduction="sum").double(),
        (direct * weight.double()[:, None]).sum(),
        rtol=1e-5,
        atol=1e-6,
    )
    # One-hot float targets give the same loss as class indices.
    one_hot = F.one_hot(targets, 6)[:, :5].float()
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, one_hot, gamma=gamma, alpha=alpha, reduction="none"), ours
    )


def test_focal_loss_is_finite_for_extreme_logits_and_module_weight() -> None:
    logits = torch.tensor([[80.0, -80.0], [-80.0, 80.0]], requires_grad=True)
    targets = torch.tensor([1, 0])  # confidently wrong everywhere
    loss = sigmoid_focal_loss(logits, targets, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and loss > 100 and torch.isfinite(logits.grad).all()
    module = FocalLoss(gamma=2.0, alpha=0.25, loss_weight=2.0)
    torch.testing.assert_close(module(logits, targets, reduction_override="sum"), 2 * loss)
    with pytest.raises(FormatError, match="background"):
        sigmoid_focal_loss(logits, torch.tensor([0, 3]))


def test_gaussian_focal_loss_hand_values() -> None:
    # logit 0: p = 1/2, -log p = -log(1 - p) = log 2.
    # Centre (target 1): log 2 * (1 - 1/2)^2 = log 2 / 4.
    # Near it (target 1/2): log 2 * (1/2)^2 * (1 - 1/2)^4 = log 2 / 64.
    # Far (target 0): log 2 * (1/2)^2 = log 2 / 4.
    pred = torch.zeros(1, 1, 1, 3)
    target = torch.tensor([[[[1.0, 0.5, 0.0]]]])
    ln2 = math.log(2)
    per_element = torch.tensor([[[[ln2 / 4, ln2 / 64, ln2 / 4]]]])
    torch.testing.assert_close(gaussian_focal_loss(pred, target, reduction="none"), per_element)
    # "mean" divides by the number of centres (1 here), not by the 3 elements.
    torch.testing.assert_close(gaussian_focal_loss(pred, target), torch.tensor(ln2 * 33 / 64))
    torch.testing.assert_close(
        gaussian_focal_loss(pred, target, reduction="sum"), torch.tensor(ln2 * 33 / 64)
    )
    # Two centres halve the mean of the same sum; no centre at all divides by 1.
    two = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    torch.testing.assert_close(gaussian_focal_loss(pred, two), torch.tensor(ln2 * 3 / 4 / 2))
    torch.testing.assert_close(gaussian_focal_loss(pred, torch.zeros(1, 1, 1, 3)), torch.tensor(ln2 * 3 / 4))
    # Other exponents: alpha 1, gamma 2: log 2 / 2, log 2 * 1/2 * 1/4, log 2 / 2.
    torch.testing.assert_close(
        gaussian_focal_loss(pred, target, alpha=1.0, gamma=2.0, reduction="sum"),
        torch.tensor(ln2 * (1 / 2 + 1 / 8 + 1 / 2)),
    )
    # Weights, avg_factor and the module's loss_weight and reduction_override.
    weight = torch.tensor([[[[2.0, 0.0, 1.0]]]])
    torch.testing.assert_close(
        gaussian_focal_loss(pred, target, weight, avg_factor=4.0),
        torch.tensor(ln2 * 3 / 4 / 4),
        rtol=1e-5,
        atol=1e-6,
    )
    module = GaussianFocalLoss(loss_weight=0.5)
    torch.testing.assert_close(module(pred, target), torch.tensor(0.5 * ln2 * 33 / 64))
    torch.testing.assert_close(module(pred, target, reduction_override="none"), 0.5 * per_element)


def test_gaussian_focal_loss_is_finite_and_checks_shapes() -> None:
    target = torch.zeros(1, 2, 4, 4)
    target[0, 0, 1, 1] = 1.0
    target[0, 0, 1, 2] = 0.6
    good = torch.where(target == 1, 8.0, -8.0)
    assert float(gaussian_focal_loss(good, target)) < 1e-3
    wrong = (-good * 20).requires_grad_(True)  # confidently wrong everywhere, logits +-160
    loss = gaussian_focal_loss(wrong, target)
    loss.backward()
    assert torch.isfinite(loss) and loss > 100 and torch.isfinite(wrong.grad).all()
    with pytest.raises(
        ShapeError, match=r"gaussian_focal_loss: pred \(1, 2, 4, 4\) and target \(1, 1, 4, 4\)"
    ):
        gaussian_focal_loss(good, target[:, :1])
    with pytest.raises(ShapeError, match="one shape"):
        GaussianFocalLoss()(good, target.flatten())
    with pytest.raises(FormatError, match="reduction"):
        GaussianFocalLoss(reduction="avg")  # type: ignore[arg-type]


def test_cross_entropy_variants() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(10, 4, generator=gen)
    targets = torch.randint(0, 4, (10,), generator=gen)
    torch.testing.assert_close(cross_entropy(logits, targets), F.cross_entropy(logits, targets))
    # Label smoothing by hand: target distribution (1 - s) * onehot + s / C.
    s = 0.1
    q = (1 - s) * F.one_hot(targets, 4).float() + s / 4
    manual = -(q * logits.log_softmax(dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(cross_entropy(logits, targets, label_smoothing=s), manual)
    torch.testing.assert_close(CrossEntropyLoss(label_smoothing=s)(logits, targets), manual)
    # Ignored samples count nothing and the mean is over the others.
    ignored = targets.clone()
    ignored[:3] = -100
    torch.testing.assert_close(cross_entropy(logits, ignored), F.cross_entropy(logits[3:], targets[3:]))
    # Class and sample weights multiply each sample's loss.
    class_weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    weight = torch.rand(10, generator=gen)
    per_sample = F.cross_entropy(logits, targets, reduction="none") * class_weight[targets] * weight
    torch.testing.assert_close(
        cross_entropy(logits, targets, weight, class_weight, reduction="sum"), per_sample.sum()
    )
    torch.testing.assert_close(
        cross_entropy(logits, targets, weight, class_weight, avg_factor=4.0),
        per_sample.sum() / 4,
        rtol=1e-5,
        atol=1e-6,
    )
    module = CrossEntropyLoss(class_weight=[1.0, 2.0, 0.5, 3.0], loss_weight=0.5)
    torch.testing.assert_close(
        module(logits, targets, weight, reduction_override="sum"), 0.5 * per_sample.sum()
    )
    # Sigmoid (binary) form.
    binary = CrossEntropyLoss(use_sigmoid=True)
    t = (torch.rand(10, generator=gen) > 0.5).float()
    torch.testing.assert_close(binary(logits[:, 0], t), F.binary_cross_entropy_with_logits(logits[:, 0], t))
    with pytest.raises(FormatError, match="targets"):
        cross_entropy(logits, torch.full((10,), 4))


def test_smooth_l1_and_l1_hand_values() -> None:
    pred = torch.tensor([0.0, 0.0, 0.0, 0.0])
    target = torch.tensor([0.5, -2.0, 1.0, 0.0])
    # beta 1: 0.5 * 0.25 = 0.125; 2 - 0.5 = 1.5; |1| is not < 1: 1 - 0.5 = 0.5; 0.
    torch.testing.assert_close(
        smooth_l1_loss(pred, target, reduction="none"), torch.tensor([0.125, 1.5, 0.5, 0.0])
    )
    # beta 0.5: 0.5 - 0.25 = 0.25; 2 - 0.25 = 1.75; 1 - 0.25 = 0.75.
    torch.testing.assert_close(
        SmoothL1Loss(beta=0.5, reduction="none")(pred, target), torch.tensor([0.25, 1.75, 0.75, 0.0])
    )
    torch.testing.assert_close(SmoothL1Loss(beta=0.0, reduction="sum")(pred, target), torch.tensor(3.5))
    torch.testing.assert_close(L1Loss()(pred, target), torch.tensor(3.5 / 4))
    torch.testing.assert_close(
        L1Loss(loss_weight=2.0)(pred, target, avg_factor=2.0), torch.tensor(3.5), rtol=1e-5, atol=1e-6
    )
    weight = torch.tensor([1.0, 0.0, 2.0, 1.0])
    torch.testing.assert_close(L1Loss(reduction="sum")(pred, target, weight), torch.tensor(0.5 + 2.0))
    with pytest.raises(FormatError, match="avg_factor"):
        L1Loss(reduction="sum")(pred, target, avg_factor=2.0)
    with pytest.raises(ShapeError, match="one shape"):
        L1Loss()(pred, target[:3])


def test_giou_hand_values() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 3.0, 4.0]])
    # Overlap 1, union 7, hull 9: 1/7 - 2/9 = -5/63. Disjoint, union 2, hull 3: -1/3. Identical: 1.
    expected = torch.tensor([-5 / 63, -1 / 3, 1.0])
    torch.testing.assert_close(bbox_overlaps(a, b, "giou", aligned=True), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(giou_loss(a, b, reduction="none"), 1 - expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        GIoULoss(loss_weight=2.0, reduction="sum")(a, b), 2 * (1 - expected).sum(), rtol=1e-5, atol=1e-6
    )
    pairwise = generalized_box_iou(a, b)
    assert pairwise.shape == (3, 3)
    torch.testing.assert_close(pairwise.diagonal(), expected, rtol=1e-5, atol=1e-6)
    # a0 vs b2: overlap [1,2]x[1,2] = 1, union 4 + 6 - 1 = 9, hull [0,3]x[0,4] = 12: 1/9 - 3/12.
    torch.testing.assert_close(pairwise[0, 2], torch.tensor(1 / 9 - 3 / 12), rtol=1e-5, atol=1e-6)
    # IoU and IoF of the same pair.
    torch.testing.assert_close(bbox_overlaps(a[:1], b[2:]), torch.tensor([[1 / 9]]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        bbox_overlaps(a[:1], b[2:], "iof"), torch.tensor([[1 / 4]]), rtol=1e-5, atol=1e-6
    )
    # GIoU loss gives a gradient even for disjoint boxes (the reason it exists).
    pred = a[1:2].clone().requires_grad_(True)
    giou_loss(pred, b[1:2]).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
