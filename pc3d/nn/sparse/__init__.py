"""Sparse 3D convolution on spconv 2: SECOND's sparse middle encoder.

spconv (`spconv.pytorch`) is imported lazily, by `pc3d.ops.spconv_module` alone (which the
voxelizer's spconv backend uses too); `backend` picks the algorithm per device. Importing
`pc3d.nn` never needs it, building a `SparseEncoder` does, and then a missing spconv raises
`MissingDependencyError` with the package to install (`pip install spconv` for the CPU,
`spconv-cu120` etc. for CUDA). `tables` builds each layer's neighbour table, `cpu` computes the
convolutions on the CPU, `layers` holds the spconv layers and blocks, `encoder` SECOND's encoder.

Weights live in spconv's modules (`SubMConv3d`, `SparseConv3d`; layout `(C_out, kD, kH, kW,
C_in)` for every algorithm). On CUDA spconv computes the convolutions with the algorithm it picks
(implicit GEMM); `set_sparse_conv_algo` is the one place that sets every layer's algorithm for a
device (`sparse_conv_algo`: `ConvAlgo.Native` on the CPU, spconv's default elsewhere), and
`SparseEncoder.forward` calls it when the input's device changes. On the CPU pc3d computes the
convolutions itself (`sparse_conv_cpu`, torch gathers and GEMMs): spconv 2.3.8's CPU kernels
give wrong sums on more than one thread and cannot run a backward pass without CUDA.

Coordinates are `(batch, z, y, x)` and spatial shapes `(D, H, W)` = `(z, y, x)` cell counts, as
`pc3d.ops.hard_voxelize` returns them (prepend the batch column).
"""

from pc3d.nn.sparse.backend import (
    DEFAULT_ALGO_ATTRIBUTE,
    SPCONV_INSTALL_HINT,
    import_spconv,
    set_sparse_conv_algo,
    sparse_conv_algo,
)
from pc3d.nn.sparse.cpu import (
    run_sparse_conv,
    run_sparse_inverse_conv,
    sparse_conv_cpu,
    sparse_inverse_conv_cpu,
)
from pc3d.nn.sparse.encoder import SparseEncoder
from pc3d.nn.sparse.layers import (
    SparseConvBlock,
    sparse_conv,
    sparse_conv_block,
    sparse_conv_tensor,
    sparse_inverse_conv,
    sparse_to_dense,
)
from pc3d.nn.sparse.tables import Triple, conv_output_shape, strided_table, submanifold_table

__all__ = [
    "DEFAULT_ALGO_ATTRIBUTE",
    "SPCONV_INSTALL_HINT",
    "SparseConvBlock",
    "SparseEncoder",
    "Triple",
    "conv_output_shape",
    "import_spconv",
    "run_sparse_conv",
    "run_sparse_inverse_conv",
    "set_sparse_conv_algo",
    "sparse_conv",
    "sparse_conv_algo",
    "sparse_conv_block",
    "sparse_conv_cpu",
    "sparse_conv_tensor",
    "sparse_inverse_conv",
    "sparse_inverse_conv_cpu",
    "sparse_to_dense",
    "strided_table",
    "submanifold_table",
]
