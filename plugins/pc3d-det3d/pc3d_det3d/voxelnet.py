"""Voxel-based single-stage detectors: PointPillars and SECOND (MMDetection3D's ``VoxelNet``).

One frame's way through the detector, each arrow one call::

    points Tensor[N, 4]  --hard_voxelize-->  voxels [V, M, 4], coords [V, 4] (batch, z, y, x)
      --voxel_encoder-->  [V, C]            (PillarFeatureNet | HardSimpleVFE)
      --middle_encoder--> [B, C', H, W]     (PointPillarsScatter | SparseEncoder on spconv)
      --backbone-->       3 maps            (SECONDBackbone: strided conv stages)
      --neck-->           [B, C'', H', W']  (SECONDFPN: up-sampled and concatenated)
      --head-->           raw outputs       (Anchor3DHead | CenterPointHead) --> Detections3D per frame

PointPillars: pillars of ``0.16 x 0.16 x 4`` m, the pillar feature net and the BEV scatter.
SECOND: voxels of ``0.05 x 0.05 x 0.1`` m, their mean and the sparse 3D encoder. Both then share
the SECOND backbone, the SECOND FPN and the anchor head (CenterPoint: the centre head instead).
The detector gives its head the class count (``len(class_names)``) and the neck's output
channels (:class:`BBoxHead`), so configs write neither. The module names (``voxel_encoder``,
``middle_encoder``, ``backbone``, ``neck``, ``bbox_head``) are MMDetection3D's, so a checkpoint
of its PointPillars or SECOND maps onto this model key for key (see
:mod:`pc3d.nn.checkpoint_mmdet3d`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import hard_voxelize
from pc3d.structures import LiDARBoxes3D, LiDARPoints
from pc3d_det3d.structures import Detections3D, lidar_box_tensor, lidar_point_tensor

__all__ = ["BBoxHead", "VoxelDetector", "VoxelSettings"]


class BBoxHead(Protocol):
    """What :class:`VoxelDetector` needs of its ``bbox_head`` (an ``nn.Module``):
    :class:`~pc3d_det3d.anchor_head.Anchor3DHead`, :class:`~pc3d_det3d.center_head.CenterPointHead`
    or any head with these members.

    A head may leave its class and channel counts to the detector: any head with a
    ``complete(num_classes, in_channels)`` method (both heads above) gets them from
    :class:`VoxelDetector` (``len(class_names)``, the neck's output channels), which builds its
    layers. Counts a head already has are checked against the same values first, so an error
    names the config key that disagrees.

    Attributes:
        num_classes: classes the head predicts (checked against ``class_names``); may be absent
            until ``complete`` when the head has that method.
        in_channels: optional; channels the head reads (checked against the neck's).
        classes_key: optional; the config key the head's ``num_classes`` comes from (e.g.
            ``model.bbox_head.class_names``), named in errors; default
            ``model.bbox_head.num_classes``.
        class_names: optional; the head's own class list, which must equal the model's.
    """

    num_classes: int

    def __call__(self, features: Tensor) -> Any:
        """The raw output for the neck's map ``Tensor[B, C, H, W]``."""

    def loss(self, output: Any, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]) -> dict[str, Tensor]:
        """Training losses of a batch; ``loss`` is their total."""

    def predict(self, output: Any) -> list[Detections3D]:
        """Detections per frame."""


@dataclass(frozen=True)
class VoxelSettings:
    """Hard voxelization of a detector (MMDetection3D's ``voxel_layer``).

    Attributes:
        voxel_size: ``(x, y, z)`` metres.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``; points outside are
            dropped.
        max_num_points: points kept per voxel.
        max_voxels: voxels kept per frame ``(training, inference)``.
    """

    voxel_size: tuple[float, float, float]
    point_cloud_range: tuple[float, float, float, float, float, float]
    max_num_points: int
    max_voxels: tuple[int, int]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> VoxelSettings:
        known = ("voxel_size", "point_cloud_range", "max_num_points", "max_voxels")
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise FormatError(f"model.voxel: unknown key(s) {unknown}; known: {', '.join(known)}")
        missing = [k for k in known if k not in values]
        if missing:
            raise FormatError(f"model.voxel: missing {', '.join(missing)}")
        max_voxels = values["max_voxels"]
        pair = (
            (int(max_voxels), int(max_voxels))
            if isinstance(max_voxels, (int, float))
            else tuple(int(v) for v in max_voxels)
        )
        if len(pair) != 2:
            raise FormatError(
                f"model.voxel.max_voxels: give one number or (training, inference), got {max_voxels!r}"
            )
        size = tuple(float(v) for v in values["voxel_size"])
        rng = tuple(float(v) for v in values["point_cloud_range"])
        if len(size) != 3 or len(rng) != 6:
            raise FormatError(
                f"model.voxel: voxel_size needs 3 numbers and point_cloud_range 6, got {size}, {rng}"
            )
        return cls(size, rng, int(values["max_num_points"]), pair)  # type: ignore[arg-type]

    def grid_shape(self) -> tuple[int, int, int]:
        """Voxels along ``(z, y, x)``."""
        cells = [
            (self.point_cloud_range[i + 3] - self.point_cloud_range[i]) / self.voxel_size[i] for i in range(3)
        ]
        return (round(cells[2]), round(cells[1]), round(cells[0]))


