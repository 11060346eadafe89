"""LiDAR detections as KITTI result records (``label_2`` lines with a score).

A 3D detector outputs LiDAR boxes; the KITTI protocol, ``pc3d kitti-eval`` and the KITTI
benchmark read camera-frame records with a 2D box on image 2 and the observation angle. The
conversion needs the frame's calibration:

- 3D box: LiDAR -> rectified camera with ``R0_rect @ Tr_velo_to_cam`` (yaw carried through the
  matrix), KITTI's ``h w l`` and bottom-centre location;
- 2D box: the 3D box projected with ``P2``, clipped to the image (``image_size``, KITTI's
  1242 x 375 when unknown);
- alpha: ``rotation_y - atan2(x, z)`` of the camera-frame centre, wrapped to ``[-pi, pi)``.

As MMDetection3D's ``KittiMetric`` (``convert_valid_bboxes``) and its KITTI submission files, only
detections the KITTI protocol can see are written: those whose 3D box projects into image 2 and
whose bottom centre lies strictly inside :data:`KITTI_LIMIT_RANGE` (LiDAR frame). The others can
never match a labelled object, all of which are in the image, and would count as false positives
of the BEV and 3D metrics; ``keep_all=True`` writes every detection (those outside the image
with a 2D box of zeros).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.kitti.calib import KittiCalib, lidar_to_camera_boxes
from pc3d.io.kitti.labels import KittiLabels
from pc3d.io.kitti.projection import project_boxes_to_image
from pc3d.structures import Detections3D

__all__ = ["DEFAULT_IMAGE_SIZE", "KITTI_LIMIT_RANGE", "detections_to_kitti_labels"]

#: (width, height) of KITTI's image 2, used when a frame's image size is unknown.
DEFAULT_IMAGE_SIZE = (1242, 375)
#: LiDAR-frame range of the bottom centres kept (MMDetection3D's ``pcd_limit_range``).
KITTI_LIMIT_RANGE = (0.0, -40.0, -3.0, 70.4, 40.0, 0.0)


def detections_to_kitti_labels(
    detections: Detections3D,
    class_names: Sequence[str],
    calib: KittiCalib,
    image_size: tuple[int, int] | None = None,
    keep_all: bool = False,
) -> KittiLabels:
    """KITTI result records (float64, with scores) of one frame's LiDAR detections.

    Args:
        detections: the frame's detections (LiDAR boxes, scores, labels).
        class_names: the model's classes; ``labels`` index them.
        calib: the frame's calibration.
        image_size: ``(width, height)`` of image 2 (default :data:`DEFAULT_IMAGE_SIZE`).
        keep_all: write every detection, also those the protocol cannot see (module doc).

    Returns:
        One record per kept detection, in the detections' order.

    Raises:
        FormatError: a label outside ``class_names``.
    """
    count = len(detections)
    labels = detections.labels.detach().cpu().numpy().astype(np.int64)
    if count and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise FormatError(
            f"detection labels must index class_names {list(class_names)}, got {sorted(set(labels.tolist()))}"
        )
    cam = lidar_to_camera_boxes(detections.boxes.to("cpu"), calib)
    projection = project_boxes_to_image(cam, calib.cam_to_img, image_size or DEFAULT_IMAGE_SIZE)
    keep = np.ones(count, dtype=bool)
    if not keep_all:
        bottom = detections.boxes.tensor[:, :3].detach().cpu().numpy()
        low, high = np.asarray(KITTI_LIMIT_RANGE[:3]), np.asarray(KITTI_LIMIT_RANGE[3:])
        keep = projection.visible & ((bottom > low) & (bottom < high)).all(axis=1)
        count = int(keep.sum())
    labels = labels[keep]
    tensor = cam.tensor.detach().numpy().astype(np.float64).reshape(-1, 7)[keep]
    bbox2d = np.nan_to_num(projection.boxes2d, nan=0.0)[keep]
    alpha = tensor[:, 6] - np.arctan2(tensor[:, 0], tensor[:, 2])
    alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
    return KittiLabels(
        types=np.asarray([class_names[i] for i in labels], dtype=str).reshape(count),
        truncated=np.zeros(count),
        occluded=np.zeros(count, dtype=np.int64),
        alpha=alpha,
        bbox2d=bbox2d.reshape(count, 4),
        # CameraBoxes3D sizes are l, h, w; KITTI writes h, w, l.
        dims_hwl=tensor[:, [4, 5, 3]],
        location=tensor[:, :3],
        rotation_y=tensor[:, 6],
        score=detections.scores.detach().cpu().numpy().astype(np.float64).reshape(-1)[keep],
        line_numbers=np.arange(1, count + 1, dtype=np.int64),
    )
