"""Sparse convolutions computed with torch ops on the CPU (spconv's own CPU kernels are unusable)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.sparse.backend import import_spconv
from pc3d.nn.sparse.tables import conv_output_shape, site_keys, strided_table, submanifold_table

__all__ = ["run_sparse_conv", "run_sparse_inverse_conv", "sparse_conv_cpu", "sparse_inverse_conv_cpu"]


def _convolve_table(features: Tensor, weight: Tensor, table: Tensor) -> Tensor:
    """`out[o] = sum_k weight[:, k] @ features[table[o, k]]`, skipping `table[o, k] == N`.

    One GEMM per kernel position over the pairs that exist (`_accumulate_pairs`). One GEMM over
    every output's gathered neighbourhood (`[M, K * C_in]`, zeros where none) was measured too: it
    does twice the arithmetic (SECOND's KITTI layers have 20% to 60% of their neighbours), was only
    about 5% faster on SECOND's encoder at inference (2-core CPU), and what backward keeps of it
    is K times the features (1 GB for one layer on a batch of six KITTI frames).

    Args:
        features: `Tensor[N, C_in]`.
        weight: `Tensor[C_out, K, C_in]`.
        table: `LongTensor[M, K]` of rows of `features`, `N` for "no input".

    Returns:
        `Tensor[M, C_out]`.
    """
    by_position = table.t()
    kernel, out_rows = (by_position < features.shape[0]).nonzero(as_tuple=True)  # grouped by position
    in_rows = by_position[kernel, out_rows]
    return _accumulate_pairs(features, weight, in_rows, out_rows, kernel, table.shape[0])


def _accumulate_pairs(
    features: Tensor, weight: Tensor, in_rows: Tensor, out_rows: Tensor, kernel: Tensor, num_out: int
) -> Tensor:
    """`out[o] += weight[:, k] @ features[i]` for every pair `(i, o, k)`; pairs grouped by `k`."""
    out = features.new_zeros(num_out, weight.shape[0])
    counts = torch.bincount(kernel, minlength=weight.shape[1]).tolist()
    # One unbind, not a `weight[:, k]` per position: each indexing's backward would zero-fill a
    # whole weight-sized gradient (27 of them per layer), which dominates layers with few sites.
    per_position = weight.unbind(dim=1)
    start = 0
    for position, count in enumerate(counts):  # a loop over kernel positions, not over sites
        if count:
            rows = slice(start, start + count)
            out.index_add_(
                0, out_rows[rows], features.index_select(0, in_rows[rows]) @ per_position[position].t()
            )
        start += count
    return out


def sparse_conv_cpu(conv: Any, x: Any) -> Any:
    """A spconv `SubMConv3d`/`SparseConv3d` computed with torch ops (gathers and GEMMs).

    Same function as spconv's convolution (same weights, same active output sites), on any number
    of threads and with autograd; used for every sparse conv on the CPU, where spconv 2.3.8's own
    kernels are unusable: its CPU scatter-add shares two row pointers between OpenMP threads
    (`GatherCPU::scatter_add`: with more than one thread, sums go to wrong rows, differently on
    every run) and its CPU backward asks for a CUDA stream (fails on a CPU-only torch). Each
    layer's neighbour table (`[M, K]`: the input row every output reads at every kernel position)
    comes from one sort and `searchsorted` (submanifold) or one `unique` (strided); see
    `_convolve_table` for how the sums are made.

    Args:
        conv: a spconv 3D convolution (not transposed, not inverse), weight `(C_out, kD, kH, kW, C_in)`.
        x: its input `SparseConvTensor`.

    Returns:
        The output `SparseConvTensor` (output sites in (batch, z, y, x) order).
    """
    spconv = import_spconv()
    if conv.transposed or conv.inverse:
        raise FormatError(
            f"{type(conv).__name__}: transposed and inverse sparse convs are not supported on the CPU"
        )
    features, indices = x.features, x.indices.long()
    shape = [int(v) for v in x.spatial_shape]
    if indices.shape[0] == 0:
        raise ShapeError(f"{type(conv).__name__}: the sparse tensor has no active sites")
    indice_dict = dict(x.indice_dict)
    if conv.subm:
        # Submanifold layers sharing an indice key on the same sites share their table (as spconv
        # shares its pairs).
        cache_key = f"pc3d:{conv.indice_key}:{list(conv.kernel_size)}:{list(conv.dilation)}"
        cached = indice_dict.get(cache_key)
        if cached is not None and cached[0] is x.indices:
            table = cached[1]
        else:
            table = submanifold_table(indices, shape, conv.kernel_size, conv.dilation)
            if conv.indice_key is not None:
                indice_dict[cache_key] = (x.indices, table)
        out_indices, out_shape = x.indices, shape
    else:
        out_shape = list(conv_output_shape(shape, conv.kernel_size, conv.stride, conv.padding, conv.dilation))
        table, strided_indices = strided_table(
            indices, shape, out_shape, conv.kernel_size, conv.stride, conv.padding, conv.dilation
        )
        out_indices = strided_indices.int()
    weight = conv.weight.reshape(conv.out_channels, table.shape[1], conv.in_channels)
    out = _convolve_table(features, weight, table)
    if conv.bias is not None:
        out = out + conv.bias
    return spconv.SparseConvTensor(out, out_indices, out_shape, x.batch_size, indice_dict=indice_dict)


def run_sparse_conv(conv: nn.Module, x: Any) -> Any:
    """`conv(x)` for a spconv convolution: `sparse_conv_cpu` on the CPU, spconv itself elsewhere."""
    if x.features.device.type == "cpu":
        return sparse_conv_cpu(conv, x)
    return conv(x)


def sparse_inverse_conv_cpu(conv: Any, x: Any, fine: Any, down: Any) -> Any:
    """A spconv `SparseInverseConv3d` computed with torch ops (the CPU path, with autograd).

    The inverse conv reuses the index pairs of the strided conv `down` with input and output
    swapped, each pair keeping its kernel position: for every pair (fine site `i`, coarse site
    `o`, kernel position `k`) of `down`, `out[i] += W[:, k] @ x[o]`. That is spconv's rule, and
    the transpose of `down`'s sparsity pattern (a dense `conv_transpose3d` read at the fine sites).

    Args:
        conv: the inverse conv, weight `(C_out, kD, kH, kW, C_in)`, same kernel size as `down`.
        x: its coarse input `SparseConvTensor`, holding the output sites of `down` (any row order).
        fine: the `SparseConvTensor` that `down` took; its sites (and row order) are the output's.
        down: the strided spconv conv this one inverts (its kernel, stride, padding, dilation).

    Returns:
        `SparseConvTensor` with `fine`'s indices, spatial shape and batch size.

    Raises:
        FormatError: kernel sizes that differ.
        ShapeError: `x` lacks sites that `down` produces from `fine` (not its output).
    """
    if tuple(conv.kernel_size) != tuple(down.kernel_size):
        raise FormatError(
            f"inverse conv kernel {tuple(conv.kernel_size)} differs from its strided conv's {tuple(down.kernel_size)}"
        )
    fine_indices = fine.indices.long()
    fine_shape, coarse_shape = [int(v) for v in fine.spatial_shape], [int(v) for v in x.spatial_shape]
    table, sites = strided_table(
        fine_indices, fine_shape, coarse_shape, down.kernel_size, down.stride, down.padding, down.dilation
    )
    coarse = x.indices.long()
    sorted_keys, order = torch.sort(site_keys(coarse[:, 0], coarse[:, 1:], coarse_shape))
    wanted = site_keys(sites[:, 0], sites[:, 1:], coarse_shape)
    position = torch.searchsorted(sorted_keys, wanted).clamp_(max=max(sorted_keys.numel() - 1, 0))
    if sorted_keys.numel() == 0 or not bool((sorted_keys[position] == wanted).all()):
        raise ShapeError(
            f"{type(conv).__name__} (indice_key {conv.indice_key!r}): the coarse tensor does not hold the output "
            "sites of its strided conv; pass the tensor that conv produced (after submanifold layers only)"
        )
    # `down`'s pairs with input and output swapped: fine site i reads coarse site o at position k
    # where `down`'s o read i at k. Read by position, so the pairs come grouped by kernel position.
    by_position = table.t()
    kernel, slots = (by_position < fine_indices.shape[0]).nonzero(as_tuple=True)
    weight = conv.weight.reshape(conv.out_channels, table.shape[1], conv.in_channels)
    out = _accumulate_pairs(
        x.features, weight, order[position][slots], by_position[kernel, slots], kernel, fine_indices.shape[0]
    )
    if conv.bias is not None:
        out = out + conv.bias
    # The coarse tensor's index dict holds the fine level's submanifold pairs: later layers reuse them.
    return import_spconv().SparseConvTensor(
        out, fine.indices, list(fine.spatial_shape), fine.batch_size, indice_dict=dict(x.indice_dict)
    )


def run_sparse_inverse_conv(conv: Any, x: Any, fine: Any, down: Any) -> Any:
    """`conv(x)` for a spconv inverse conv: `sparse_inverse_conv_cpu` on the CPU, spconv elsewhere.

    Args:
        conv: a `sparse_inverse_conv` layer.
        x: the coarse `SparseConvTensor`.
        fine: the tensor the paired strided conv `down` took (spconv finds it by `indice_key`
            on CUDA; the CPU path reads it from here).
        down: the paired strided conv.

    Returns:
        The fine `SparseConvTensor` (the sites of `fine`, in its row order).
    """
    if x.features.device.type == "cpu":
        return sparse_inverse_conv_cpu(conv, x, fine, down)
    return conv(x)
