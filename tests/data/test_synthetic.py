"""Synthetic LiDAR scenes: determinism, the sensor's ring structure, occlusion, KITTI output."""

from __future__ import annotations

import numpy as np
import pytest

from pc3d.data.synthetic import LidarSensor, SceneSettings, generate_frame, write_synthetic_kitti
from pc3d.data.synthetic.scene import GROUND, SEMANTIC_CLASSES
from pc3d.data.synthetic.sensor import _hit_boxes, azimuth_of, elevation_of, ring_elevations
from pc3d.errors import FormatError


def test_same_seed_same_scene_and_scenes_independent_of_count() -> None:
    a, b = generate_frame(3, 5), generate_frame(3, 5)
    assert np.array_equal(a.sweep.points, b.sweep.points)
    assert a.label_text == b.label_text
    assert not np.array_equal(generate_frame(3, 6).sweep.points[:100], a.sweep.points[:100])
    assert not np.array_equal(generate_frame(4, 5).sweep.points[:100], a.sweep.points[:100])


def test_points_lie_on_the_sensor_rings_and_azimuth_steps() -> None:
    sensor = LidarSensor(fov_deg=90.0)
    frame = generate_frame(0, 1)
    points = frame.sweep.points.astype(np.float64)
    rings = ring_elevations(sensor)
    # Range noise moves a point along its ray, so its direction stays exactly on the beam.
    assert np.allclose(elevation_of(points[:, :3]), rings[frame.sweep.ring], atol=1e-5)
    steps = azimuth_of(points[:, :3]) / np.radians(sensor.azimuth_step_deg)
    assert np.allclose(steps, np.round(steps), atol=1e-3)
    # 64 rings, most of them returning something; far rings are sparser than near ones.
    assert len(np.unique(frame.sweep.ring)) > 50
    assert points.shape[1] == 4 and 0.0 <= points[:, 3].min() and points[:, 3].max() <= 1.0


def test_no_point_lies_in_an_objects_shadow() -> None:
    frame = generate_frame(0, 2)
    points = frame.sweep.points.astype(np.float64)
    distance = np.linalg.norm(points[:, :3], axis=1)
    dirs = points[:, :3] / distance[:, None]
    labelled = frame.layout.parts[frame.layout.part_owner >= 0]
    entry = _hit_boxes(dirs, labelled).min(axis=1)
    # Every return is at or before the first object surface its ray meets (up to range noise).
    assert np.all(distance <= entry + 0.15)
    # ... and some rays do end on objects: the shadows are real, not empty scenes.
    assert np.isfinite(entry).sum() > 200


def test_objects_stand_on_the_ground_and_hold_their_points() -> None:
    frame = generate_frame(0, 3)
    layout, sweep = frame.layout, frame.sweep
    ground_z = layout.ground_height(layout.boxes[:, 0], layout.boxes[:, 1])
    assert np.allclose(layout.boxes[:, 2], ground_z)
    on_objects = sweep.owner >= 0
    for index in np.unique(sweep.owner[on_objects]):  # a handful of objects per scene
        own = sweep.points[sweep.owner == index, :3].astype(np.float64)
        x, y, z, length, width, height, yaw = layout.boxes[index]
        local_x = (own[:, 0] - x) * np.cos(yaw) + (own[:, 1] - y) * np.sin(yaw)
        local_y = -(own[:, 0] - x) * np.sin(yaw) + (own[:, 1] - y) * np.cos(yaw)
        assert np.all(np.abs(local_x) <= length / 2 + 0.1) and np.all(np.abs(local_y) <= width / 2 + 0.1)
        assert np.all((own[:, 2] >= z - 0.1) & (own[:, 2] <= z + height + 0.1))
    assert set(np.unique(sweep.semantic)) <= set(range(len(SEMANTIC_CLASSES)))
    assert (sweep.semantic == GROUND).mean() > 0.3


def test_kitti_layout_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pc3d.io.kitti import load_kitti_frame

    root = write_synthetic_kitti(tmp_path / "synth", scenes=5, seed=7, val_fraction=0.4, point_labels=True)
    train = (root / "ImageSets" / "train.txt").read_text().split()
    val = (root / "ImageSets" / "val.txt").read_text().split()
    assert sorted(train + val) == [f"{i:06d}" for i in range(5)] and len(val) == 2
    frame = load_kitti_frame(root / "training", "000001")
    expected = generate_frame(7, 1)
    assert np.array_equal(frame.points.array[:, :4].astype(np.float32), expected.sweep.points)
    assert frame.labels is not None
    objects = frame.labels.objects()
    kept = expected.num_points > 0
    assert list(objects.types) == list(expected.layout.types[kept])
    lidar = frame.labels.to_lidar_boxes(frame.calib).tensor.numpy()
    # Labels are written with 2 decimals.
    assert np.allclose(lidar[:, :6], expected.layout.boxes[kept, :6], atol=0.02)
    yaw_error = np.angle(np.exp(1j * (lidar[:, 6] - expected.layout.boxes[kept, 6])))
    assert np.all(np.abs(yaw_error) < 0.02)
    semantic = np.fromfile(root / "training" / "semantic" / "000001.label", dtype="<u4")
    assert np.array_equal(semantic, expected.sweep.semantic)


def test_bad_counts_are_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError, match="--scenes must be at least 1"):
        write_synthetic_kitti(tmp_path, scenes=0)
    with pytest.raises(FormatError, match="val-fraction"):
        write_synthetic_kitti(tmp_path, scenes=2, val_fraction=1.0)
    assert not any(tmp_path.iterdir())


def test_settings_change_the_population() -> None:
    crowded = generate_frame(0, 0, SceneSettings(cars=(12, 12), pedestrians=(0, 0), cyclists=(0, 0)))
    assert set(crowded.layout.types) == {"Car"} and len(crowded.layout.types) >= 8
