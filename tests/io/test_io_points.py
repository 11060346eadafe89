"""Point-cloud files: round trips for every format, real KITTI scans, interop with Open3D, and
every bad-input error (asserting on what the message names)."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError
from pc3d.io.points import (
    NonFinitePointsWarning,
    PointCloudData,
    default_fields,
    load_points,
    lzf_decompress,
    read_point_file,
    save_points,
    write_point_file,
)
from pc3d.structures import CameraPoints, LiDARPoints

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"
SCAN = KITTI / "velodyne" / "000001.bin"


def _cloud(n: int = 50, extra: tuple[str, ...] = ("intensity",), seed: int = 0) -> PointCloudData:
    rng = np.random.default_rng(seed)
    array = rng.normal(scale=20.0, size=(n, 3 + len(extra))).astype(np.float32)
    for k, name in enumerate(extra, start=3):
        if name in ("red", "green", "blue", "alpha"):
            array[:, k] = rng.integers(0, 256, n)
    return PointCloudData(array, ("x", "y", "z", *extra))


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    ("suffix", "encoding"),
    [
        (".bin", "binary"),
        (".npy", "binary"),
        (".pcd", "binary"),
        (".pcd", "ascii"),
        (".ply", "binary"),
        (".ply", "ascii"),
    ],
)
def test_round_trip_keeps_every_value(tmp_path: Path, suffix: str, encoding: str) -> None:
    cloud = _cloud(200)
    path = write_point_file(tmp_path / f"cloud{suffix}", cloud, encoding=encoding)
    back = read_point_file(path)
    assert back.fields == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(back.array, cloud.array)
    assert back.array.dtype == np.float32


@pytest.mark.parametrize(
    ("suffix", "encoding"), [(".pcd", "binary"), (".pcd", "ascii"), (".ply", "binary"), (".ply", "ascii")]
)
def test_named_fields_and_colours_round_trip(tmp_path: Path, suffix: str, encoding: str) -> None:
    cloud = _cloud(64, extra=("intensity", "red", "green", "blue", "ring"))
    path = write_point_file(tmp_path / f"c{suffix}", cloud, encoding=encoding)
    back = read_point_file(path)
    assert set(back.fields) == set(cloud.fields)
    for name in cloud.fields:
        np.testing.assert_array_equal(back.column(name), cloud.column(name), err_msg=name)
    header = path.read_bytes()[:400]
    # Integer colours are stored the way viewers expect: packed rgb in PCD, uchar in PLY.
    assert (
        (b"FIELDS x y z intensity rgb ring" in header)
        if suffix == ".pcd"
        else (b"property uchar red" in header)
    )


@pytest.mark.parametrize("num_features", [3, 4, 5, 6])
def test_bin_with_other_column_counts(tmp_path: Path, num_features: int) -> None:
    array = np.arange(10 * num_features, dtype=np.float32).reshape(10, num_features)
    path = write_point_file(tmp_path / "scan.bin", array)
    assert path.stat().st_size == array.nbytes
    back = read_point_file(path, num_features=num_features)
    np.testing.assert_array_equal(back.array, array)
    assert back.fields == default_fields(num_features)


@pytest.mark.parametrize("suffix", [".bin", ".npy", ".pcd", ".ply"])
@pytest.mark.parametrize("encoding", ["binary", "ascii"])
def test_empty_cloud_is_valid(tmp_path: Path, suffix: str, encoding: str) -> None:
    path = write_point_file(tmp_path / f"empty{suffix}", np.zeros((0, 4), np.float32), encoding=encoding)
    back = read_point_file(path)
    assert back.array.shape == (0, 4)
    points = load_points(path)
    assert len(points) == 0 and points.tensor.shape == (0, 4)


def test_real_kitti_scan_through_pcd_and_ply(tmp_path: Path) -> None:
    scan = read_point_file(SCAN)
    raw = np.fromfile(SCAN, dtype=np.float32).reshape(-1, 4)
    np.testing.assert_array_equal(scan.array, raw)
    assert scan.num_points == SCAN.stat().st_size // 16
    for suffix in (".pcd", ".ply"):
        back = read_point_file(write_point_file(tmp_path / f"scan{suffix}", scan))
        np.testing.assert_array_equal(back.array, raw)


# Writes its input inline, like the KITTI label tests: each test spells out the file it reads.
def test_fields_are_reordered_x_y_z_first(tmp_path: Path) -> None:
    path = tmp_path / "odd.pcd"
    path.write_text(
        "VERSION .7\nFIELDS intensity x y z\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
        "WIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA ascii\n0.5 1 2 3\n0.25 4 5 6\n"
    )
    back = read_point_file(path)
    assert back.fields == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(back.array, [[1, 2, 3, 0.5], [4, 5, 6, 0.25]])


def test_pcl_style_binary_pcd_with_padding_count_and_float_rgb(tmp_path: Path) -> None:
    """A binary PCD as PCL writes PointXYZRGBNormal-like records: padding `_`, packed float rgb,
    a COUNT 3 field, an unsigned 16-bit ring, a double timestamp."""
    colours = [(255, 0, 10), (1, 2, 3)]
    body = b""
    for i, (r, g, b) in enumerate(colours):
        rgb = struct.unpack("<f", struct.pack("<I", (r << 16) | (g << 8) | b))[0]
        body += struct.pack("<fff4xf3fHd", i, 2 * i, 3 * i, rgb, 0.0, 0.6, 0.8, 7 + i, 1e9 + i)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z _ rgb normal ring timestamp\n"
        "SIZE 4 4 4 1 4 4 2 8\nTYPE F F F U F F U F\nCOUNT 1 1 1 4 1 3 1 1\nWIDTH 2\nHEIGHT 1\n"
        "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA binary\n"
    )
    path = tmp_path / "pcl.pcd"
    path.write_bytes(header.encode() + body)
    back = read_point_file(path)
    assert back.fields == (
        "x",
        "y",
        "z",
        "red",
        "green",
        "blue",
        "normal_0",
        "normal_1",
        "normal_2",
        "ring",
        "timestamp",
    )
    np.testing.assert_array_equal(back.array[:, 3:6], colours)
    np.testing.assert_allclose(back.array[:, 6:9], [[0, 0.6, 0.8]] * 2, rtol=1e-7)
    np.testing.assert_array_equal(back.column("ring"), [7, 8])
    np.testing.assert_array_equal(back.column("y"), [0, 2])


def test_structured_npy_keeps_names(tmp_path: Path) -> None:
    records = np.zeros(3, dtype=[("x", "f8"), ("y", "f8"), ("z", "f8"), ("intensity", "u1"), ("t", "f4")])
    records["x"], records["y"], records["z"] = [1, 2, 3], [4, 5, 6], [7, 8, 9]
    records["intensity"] = [10, 20, 30]
    np.save(tmp_path / "s.npy", records)
    back = read_point_file(tmp_path / "s.npy")
    assert back.fields == ("x", "y", "z", "intensity", "t")
    np.testing.assert_array_equal(back.array[:, :4], [[1, 4, 7, 10], [2, 5, 8, 20], [3, 6, 9, 30]])


def test_big_endian_ply_and_faces_after_vertices(tmp_path: Path) -> None:
    vertices = np.array(
        [(1.5, -2.0, 3.25, 9), (4.0, 5.0, -6.0, 200)],
        dtype=[("x", ">f4"), ("y", ">f4"), ("z", ">f4"), ("s", ">u2")],
    )
    header = (
        "ply\nformat binary_big_endian 1.0\ncomment test\nelement vertex 2\nproperty float x\nproperty float y\n"
        "property float z\nproperty ushort s\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
    )
    path = tmp_path / "be.ply"
    path.write_bytes(header.encode() + vertices.tobytes() + bytes([3]) + np.array([0, 1, 0], ">i4").tobytes())
    back = read_point_file(path)
    assert back.fields == ("x", "y", "z", "s")
    np.testing.assert_array_equal(back.array, [[1.5, -2.0, 3.25, 9], [4.0, 5.0, -6.0, 200]])


def test_lzf_decompress_literals_and_overlapping_back_references() -> None:
    # literal "ab", then a back reference of 6 bytes at distance 2 (overlapping its own output)
    src = bytes([1]) + b"ab" + bytes([(4 << 5) | 0, 1])
    assert lzf_decompress(src, 8) == b"abababab"
    # long back reference: length field 7 + extension byte 3 -> 7 + 3 + 2 = 12 bytes at distance 1
    src = bytes([0]) + b"z" + bytes([(7 << 5) | 0, 3, 0])
    assert lzf_decompress(src, 13) == b"z" * 13
    with pytest.raises(FormatError, match="corrupt"):
        lzf_decompress(bytes([(1 << 5), 5]), 4)  # refers before the start of the output


def test_open3d_interop(tmp_path: Path) -> None:
    o3d = pytest.importorskip("open3d")
    full = read_point_file(SCAN)
    scan = PointCloudData(full.array[::6], full.fields)  # 20k real points keep it quick
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, (scan.num_points, 3)).astype(np.float32)
    ours = PointCloudData(
        np.concatenate([scan.array[:, :3], colours], axis=1), ("x", "y", "z", "red", "green", "blue")
    )
    for suffix in (".pcd", ".ply"):
        for encoding in ("binary", "ascii"):
            path = write_point_file(tmp_path / f"ours_{encoding}{suffix}", ours, encoding=encoding)
            theirs = o3d.io.read_point_cloud(str(path))
            np.testing.assert_allclose(np.asarray(theirs.points), scan.array[:, :3], atol=1e-6)
            np.testing.assert_allclose(np.asarray(theirs.colors) * 255, colours, atol=1e-3)
    # Open3D's own files, including binary_compressed PCD (LZF with back references).
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(scan.array[:, :3].astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(colours / 255.0)
    for name, kwargs in [("c.pcd", {"compressed": True}), ("a.pcd", {"write_ascii": True}), ("b.ply", {})]:
        o3d.io.write_point_cloud(str(tmp_path / name), cloud, **kwargs)
        back = read_point_file(tmp_path / name)
        assert back.fields == ("x", "y", "z", "red", "green", "blue")
        np.testing.assert_allclose(back.array[:, :3], scan.array[:, :3], atol=1e-5)
        np.testing.assert_array_equal(back.array[:, 3:], colours)
    assert b"DATA binary_compressed" in (tmp_path / "c.pcd").read_bytes()[:400]


# ------------------------------------------------------------------------------ structures


def test_load_points_gives_structures_with_named_attributes(tmp_path: Path) -> None:
    points = load_points(SCAN)
    assert isinstance(points, LiDARPoints)
    assert points.attribute_dims == {"intensity": 3}
    np.testing.assert_array_equal(points.tensor.numpy(), np.fromfile(SCAN, np.float32).reshape(-1, 4))

    cloud = _cloud(10, extra=("red", "green", "blue", "intensity"))
    path = write_point_file(tmp_path / "c.ply", cloud)
    cam = load_points(path, mode="camera")
    assert isinstance(cam, CameraPoints)
    assert cam.attribute_dims == {"color": [3, 4, 5], "intensity": 6}
    np.testing.assert_array_equal(cam.attr("color").numpy(), cloud.array[:, 3:6])


def test_save_points_from_structure_array_and_tensor(tmp_path: Path) -> None:
    points = load_points(SCAN)[:100]
    back = read_point_file(save_points(tmp_path / "p.pcd", points))
    assert back.fields == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(back.array, points.tensor.numpy())
    tensor = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    np.testing.assert_array_equal(
        read_point_file(save_points(tmp_path / "t.npy", tensor)).array, tensor.numpy()
    )
    back = read_point_file(save_points(tmp_path / "n.ply", tensor.numpy(), fields=["x", "y", "z"]))
    assert back.fields == ("x", "y", "z")


def test_failed_write_leaves_previous_file(tmp_path: Path) -> None:
    path = write_point_file(tmp_path / "keep.pcd", _cloud(5))
    before = path.read_bytes()
    with pytest.raises(FormatError, match="field names"):
        write_point_file(path, np.zeros((2, 4), np.float32), fields=["x", "y", "z", "bad name"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.pcd"]


# ------------------------------------------------------------------------------ NaN policy


def _nan_cloud(tmp_path: Path) -> Path:
    array = np.arange(24, dtype=np.float32).reshape(6, 4)
    array[2, 0] = np.nan
    array[4, 2] = np.inf
    array[5, 3] = np.nan  # intensity: not a coordinate, never dropped
    return write_point_file(tmp_path / "nan.bin", array)


def test_nan_policy_drop_warns_with_count_and_file(tmp_path: Path) -> None:
    path = _nan_cloud(tmp_path)
    with pytest.warns(NonFinitePointsWarning) as record:
        data = read_point_file(path)
    message = str(record[0].message)
    assert str(path) in message and "dropped 2 of 6 points" in message
    np.testing.assert_array_equal(data.array[:, 0], [0, 4, 12, 20])


def test_nan_warning_suggests_an_option_value_the_command_line_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    from pc3d.cli import main

    path = _nan_cloud(tmp_path)
    with pytest.warns(NonFinitePointsWarning) as record:
        read_point_file(path)
    suggested = re.search(r"--nan-policy (\w+)", str(record[0].message))
    assert suggested is not None and suggested.group(1) == "raise"
    # The suggestion works: the command line accepts it and stops at the bad points.
    out = tmp_path / "out.bin"
    args = [
        "convert",
        "--src",
        "lidar",
        "--dst",
        "lidar",
        "--nan-policy",
        suggested.group(1),
        str(path),
        str(out),
    ]
    assert main(args) == 2 and not out.exists()
    error = capsys.readouterr().err
    assert "invalid choice" not in error and f"{path}: 2 of 6 points have NaN or infinite x/y/z" in error


def test_nan_policy_raise_names_file_and_first_row(tmp_path: Path) -> None:
    path = _nan_cloud(tmp_path)
    with pytest.raises(FormatError) as err:
        read_point_file(path, nan_policy="raise")
    assert (
        str(path) in str(err.value) and "point 2 (0-based)" in str(err.value) and "2 of 6" in str(err.value)
    )


def test_nan_policy_keep_and_structures_name_the_file(tmp_path: Path) -> None:
    path = _nan_cloud(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = read_point_file(path, nan_policy="keep")
    assert data.num_points == 6 and np.isnan(data.array[2, 0])
    with pytest.raises(FormatError) as err:
        load_points(path, nan_policy="keep")  # a NaN x reaches the structure
    # The row is the file's: "keep" keeps every point.
    assert str(err.value).startswith(f"{path}: LiDARPoints row 2: x (column 0) is nan; 2 row(s)")
    with pytest.raises(ValueError, match="nan_policy"):
        read_point_file(path, nan_policy="ignore")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ bad input


def test_bin_size_not_a_multiple_of_the_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(np.zeros(10, np.float32).tobytes() + b"\x00\x00")
    with pytest.raises(FormatError) as err:
        read_point_file(path)
    text = str(err.value)
    assert str(path) in text and "42 bytes" in text and "record size 16 bytes" in text
    with pytest.raises(FormatError, match="num_features"):
        read_point_file(SCAN, num_features=2)


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "cloud.xyz"
    path.write_text("1 2 3\n")
    with pytest.raises(
        FormatError, match=r"unknown point-cloud extension '\.xyz'.*\.bin, \.npy, \.pcd, \.ply"
    ):
        read_point_file(path)
    with pytest.raises(FormatError, match="unknown point-cloud extension"):
        write_point_file(tmp_path / "out.las", np.zeros((1, 3)))
    with pytest.raises(FileNotFoundError):
        read_point_file(tmp_path / "nothing.bin")


_GOOD_HEADER = [
    "VERSION 0.7", "FIELDS x y z", "SIZE 4 4 4", "TYPE F F F", "COUNT 1 1 1",
    "WIDTH 1", "HEIGHT 1", "POINTS 1", "DATA ascii",
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        (1, None, "no FIELDS line"),
        (2, "SIZE 4 4", "header line 3: SIZE has 2 entries but FIELDS names 3 fields"),
        (3, "TYPE F F Q", "header line 4: field 'z' has TYPE Q"),
        (5, "WIDTH one", "header line 6: WIDTH values ['one'] are not all integers"),
        (7, "POINTS 5", "header line 8: POINTS 5 disagrees with WIDTH x HEIGHT = 1"),
        (8, "DATA zipped", "header line 9: DATA 'zipped'"),
        (8, None, "without a DATA line"),
        (4, "COLOR 1 1 1", "header line 5: unknown PCD header key 'COLOR'"),
        (2, "SIZE 4 3 4", "TYPE F with SIZE 3"),
    ],
)
def test_broken_pcd_header_names_file_and_line(
    tmp_path: Path, line: int, replacement: str | None, expected: str
) -> None:
    header = list(_GOOD_HEADER)
    if replacement is None:
        del header[line]
    else:
        header[line] = replacement
    path = tmp_path / "broken.pcd"
    path.write_text("\n".join(header) + "\n" + ("1 2 3\n" if "DATA" in header[-1] else ""))
    with pytest.raises(FormatError) as err:
        read_point_file(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_truncated_pcd_and_ply_data(tmp_path: Path) -> None:
    cloud = _cloud(20)
    for suffix in (".pcd", ".ply"):
        for encoding in ("binary", "ascii"):
            path = write_point_file(tmp_path / f"t_{encoding}{suffix}", cloud, encoding=encoding)
            raw = path.read_bytes()
            # Cut in the middle of the data: binary loses bytes, text loses whole lines.
            cut = (
                raw[: len(raw) - 40]
                if encoding == "binary"
                else raw[: raw.rfind(b"\n", 0, len(raw) - 200) + 1]
            )
            path.write_bytes(cut)
            with pytest.raises(FormatError) as err:
                read_point_file(path)
            assert str(path) in str(err.value) and "truncated" in str(err.value), str(err.value)


def test_ascii_pcd_bad_value_and_extra_rows_name_the_line(tmp_path: Path) -> None:
    head = "\n".join(_GOOD_HEADER[:5] + ["WIDTH 2", "HEIGHT 1", "POINTS 2", "DATA ascii"]) + "\n"
    path = tmp_path / "bad.pcd"
    path.write_text(head + "1 2 3\n4 five 6\n")
    with pytest.raises(FormatError, match=r"line 11: 'five' is not a number"):
        read_point_file(path)
    path.write_text(head + "1 2 3\n4 5\n")
    with pytest.raises(FormatError, match=r"line 11 has 2 values, expected 3"):
        read_point_file(path)
    path.write_text(head + "1 2 3\n4 5 6\n7 8 9\n")
    with pytest.raises(FormatError, match=r"line 12: data goes on after the 2 points"):
        read_point_file(path)


def test_corrupt_compressed_pcd(tmp_path: Path) -> None:
    header = "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA binary_compressed\n"
    path = tmp_path / "c.pcd"
    path.write_bytes(header.encode() + struct.pack("<II", 10, 24) + b"\x05abc")
    with pytest.raises(FormatError, match="10 compressed bytes announced, 4 present"):
        read_point_file(path)
    path.write_bytes(header.encode() + struct.pack("<II", 4, 20) + b"\x05abc")
    with pytest.raises(FormatError, match="20 uncompressed bytes, the header's fields and POINTS need 24"):
        read_point_file(path)


def test_broken_ply_headers(tmp_path: Path) -> None:
    cases = {
        "ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n": "no 'vertex' element",
        "ply\nformat ascii 2.0 x\nelement vertex 0\nend_header\n": "header line 2: unknown PLY format",
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float128 x\nend_header\n": "header line 4: bad property",
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n": "without 'end_header'",
        "plx\n": "header line 1: a PLY file starts with 'ply'",
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n1 2\n": "no field z",
    }
    for k, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"b{k}.ply"
        path.write_text(text)
        with pytest.raises(FormatError) as err:
            read_point_file(path)
        assert str(path) in str(err.value) and expected in str(err.value), (text, str(err.value))


def test_npy_that_is_not_a_point_array(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(FormatError, match=r"flat\.npy: expected a numeric point array of shape \[N, C>=3\]"):
        read_point_file(tmp_path / "flat.npy")
    np.save(tmp_path / "narrow.npy", np.zeros((5, 2)))
    with pytest.raises(FormatError, match="at least 3 columns"):
        read_point_file(tmp_path / "narrow.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(FormatError, match=r"junk\.npy: not a readable \.npy"):
        read_point_file(tmp_path / "junk.npy")
    np.save(tmp_path / "five.npy", np.zeros((5, 5)))
    with pytest.raises(FormatError, match="num_features=4 was asked for"):
        read_point_file(tmp_path / "five.npy", num_features=4)


def test_complex_npy_is_refused_not_silently_made_real(tmp_path: Path) -> None:
    np.save(tmp_path / "complex.npy", np.ones((5, 4), dtype=np.complex64) * 1j)
    with pytest.raises(
        FormatError, match=r"complex\.npy: complex values \(complex64\) are not point coordinates"
    ):
        read_point_file(tmp_path / "complex.npy")
    structured = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("phase", "c8")])
    np.save(tmp_path / "structured.npy", structured)
    with pytest.raises(FormatError, match=r"structured\.npy: field 'phase' holds complex values"):
        read_point_file(tmp_path / "structured.npy")
    with pytest.raises(FormatError, match="points to write must be real numbers"):
        write_point_file(tmp_path / "out.npy", np.ones((5, 4)) * 1j)
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("suffix", [".pcd", ".ply", ".npy", ".bin"])
def test_writing_two_columns_of_one_name_is_refused(tmp_path: Path, suffix: str) -> None:
    """A PCD or PLY with two ``intensity`` fields could not be read back (which is which?)."""
    points = np.random.default_rng(0).random((5, 5)).astype(np.float32)
    path = tmp_path / f"cloud{suffix}"
    with pytest.raises(FormatError, match=r"field name\(s\) \['intensity'\] appear more than once"):
        write_point_file(path, points, ("x", "y", "z", "intensity", "intensity"))
    assert not path.exists()
    with pytest.raises(FormatError, match=r"appear more than once"):
        PointCloudData(points, ("x", "y", "z", "ring", "ring"))


@pytest.mark.parametrize("mode", ["lidar", "camera", "depth"])
def test_nan_attributes_are_points_all_the_same(tmp_path: Path, mode: str) -> None:
    # A NaN intensity is an unknown intensity: the point is kept, and so is the NaN.
    path = _nan_cloud(tmp_path)
    with pytest.warns(NonFinitePointsWarning, match="dropped 2 of 6 points"):
        points = load_points(path, mode=mode)
    assert len(points) == 4 and torch.isnan(points.intensity[3])
    np.testing.assert_array_equal(points.tensor[:3, 3].numpy(), [3, 7, 15])
