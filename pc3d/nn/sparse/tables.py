"""Neighbour tables of sparse convolutions: which input row each output reads at each kernel position."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pc3d.errors import FormatError

__all__ = [
    "Triple",
    "conv_output_shape",
    "kernel_offsets",
    "site_keys",
    "strided_table",
    "submanifold_table",
    "triple",
]

Triple = int | Sequence[int]


def kernel_offsets(kernel_size: Sequence[int], dilation: Sequence[int], device: torch.device) -> Tensor:
    """`LongTensor[K, 3]`: `k * dilation` per axis for every kernel position, in spconv's weight order."""
    axes = [torch.arange(int(k), device=device) * int(d) for k, d in zip(kernel_size, dilation, strict=True)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def site_keys(batch: Tensor, zyx: Tensor, shape: Sequence[int]) -> Tensor:
    """One int64 key per site, ordered like (batch, z, y, x)."""
    return ((batch * shape[0] + zyx[..., 0]) * shape[1] + zyx[..., 1]) * shape[2] + zyx[..., 2]


def submanifold_table(
    indices: Tensor, shape: Sequence[int], kernel_size: Sequence[int], dilation: Sequence[int]
) -> Tensor:
    """`LongTensor[N, K]`: the input row each site reads at each kernel position, `N` where none.

    A submanifold conv's outputs are its inputs; output `o` reads the input at `o + (k - centre)`.
    With an odd kernel the pairs are symmetric (`o` reads `i` at `k` exactly when `i` reads `o` at
    the mirrored position `K - 1 - k`), so only the first half of the positions is searched (one
    sort and one `searchsorted`), the other half is its mirror and the centre is the site itself.
    """
    n, device = indices.shape[0], indices.device
    offsets = kernel_offsets(kernel_size, dilation, device)
    count = offsets.shape[0]
    centre = torch.tensor(
        [(int(k) // 2) * int(d) for k, d in zip(kernel_size, dilation, strict=True)], device=device
    )
    symmetric = all(int(k) % 2 == 1 for k in kernel_size)
    searched = count // 2 if symmetric else count
    keys = site_keys(indices[:, 0], indices[:, 1:], shape)
    sorted_keys, order = torch.sort(keys)
    query = indices[None, :, 1:] + (offsets[:searched] - centre)[:, None, :]  # [searched, N, 3]
    inside = ((query >= 0) & (query < query.new_tensor(list(shape)))).all(dim=-1)
    query_keys = site_keys(indices[None, :, 0], query, shape)
    position = torch.searchsorted(sorted_keys, query_keys).clamp_(max=max(n - 1, 0))
    found = inside & (sorted_keys[position] == query_keys)
    kernel, out_rows = found.nonzero(as_tuple=True)
    in_rows = order[position[kernel, out_rows]]
    table = torch.full((n, count), n, dtype=torch.long, device=device)
    table[out_rows, kernel] = in_rows
    if symmetric:
        table[in_rows, count - 1 - kernel] = out_rows
        table[:, count // 2] = torch.arange(n, device=device)
    return table


def strided_table(
    indices: Tensor,
    shape: Sequence[int],
    out_shape: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[Tensor, Tensor]:
    """A (non-submanifold) sparse conv's `LongTensor[M, K]` table (input rows, `N` where none) and
    its output sites `LongTensor[M, 4]` (sorted by (batch, z, y, x)).

    Output `o` reads the input at `o * stride - padding + k`, so input `i` reaches
    `o = (i + padding - k) / stride` where that divides exactly and lands inside `out_shape`. The
    test is made per axis (`[N, k_axis]`) and combined by broadcasting, never on `[K, N, 3]`.
    """
    n, device = indices.shape[0], indices.device
    zyx = indices[:, 1:]
    valid_axes, out_axes = [], []
    for axis in range(3):
        k = torch.arange(int(kernel_size[axis]), device=device) * int(dilation[axis])
        scaled = zyx[:, axis, None] + int(padding[axis]) - k  # [N, k_axis]
        out = torch.div(scaled, int(stride[axis]), rounding_mode="floor")
        valid_axes.append((out * int(stride[axis]) == scaled) & (out >= 0) & (out < int(out_shape[axis])))
        out_axes.append(out)
    kz, ky, kx = (int(k) for k in kernel_size)
    valid = (
        valid_axes[0][:, :, None, None] & valid_axes[1][:, None, :, None] & valid_axes[2][:, None, None, :]
    )
    in_rows, kernel = valid.reshape(n, kz * ky * kx).nonzero(as_tuple=True)
    out_zyx = torch.stack(
        (
            out_axes[0][in_rows, kernel // (ky * kx)],
            out_axes[1][in_rows, (kernel // kx) % ky],
            out_axes[2][in_rows, kernel % kx],
        ),
        dim=1,
    )
    batch = indices[in_rows, 0]
    unique_keys, out_rows = torch.unique(site_keys(batch, out_zyx, out_shape), return_inverse=True)
    out_indices = torch.empty(unique_keys.numel(), 4, dtype=torch.long, device=device)
    out_indices[out_rows, 0] = batch
    out_indices[out_rows, 1:] = out_zyx
    table = torch.full((unique_keys.numel(), kz * ky * kx), n, dtype=torch.long, device=device)
    table[out_rows, kernel] = in_rows
    return table, out_indices


def triple(value: Triple) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    values = tuple(int(v) for v in value)
    if len(values) != 3:
        raise FormatError(f"expected an int or 3 ints (z, y, x), got {value!r}")
    return (values[0], values[1], values[2])


def conv_output_shape(
    shape: Sequence[int], kernel_size: Triple, stride: Triple, padding: Triple, dilation: Triple = 1
) -> tuple[int, int, int]:
    """Spatial shape `(D, H, W)` after a (non-submanifold) sparse conv: `(n + 2p - d(k - 1) - 1) // s + 1` per axis."""
    k, s, p, d = triple(kernel_size), triple(stride), triple(padding), triple(dilation)
    out = tuple((int(n) + 2 * p[a] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a, n in enumerate(shape))
    return (out[0], out[1], out[2])