class VoxelDetector(nn.Module):
    """PointPillars / SECOND detector (see the module docstring).

    Args:
        voxel: :class:`VoxelSettings` as a mapping.
        voxel_encoder: ``forward(voxels [V, M, C], num_points [V], coords [V, 4]) -> [V, C']``.
        middle_encoder: ``forward(features [V, C'], coords [V, 4], batch_size) -> [B, C'', H, W]``.
        backbone: ``forward(map) -> tuple of maps``.
        neck: ``forward(maps) -> Tensor[B, C, H', W']``.
        bbox_head: a :class:`BBoxHead`. Its ``num_classes`` defaults to ``len(class_names)`` and
            its ``in_channels`` to the neck's output channels (``sum(neck.out_channels)`` of
            SECONDFPN's config); counts the head was given (and its own ``class_names``) must
            equal these.
        class_names: class of each label index (for outputs and logs); default the head's
            ``class_names`` if it has them, else ``"0"``, ``"1"``, ... for its ``num_classes``.
        channels_last: run the BEV maps channels-last (:func:`pc3d.nn.fuse.to_channels_last`):
            the same outputs, a faster step on CPUs. Checkpoints are unaffected.
    """

    def __init__(
        self,
        voxel: Mapping[str, Any],
        voxel_encoder: nn.Module,
        middle_encoder: nn.Module,
        backbone: nn.Module,
        neck: nn.Module,
        bbox_head: BBoxHead,
        class_names: Sequence[str] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.voxel = VoxelSettings.from_mapping(voxel)
        self.voxel_encoder = voxel_encoder
        self.middle_encoder = middle_encoder
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = bbox_head
        self.class_names = _class_names(class_names, bbox_head)
        channels = _neck_channels(neck)
        head_channels = getattr(bbox_head, "in_channels", None)
        if head_channels is not None and channels is not None and head_channels != channels:
            raise FormatError(
                f"model.bbox_head.in_channels is {head_channels} but model.neck outputs {channels} channels "
                "(the sum of model.neck.out_channels); leave in_channels out to take the neck's"
            )
        complete = getattr(bbox_head, "complete", None)
        if callable(complete):
            if channels is None and head_channels is None:
                raise FormatError(
                    f"model.bbox_head.in_channels: not given, and model.neck ({type(neck).__name__}) has no "
                    "int out_channels to take it from; set it"
                )
            complete(len(self.class_names), channels if channels is not None else head_channels)
        if channels_last:
            from pc3d.nn.fuse import to_channels_last

            to_channels_last(self)

    # -- stages ------------------------------------------------------------------------------

    def voxelize(self, points: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Hard voxels of a batch: ``voxels [V, M, C]``, ``num_points [V]``, ``coords [V, 4]``
        as ``(batch index, z, y, x)``."""
        limit = self.voxel.max_voxels[0 if self.training else 1]
        voxels, counts, coords = [], [], []
        for index, cloud in enumerate(points):  # one voxelization per frame of the batch
            result = hard_voxelize(
                cloud, self.voxel.voxel_size, self.voxel.point_cloud_range, self.voxel.max_num_points, limit
            )
            voxels.append(result.voxels)
            counts.append(result.num_points)
            batch = torch.full(
                (result.coords.shape[0], 1), index, dtype=result.coords.dtype, device=result.coords.device
            )
            coords.append(torch.cat([batch, result.coords], dim=1))
        return torch.cat(voxels), torch.cat(counts), torch.cat(coords)

    def extract_features(self, points: Sequence[LiDARPoints | Tensor]) -> Tensor:
        """The neck's BEV map ``Tensor[B, C, H, W]`` of a batch of frames."""
        if len(points) == 0:
            raise ShapeError("a batch needs at least one frame")
        device = next(self.parameters()).device
        clouds = [
            lidar_point_tensor(p, f"points[{i}]").to(device=device, dtype=torch.float32)
            for i, p in enumerate(points)
        ]
        voxels, num_points, coords = self.voxelize(clouds)
        features = self.voxel_encoder(voxels, num_points, coords)
        bev = self.middle_encoder(features, coords, len(clouds))
        return self.neck(self.backbone(bev))

    def forward(self, points: Sequence[LiDARPoints | Tensor]) -> Any:
        """Raw head outputs of a batch (e.g. :class:`~pc3d_det3d.anchor_head.AnchorHeadOutput`)."""
        return self.bbox_head(self.extract_features(points))

    # -- the engine's model contract ----------------------------------------------------------

    def loss(
        self,
        points: Sequence[LiDARPoints | Tensor],
        gt_boxes: Sequence[LiDARBoxes3D | Tensor],
        gt_labels: Sequence[Tensor],
    ) -> dict[str, Tensor]:
        """Training losses of a batch (``loss`` is their sum).

        Args:
            points: per frame LiDAR points (x, y, z, intensity).
            gt_boxes: per frame LiDAR boxes (bottom centre).
            gt_labels: per frame class indices.
        """
        boxes = [lidar_box_tensor(b, f"gt_boxes[{i}]")[:, :7] for i, b in enumerate(gt_boxes)]
        return self.bbox_head.loss(self(points), boxes, list(gt_labels))

    @torch.no_grad()
    def predict(self, points: Sequence[LiDARPoints | Tensor]) -> list[Detections3D]:
        """Detections per frame: LiDAR boxes (bottom centre), scores and labels, best first."""
        features = self.extract_features(points)
        from_features = getattr(self.bbox_head, "predict_features", None)
        if callable(from_features):  # a head that may skip work it does not need (both heads)
            return from_features(features)
        return self.bbox_head.predict(self.bbox_head(features))

    # -- inference speed ----------------------------------------------------------------------

    def optimize_for_inference(self, channels_last: bool = True) -> VoxelDetector:
        """A copy for fast inference: eval mode, every batch norm folded into its conv/linear,
        channels-last BEV maps (see :func:`pc3d.nn.fuse.optimize_for_inference`).

        Its outputs equal this model's in eval mode (to float rounding); it cannot train, and
        this model is left as it was.

        Args:
            channels_last: also run the BEV backbone, neck and head channels-last.

        Returns:
            The optimised :class:`VoxelDetector`.
        """
        from pc3d.nn.fuse import optimize_for_inference  # the generic pass; kept out of import time

        fast = optimize_for_inference(self, channels_last)
        assert isinstance(fast, VoxelDetector)
        return fast


def _class_names(class_names: Sequence[str] | None, bbox_head: BBoxHead) -> list[str]:
    """The detector's classes: ``class_names``, else the head's ``class_names``, else one per
    class of the head (``"0"``, ...); their count and the head's ``num_classes`` (if it has one)
    must agree, and so must the head's ``class_names`` (if it has them)."""
    count: int | None = getattr(bbox_head, "num_classes", None)
    source = getattr(bbox_head, "classes_key", None) or "model.bbox_head.num_classes"
    head_names = getattr(bbox_head, "class_names", None)
    if class_names is None and head_names is not None:
        return list(head_names)
    if class_names is None:
        if count is None:
            raise FormatError(
                "model.class_names: not given, and model.bbox_head has no num_classes either; set class_names"
            )
        return [str(i) for i in range(count)]
    names = list(class_names)
    if count is not None and len(names) != count:
        what = f"lists {count}" if source.endswith("class_names") else f"is {count}"
        raise FormatError(f"model.class_names lists {len(names)} classes but {source} {what}")
    if head_names is not None and list(head_names) != names:
        raise FormatError(
            f"model.bbox_head.class_names is {list(head_names)} but model.class_names is {names}; "
            "the head's classes must be the model's, in the same order"
        )
    return names


def _neck_channels(neck: nn.Module) -> int | None:
    """Channels of the neck's output map: its ``out_channels`` (SECONDFPN's is the sum of its
    levels'), summed if a list; ``None`` when it has none."""
    channels = getattr(neck, "out_channels", None)
    if isinstance(channels, int):
        return channels
    if isinstance(channels, Sequence) and channels and all(isinstance(c, int) for c in channels):
        return sum(channels)
    return None
