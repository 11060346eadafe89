"""RPN proposals computed the plain way, per image and per level, for the tests and the nn benchmark
to compare ``RPNHead.get_proposals`` with."""

from __future__ import annotations

import torch
from torch import Tensor

from pc3d.nn import RPNHead
from pc3d.ops import nms_2d


def reference_proposals(
    head: RPNHead, scores: list[Tensor], deltas: list[Tensor], sizes: list[tuple[int, int]]
) -> list[Tensor]:
    """Per image and per level: top-k, decode, clip, filter, NMS; then merge and keep the best."""
    featmaps = [tuple(s.shape[-2:]) for s in scores]
    anchors = head.anchor_generator.grid_anchors(featmaps, device=scores[0].device)
    coder = head.bbox_coder
    out = []
    for b, size in enumerate(sizes):
        boxes_all, scores_all = [], []
        for s, d, a in zip(scores, deltas, anchors):
            prob = s[b].permute(1, 2, 0).reshape(-1).sigmoid()
            delta = d[b].permute(1, 2, 0).reshape(-1, 4)
            top, idx = prob.topk(min(head.nms_pre, prob.numel()))
            boxes = coder.decode(a[idx], delta[idx], max_shape=size)
            wh = boxes[:, 2:] - boxes[:, :2]
            ok = (wh > head.min_bbox_size).all(dim=1)
            boxes, top = boxes[ok], top[ok]
            keep = nms_2d(boxes, top, head.iou_threshold)
            boxes_all.append(boxes[keep])
            scores_all.append(top[keep])
        boxes, sc = torch.cat(boxes_all), torch.cat(scores_all)
        order = torch.sort(sc, descending=True, stable=True).indices[: head.max_per_img]
        out.append(torch.cat([boxes[order], sc[order, None]], dim=1))
    return out
