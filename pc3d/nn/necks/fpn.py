"""Feature Pyramid Network (Lin et al., 2017) with extra coarser levels (RetinaNet's P6/P7).

Lateral 1x1 convs bring the used backbone levels (`start_level .. end_level`) to `out_channels`;
a top-down pass adds each coarser lateral, nearest-upsampled to the finer one's exact size (so
odd sizes work), and a 3x3 conv smooths every merged map. When `num_outs` exceeds the number of
used levels, the extra levels come either from a 1x1/2 max pool of the last output
(`add_extra_convs=False`, Faster R-CNN's P6) or from 3x3/2 convs (`add_extra_convs`):

- `"on_input"`: the first extra conv reads the last *used backbone input* (RetinaNet: P6 from C5);
- `"on_lateral"`: it reads the last lateral (before the 3x3 smoothing);
- `"on_output"`: it reads the last FPN output (P5);

and each further extra conv reads the previous extra level (through a ReLU when
`relu_before_extra_convs`, as RetinaNet does for P7). `True` means `"on_input"`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.layers import ConvNormAct, check_norm

_EXTRA_SOURCES = ("on_input", "on_lateral", "on_output")


class FPN(nn.Module):
    """FPN neck: `len(in_channels)` maps in, `num_outs` maps of `out_channels` out, finest first.

    Args:
        in_channels: channels of each backbone output (e.g. `backbone.out_channels`).
        out_channels: channels of every output level.
        num_outs: number of output levels (>= the number of used inputs).
        start_level: first backbone output used.
        end_level: one past the last used backbone output; -1 means all.
        add_extra_convs: False, True (= `"on_input"`), `"on_input"`, `"on_lateral"` or `"on_output"`.
        relu_before_extra_convs: apply ReLU before each extra conv after the first.
        norm: norm of the lateral and output convs (`"none"`, `"bn"`, `"gn"`, ...).
        in_strides: strides of the backbone outputs (e.g. `backbone.out_strides`); when given,
            `out_strides` gives the stride of each output level (extra levels double it).

    Attributes:
        out_channels: `tuple[int, ...]`, one entry per output level (all equal).
        out_strides: `tuple[int, ...] | None`.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        relu_before_extra_convs: bool = False,
        norm: str = "none",
        in_strides: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_norm(norm)
        in_channels = [int(c) for c in in_channels]
        end, add_extra_convs = _check_levels(
            len(in_channels), num_outs, start_level, end_level, add_extra_convs, in_strides
        )
        used = end - start_level
        self.in_channels = tuple(in_channels)
        self.num_outs = num_outs
        self.start_level = start_level
        self.end_level = end
        self.add_extra_convs: str | bool = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.out_channels = (int(out_channels),) * num_outs
        # Built in this order (laterals, outputs, extras) so the state_dict keys stay the same.
        self.lateral_convs = nn.ModuleList(
            ConvNormAct(in_channels[i], out_channels, 1, norm=norm, activation="none")
            for i in range(start_level, end)
        )
        self.fpn_convs = nn.ModuleList(
            ConvNormAct(out_channels, out_channels, 3, norm=norm, activation="none") for _ in range(used)
        )
        self.extra_convs = _build_extra_convs(
            in_channels[end - 1], out_channels, num_outs - used, add_extra_convs, norm
        )
        self.out_strides: tuple[int, ...] | None = None
        if in_strides is not None:
            strides = [int(s) for s in in_strides[start_level:end]]
            strides += [strides[-1] * 2 ** (k + 1) for k in range(num_outs - used)]
            self.out_strides = tuple(strides)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # Uniform Xavier init, as the FPN/RetinaNet references do.
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """`len(in_channels)` maps `Tensor[B, in_channels[i], H_i, W_i]` -> `num_outs` maps `Tensor[B, out_channels, H'_j, W'_j]`."""
        if len(inputs) != len(self.in_channels):
            raise ShapeError(f"FPN was built for {len(self.in_channels)} inputs, got {len(inputs)}")
        for i, (x, c) in enumerate(zip(inputs, self.in_channels)):
            if x.dim() != 4 or x.shape[1] != c:
                raise ShapeError(f"FPN input {i} must have shape (B, {c}, H, W), got {tuple(x.shape)}")
        used = inputs[self.start_level : self.end_level]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, used)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        extra = self.num_outs - len(outs)
        if extra > 0 and not self.add_extra_convs:
            for _ in range(extra):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif extra > 0:
            source = {"on_input": used[-1], "on_lateral": laterals[-1], "on_output": outs[-1]}[
                str(self.add_extra_convs)
            ]
            outs.append(self.extra_convs[0](source))
            for conv in self.extra_convs[1:]:
                outs.append(conv(F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]))
        return tuple(outs)


def _check_levels(
    num_in: int,
    num_outs: int,
    start_level: int,
    end_level: int,
    add_extra_convs: bool | str,
    in_strides: Sequence[int] | None,
) -> tuple[int, bool | str]:
    """Check the level arguments of `FPN` (see its docstring) before any layer is built.

    Args:
        num_in: number of backbone outputs.
        num_outs: number of output levels.
        start_level: first backbone output used.
        end_level: one past the last used backbone output; -1 means all.
        add_extra_convs: False, True, `"on_input"`, `"on_lateral"` or `"on_output"`.
        in_strides: strides of the backbone outputs, or None.

    Returns:
        The end level (one past the last used input) and `add_extra_convs` with True read as
        `"on_input"`.

    Raises:
        FormatError: no inputs, levels outside the inputs, fewer outputs than used inputs, an
            unknown extra-conv source, or `in_strides` of another length than `in_channels`.
    """
    if num_in == 0:
        raise FormatError("FPN in_channels is empty; pass the backbone's out_channels")
    end = num_in if end_level == -1 else end_level
    if not 0 <= start_level < end <= num_in:
        raise FormatError(
            f"FPN levels start_level={start_level}, end_level={end_level} do not fit {num_in} inputs"
        )
    used = end - start_level
    if num_outs < used:
        raise FormatError(f"FPN num_outs={num_outs} is less than the {used} input levels used")
    if add_extra_convs is True:
        add_extra_convs = "on_input"
    if add_extra_convs is not False and add_extra_convs not in _EXTRA_SOURCES:
        raise FormatError(
            f"add_extra_convs must be False, True or one of {_EXTRA_SOURCES}, got {add_extra_convs!r}"
        )
    if in_strides is not None and len(in_strides) != num_in:
        raise FormatError(f"in_strides has {len(in_strides)} entries for {num_in} inputs")
    return end, add_extra_convs


def _build_extra_convs(
    last_in_channels: int, out_channels: int, num_extra: int, add_extra_convs: bool | str, norm: str
) -> nn.ModuleList:
    """The 3x3/2 convs of the extra levels; empty when they come from max pooling.

    Args:
        last_in_channels: channels of the last used backbone output (read by an `"on_input"`
            first extra conv).
        out_channels: channels of every output level.
        num_extra: number of extra levels.
        add_extra_convs: False, `"on_input"`, `"on_lateral"` or `"on_output"` (already checked).
        norm: norm of the convs.

    Returns:
        `num_extra` convs, or none when `add_extra_convs` is False.
    """
    extra_convs = nn.ModuleList()
    if add_extra_convs:
        for k in range(num_extra):
            source = last_in_channels if k == 0 and add_extra_convs == "on_input" else out_channels
            extra_convs.append(ConvNormAct(source, out_channels, 3, stride=2, norm=norm, activation="none"))
    return extra_convs
