"""LZF decompression: the codec of PCD `DATA binary_compressed`."""

from __future__ import annotations

from pathlib import Path

from pc3d.errors import FormatError

__all__ = ["lzf_decompress"]


def lzf_decompress(src: bytes, size: int, path: Path | None = None) -> bytes:
    """Decompress LZF data into exactly `size` bytes.

    A loop over LZF tokens (each covers 1-264 bytes), only used for that rare PCD variant.

    Args:
        src: the compressed bytes.
        size: the uncompressed size the file announces.
        path: the file, for messages.

    Raises:
        FormatError: corrupt or truncated data (a run or back reference out of range, or fewer
            bytes than announced), naming the file.
    """
    out = bytearray(size)
    ip, op, end = 0, 0, len(src)
    where = f"{path}: " if path is not None else ""
    while ip < end:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            length = ctrl + 1
            if ip + length > end or op + length > size:
                raise FormatError(f"{where}corrupt LZF data: literal run past the end at byte {ip - 1}")
            out[op : op + length] = src[ip : ip + length]
            ip += length
            op += length
            continue
        length = ctrl >> 5
        if length == 7:
            if ip >= end:
                raise FormatError(f"{where}corrupt LZF data: truncated back reference")
            length += src[ip]
            ip += 1
        if ip >= end:
            raise FormatError(f"{where}corrupt LZF data: truncated back reference")
        length += 2
        ref = op - ((ctrl & 0x1F) << 8) - src[ip] - 1
        ip += 1
        if ref < 0 or op + length > size:
            raise FormatError(f"{where}corrupt LZF data: back reference out of range at byte {ip - 2}")
        if ref + length <= op:
            out[op : op + length] = out[ref : ref + length]
        else:  # the copy overlaps its own output: it repeats the last (op - ref) bytes
            period = bytes(out[ref:op])
            out[op : op + length] = (period * (length // len(period) + 1))[:length]
        op += length
    if op != size:
        raise FormatError(f"{where}corrupt or truncated LZF data: {op} bytes decompressed, {size} expected")
    return bytes(out)
