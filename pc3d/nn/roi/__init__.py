"""RoI Align (He et al., 2017) and RoI Pool (Girshick, 2015), vectorised in plain torch.

Both take a feature map `Tensor[B, C, H, W]` and RoIs `Tensor[K, 5]` rows `(batch_index, x1, y1,
x2, y2)` in input-image coordinates (or a list of per-image `Tensor[K_i, 4]`), scale the RoIs by
`spatial_scale` (1 / the map's stride) and return `Tensor[K, C, ph, pw]`. They reproduce the
reference CUDA/C++ kernels of torchvision (and so Detectron2 / MMCV) value for value:

RoI Align. A feature value `F[r, c]` sits at the continuous point `(c, r)` of the scaled RoI frame.
`aligned=True` shifts the scaled RoI by -0.5, so that pixel `c` covers `[c, c + 1)` and its centre
`c + 0.5` maps onto the feature value `c` (the pixel-centre convention; the right one, used by
Detectron2 and MMDetection >= 2). `aligned=False` is the original paper's (Mask R-CNN) version:
no shift, and RoIs are widened to at least 1x1. Each output bin averages `gh x gw` bilinear samples
at the centres of a regular grid inside the bin, `gh = sampling_ratio` or, when
`sampling_ratio <= 0`, `ceil(roi_height / ph)` (per RoI). A sample outside `[-1, H] x [-1, W]`
counts 0; inside, coordinates are clamped to the map before interpolation.

RoI Pool. RoI corners are rounded to feature cells (half away from zero), the RoI spans
`round(x2) - round(x1) + 1` cells (at least 1), and bin `i` covers rows
`[floor(i * h / ph), ceil((i + 1) * h / ph))` (clipped to the map); its value is the maximum there,
or 0 for an empty bin. Gradients go to the arg-max cells.

Layout: the argument checks and the scaling of the RoIs in :mod:`pc3d.nn.roi.inputs`, the bags'
grouping and reduction shared by both operations in :mod:`pc3d.nn.roi.bags`, RoI Align in
:mod:`pc3d.nn.roi.align`, RoI Pool in :mod:`pc3d.nn.roi.pool`.
"""

from pc3d.nn.roi.align import RoIAlign, roi_align
from pc3d.nn.roi.pool import RoIPool, roi_pool

__all__ = ["RoIAlign", "RoIPool", "roi_align", "roi_pool"]
