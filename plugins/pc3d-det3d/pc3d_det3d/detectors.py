"""3D detectors assembled from registered parts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import ShapeError
from pc3d.nn.labels import model_class_names
from pc3d.structures import LiDARBoxes3D, LiDARPoints
from pc3d_det3d.heads import CenterHeadBase, CenterHeadOutput
from pc3d_det3d.structures import BEVGrid, Detections3D


class BEVDetector(nn.Module):
    """Points -> BEV map (voxel encoder) -> features (backbone) -> boxes (CenterPoint-style head).

    The parts are any registered components with these attributes:

    - ``voxel_encoder``: ``grid`` (a :class:`BEVGrid`), ``out_channels``;
      ``forward(points: list[Tensor[N_i, C]]) -> Tensor[B, out_channels, ny, nx]``;
    - ``backbone``: ``in_channels``, ``out_channels``, ``out_stride``;
    - ``head``: a :class:`CenterHeadBase` with ``in_channels``.

    Channel counts and strides are checked when the detector is built. Point clouds and boxes
    are :class:`LiDARPoints` / :class:`LiDARBoxes3D` (what ``KittiDataset`` gives) or plain
    tensors in the same layout.

    Args:
        voxel_encoder: points -> BEV map.
        backbone: BEV map -> features.
        head: features -> heatmap and box regression.
        class_names: class of each label index (outputs, evaluation, checkpoints); as many as the
            head's ``num_classes``. Default ``"0"``, ``"1"``, ...

    Attributes:
        grid: the grid of the head's output (the encoder's grid, downsampled by the backbone).
        class_names: the classes, by label index.

    Raises:
        TypeError: an encoder without a BEV ``grid`` or a backbone without the attributes above.
        ShapeError: channel counts that do not chain.
        FormatError: ``class_names`` of another length than the head's ``num_classes``.
    """

    def __init__(
        self,
        voxel_encoder: nn.Module,
        backbone: nn.Module,
        head: CenterHeadBase,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.class_names = model_class_names(class_names, head.num_classes)
        grid = getattr(voxel_encoder, "grid", None)
        if not isinstance(grid, BEVGrid):
            raise TypeError(
                f"voxel_encoder {type(voxel_encoder).__name__} has no BEV `grid`; BEVDetector "
                "needs an encoder that outputs a BEV map"
            )
        for attribute in ("in_channels", "out_channels", "out_stride"):
            if not hasattr(backbone, attribute):
                raise TypeError(f"backbone {type(backbone).__name__} has no `{attribute}`")
        if backbone.in_channels != getattr(voxel_encoder, "out_channels", None):
            raise ShapeError(
                f"backbone.in_channels is {backbone.in_channels} but voxel_encoder.out_channels "
                f"is {getattr(voxel_encoder, 'out_channels', None)}"
            )
        if head.in_channels != backbone.out_channels:
            raise ShapeError(
                f"head.in_channels is {head.in_channels} but backbone.out_channels is {backbone.out_channels}"
            )
        self.voxel_encoder = voxel_encoder
        self.backbone = backbone
        self.head = head
        stride: int = backbone.out_stride  # type: ignore[assignment]  # checked above to exist
        self.grid: BEVGrid = grid.downsample(int(stride))

    def forward(self, points: Sequence[LiDARPoints | Tensor]) -> CenterHeadOutput:
        """The head's raw output.

        Args:
            points: one cloud ``[N_i, C]`` per sample (LiDAR x, y, z, extra features).

        Returns:
            Heatmap ``Tensor[B, K, ny, nx]`` and regression ``Tensor[B, 8, ny, nx]`` over
            :attr:`grid`.
        """
        return self.head(self.backbone(self.voxel_encoder(points)))

    # The engine's loss contract, as VoxelDetector.loss declares it; only the body (the head here
    # needs the BEV grid) differs.
    def loss(
        self,
        points: Sequence[LiDARPoints | Tensor],
        gt_boxes: Sequence[LiDARBoxes3D | Tensor],
        gt_labels: Sequence[Tensor],
    ) -> dict[str, Tensor]:
        """Training losses.

        Args:
            points: one cloud ``[N_i, C]`` per sample.
            gt_boxes: per sample :class:`LiDARBoxes3D` ``[M_i, 7]`` (bottom centre).
            gt_labels: per sample ``Long[M_i]`` in ``[0, head.num_classes)``.

        Returns:
            The head's losses; ``loss`` is the total to back-propagate.
        """
        return self.head.loss(self(points), gt_boxes, gt_labels, self.grid)

    @torch.no_grad()
    def predict(
        self, points: Sequence[LiDARPoints | Tensor], score_threshold: float = 0.1, max_detections: int = 100
    ) -> list[Detections3D]:
        """Detections per sample.

        Args:
            points: one cloud ``[N_i, C]`` per sample.
            score_threshold: the lowest score kept.
            max_detections: the most detections per sample.

        Returns:
            One :class:`Detections3D` (boxes in the LiDAR frame) per sample.
        """
        return self.head.predict(self(points), self.grid, score_threshold, max_detections)
