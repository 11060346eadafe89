"""Segmentation IoU/mIoU: a case worked by hand, accumulation over batches and over two real
``torch.distributed`` (gloo) ranks, and bad input."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation.seg import SegConfusion, SegMIoUMetric, seg_scores

TARGET = torch.tensor([0, 0, 1, 1, 2, -1])
PRED = torch.tensor([0, 1, 1, 1, 0, 2])
# counted points (the -1 is ignored): confusion rows = truth, columns = prediction
CONFUSION = [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_hand_worked_confusion_and_scores() -> None:
    conf = SegConfusion(3, ignore_index=-1, class_names=["road", "car", "tree"])
    conf.add(PRED, TARGET)
    assert conf.matrix.tolist() == CONFUSION
    r = conf.result()
    # IoU = TP / (row + column - TP): 1/(2+2-1), 2/(2+3-2), 0/(1+0-0)
    np.testing.assert_allclose(r.iou, [1 / 3, 2 / 3, 0.0])
    assert r.miou == pytest.approx(1 / 3)
    assert r.acc == pytest.approx(3 / 5)
    assert r.acc_cls == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert r.to_dict() == pytest.approx(
        {"road": 1 / 3, "car": 2 / 3, "tree": 0.0, "miou": 1 / 3, "acc": 3 / 5, "acc_cls": 1 / 2}
    )


def test_batches_accumulate_and_absent_classes_are_left_out() -> None:
    whole = SegConfusion(4, ignore_index=-1)
    whole.add(PRED, TARGET)
    parts = SegConfusion(4, ignore_index=-1)
    for k in range(0, 6, 2):
        parts.add(PRED[k : k + 2], TARGET[k : k + 2])
    assert torch.equal(whole.matrix, parts.matrix)
    r = parts.result()
    assert math.isnan(r.iou[3])  # class 3 is neither in the truth nor predicted
    assert r.miou == pytest.approx(1 / 3)  # the mean of the three others


def test_ignore_index_inside_the_class_range() -> None:
    conf = SegConfusion(3, ignore_index=0)
    conf.add(torch.tensor([1, 1, 2, 0]), torch.tensor([0, 1, 2, 2]))
    r = conf.result()
    assert math.isnan(r.iou[0])  # as MMDetection3D: the ignored class has no IoU
    np.testing.assert_allclose(r.iou[1:], [1.0, 0.5])
    assert r.miou == pytest.approx(0.75)


def test_engine_metric_state_and_merge() -> None:
    metric = SegMIoUMetric(3, ignore_index=-1)
    metric.update([PRED[:3], PRED[3:]], {"labels": [TARGET[:3], TARGET[3:]]})
    other = SegMIoUMetric(3, ignore_index=-1)
    other.update(PRED, {"labels": TARGET})
    metric.merge([metric.state(), other.state()])
    out = metric.compute()
    assert out["miou"] == pytest.approx(1 / 3)  # twice the same counts: same scores
    assert np.array_equal(metric.state(), 2 * np.array(CONFUSION))
    metric.reset()
    assert metric.state().sum() == 0


@pytest.mark.parametrize(
    ("pred", "target", "error", "message"),
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), FormatError, "pred holds class 3, outside 0..2"),
        (torch.tensor([0, 1]), torch.tensor([0, 7]), FormatError, "target holds class 7"),
        (torch.tensor([0, 1]), torch.tensor([0, 1, 2]), ShapeError, "pred has shape"),
        (torch.tensor([0.2, 0.8]), torch.tensor([0, 1]), FormatError, "not floats"),
    ],
)
def test_bad_input(pred: torch.Tensor, target: torch.Tensor, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SegConfusion(3, ignore_index=-1).add(pred, target)
    with pytest.raises(FormatError, match="the batch has no 'labels'"):
        SegMIoUMetric(3).update([pred], {})
    with pytest.raises(ShapeError, match="square"):
        seg_scores(np.zeros((2, 3)))


def _rank(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        metric = SegMIoUMetric(3, ignore_index=-1)
        half = slice(0, 3) if rank == 0 else slice(3, 6)
        metric.update([PRED[half]], {"labels": [TARGET[half]]})
        out = metric.compute()  # all_reduce across both ranks
        local = metric.confusion.matrix.tolist()  # left as it was
        torch.save({"out": out, "local": local}, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


def test_confusion_is_summed_across_distributed_ranks(tmp_path: Path) -> None:
    # fork: the children reuse the imported torch instead of importing it again (seconds each)
    context = mp.start_processes(
        _rank,
        args=(2, str(tmp_path / "init"), str(tmp_path / "out")),
        nprocs=2,
        join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):  # raises if a rank failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two gloo ranks did not finish within 120 s")
    single = SegConfusion(3, ignore_index=-1)
    single.add(PRED, TARGET)
    expected = single.result().to_dict()
    locals_ = []
    for rank in range(2):
        saved = torch.load(f"{tmp_path / 'out'}.{rank}", weights_only=True)
        assert saved["out"] == pytest.approx(expected)
        locals_.append(np.array(saved["local"]))
    assert np.array_equal(locals_[0] + locals_[1], np.array(CONFUSION))
    assert not np.array_equal(locals_[0], np.array(CONFUSION))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_confusion_on_cuda_matches_cpu() -> None:
    conf = SegConfusion(3, ignore_index=-1)
    conf.add(PRED.cuda(), TARGET.cuda())
    assert conf.matrix.device.type == "cuda"
    assert conf.matrix.cpu().tolist() == CONFUSION
