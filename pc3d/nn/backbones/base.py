"""The one base class of the backbones: stages, multi-scale outputs, frozen stages, norm eval.

A backbone is an optional `stem` followed by `stages` (an `nn.ModuleList`); `forward` runs the
stem and the stages in order and returns the outputs of the stages listed in `out_indices`, as
a tuple, shallowest first. Stages after the deepest requested one are not run.

Attributes every backbone sets (necks are built from them):

- `out_indices: tuple[int, ...]` -- the returned stages;
- `out_channels: tuple[int, ...]` -- channels of each returned feature;
- `out_strides: tuple[int, ...]` -- nominal stride of each returned feature w.r.t. the input
  (exact for inputs whose sides are multiples of the deepest stride; the MLP reports 1).

`frozen_stages = -1` trains everything; `k >= 0` freezes the stem (where there is one) and the
first `k` stages: their parameters get `requires_grad=False` and their norm layers stay in eval
mode (running statistics are not updated). `norm_eval=True` keeps *every* batch-norm layer in
eval mode during training (the usual setting when fine-tuning with small batches).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from pc3d.errors import FormatError, ShapeError


def normalise_out_indices(out_indices: Sequence[int], num_stages: int) -> tuple[int, ...]:
    """Validate `out_indices` against `num_stages`; negative indices count from the end.

    Returns the indices sorted and unique. Raises `FormatError` for an empty list, a non-int or
    an index out of range.
    """
    if isinstance(out_indices, int) or not isinstance(out_indices, Sequence) or len(out_indices) == 0:
        raise FormatError(f"out_indices must be a non-empty sequence of stage indices, got {out_indices!r}")
    result: set[int] = set()
    for index in out_indices:
        if isinstance(index, bool) or not isinstance(index, int):
            raise FormatError(f"out_indices holds {index!r}; stage indices are ints")
        if not -num_stages <= index < num_stages:
            raise FormatError(f"out_indices holds {index}, but this backbone has stages 0..{num_stages - 1}")
        result.add(index % num_stages)
    return tuple(sorted(result))


def check_image_batch(x: Tensor, in_channels: int, owner: str) -> None:
    """Raise `ShapeError` unless `x` is a `Tensor[B, in_channels, H, W]`."""
    if not isinstance(x, Tensor):
        raise ShapeError(
            f"{owner} expects a tensor of shape (B, {in_channels}, H, W), got {type(x).__name__}"
        )
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ShapeError(f"{owner} expects a tensor of shape (B, {in_channels}, H, W), got {tuple(x.shape)}")


def check_frozen_stages(frozen_stages: int, num_stages: int) -> int:
    """Validate `frozen_stages` (-1, or 0..num_stages)."""
    if (
        isinstance(frozen_stages, bool)
        or not isinstance(frozen_stages, int)
        or not -1 <= frozen_stages <= num_stages
    ):
        raise FormatError(f"frozen_stages must be an int in -1..{num_stages}, got {frozen_stages!r}")
    return frozen_stages


class Backbone(nn.Module):
    """Base of all `pc3d.nn` backbones (see the module docstring for the contract).

    Subclasses build `self.stem` (a module, `nn.Identity()` when there is none; set
    `has_stem=False` then) and `self.stages`, then call `self._finish(...)`.
    """

    in_channels: int
    stem: nn.Module
    stages: nn.ModuleList
    out_indices: tuple[int, ...]
    out_channels: tuple[int, ...]
    out_strides: tuple[int, ...]
    frozen_stages: int
    norm_eval: bool
    has_stem: bool

    def _finish(
        self,
        stage_channels: Sequence[int],
        stage_strides: Sequence[int],
        out_indices: Sequence[int],
        frozen_stages: int,
        norm_eval: bool,
        has_stem: bool,
    ) -> None:
        """Record the output metadata and freeze; call at the end of a subclass `__init__`."""
        num = len(self.stages)
        self.out_indices = normalise_out_indices(out_indices, num)
        self.frozen_stages = check_frozen_stages(frozen_stages, num)
        self.out_channels = tuple(int(stage_channels[i]) for i in self.out_indices)
        self.out_strides = tuple(int(stage_strides[i]) for i in self.out_indices)
        self.norm_eval = bool(norm_eval)
        self.has_stem = has_stem
        for module in self._frozen_modules():
            for param in module.parameters():
                param.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules: list[nn.Module] = [self.stem] if self.has_stem else []
        return modules + list(self.stages[: self.frozen_stages])

    def train(self, mode: bool = True) -> Backbone:
        """Set train/eval mode, keeping frozen stages (and, with `norm_eval`, all BN) in eval."""
        super().train(mode)
        if mode:
            for module in self._frozen_modules():
                module.eval()
            if self.norm_eval:
                for module in self.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """`Tensor[B, C_in, H, W]` -> one `Tensor[B, out_channels[i], H / out_strides[i], W / out_strides[i]]` per out index."""
        check_image_batch(x, self.in_channels, type(self).__name__)
        return self._run_stages(self.stem(x))

    def _run_stages(self, x: Tensor) -> tuple[Tensor, ...]:
        """Run the stages on the stem output, up to the deepest requested one."""
        outs: list[Tensor] = []
        last = self.out_indices[-1]
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                outs.append(x)
            if index == last:
                break
        return tuple(outs)
