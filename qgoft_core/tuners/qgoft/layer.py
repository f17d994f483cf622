"""One adapted linear layer: y = base(x @ M), M the GOFT / qGOFT operator.

The rotation acts on the input side, so every neuron (row of the torch weight)
is moved by the same map; with a strict rotation all angles between neurons
and hence the hyperspherical energy are kept. Adapter parameters live in fp32
whatever the base dtype, and the rotation is computed in fp32 too: cos/sin and
products of many 2 x 2 blocks lose too much in bf16/fp16.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table

try:  # GPT-2 style layers store their weight as (in, out).
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover - transformers is a hard dependency
    Conv1D = ()

ADAPTABLE_TYPES = (nn.Linear, Conv1D) if Conv1D else (nn.Linear,)


def is_conv1d(module: nn.Module) -> bool:
    """Whether `module` is a transformers Conv1D (GPT-2 style: weight stored (in, out))."""
    return bool(Conv1D) and isinstance(module, Conv1D)


def _not_adaptable(module: nn.Module) -> TypeError:
    return TypeError(f"cannot adapt a {type(module).__name__}; only nn.Linear and transformers Conv1D")


def weight_out_in(module: nn.Module) -> torch.Tensor:
    """The weight of an nn.Linear or Conv1D in torch layout (out, in): a view, not a copy.

    The one place that knows Conv1D stores its weight transposed.
    """
    if isinstance(module, nn.Linear):
        return module.weight
    if is_conv1d(module):
        return module.weight.t()
    raise _not_adaptable(module)


def layer_shape(module: nn.Module) -> tuple[int, int]:
    """(in_features d, out_features n) of a Linear or Conv1D."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    n, d = weight_out_in(module).shape
    return d, n


class QGOFTLayer(nn.Module):
    """Wraps a frozen nn.Linear / Conv1D with a learned input-side operator."""

    def __init__(self, base_layer: nn.Module, method: str = "qgoft", scaling: str | None = None,
                 angle_param: str = "plain", block_levels: int = 4):
        super().__init__()
        self.in_features, self.out_features = layer_shape(base_layer)
        self.base_layer = base_layer
        self.method, self.scaling, self.angle_param = method, scaling, angle_param
        self.is_conv1d = is_conv1d(base_layer)
        self.tree = GivensTree(self.in_features, block_levels)
        device = base_layer.weight.device
        pairs = self.in_features - 1
        if method == "goft":
            # Identity at init: theta = 0 (and phi = 0 for the tanh form).
            self.qgoft_theta = nn.Parameter(torch.zeros(pairs, device=device))
        else:
            eye = torch.eye(2, device=device).expand(pairs, 2, 2).clone()
            self.qgoft_blocks = nn.Parameter(eye)
        if scaling == "output":
            self.qgoft_scale_out = nn.Parameter(torch.ones(self.out_features, device=device))
        elif scaling == "input":
            self.qgoft_scale_in = nn.Parameter(torch.ones(self.in_features, device=device))
        self.merged = False
        self.disabled = False
        self._merged_from: torch.Tensor | None = None

    # -- the operator -------------------------------------------------------
    def angles(self) -> torch.Tensor:
        """GOFT angles in radians (only for method='goft')."""
        if self.method != "goft":
            raise AttributeError("qgoft blocks have no single angle; see metrics.block_polar")
        if self.angle_param == "tanh":
            return math.pi * torch.tanh(self.qgoft_theta)
        return self.qgoft_theta

    def block_table(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(d, 4) table of flattened 2 x 2 blocks (+ an identity row), in `dtype`.

        cos/sin are taken in `dtype`: a float64 table of a strict rotation is
        orthogonal to ~1e-16 (an fp32 table cast up only to ~1e-7).
        """
        if self.method == "goft":
            theta = self.qgoft_theta.to(dtype)
            if self.angle_param == "tanh":
                theta = math.pi * torch.tanh(theta)
            return givens_table(theta)
        return quasi_table(self.qgoft_blocks.to(dtype))

    def operator(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Dense d x d input-side operator diag(s_in) M (for merging and metrics)."""
        m = self.tree.dense(self.block_table(dtype))
        if self.scaling == "input":
            m = self.qgoft_scale_in.to(dtype).unsqueeze(1) * m
        return m

    def orthogonality_deviation(self, dtype: torch.dtype = torch.float32) -> float:
        """||A^T A - I||_F of the operator A = diag(s_in) M as applied in `dtype`
        (fp32: what training uses), without forming the d x d matrix."""
        scale = self.qgoft_scale_in if self.scaling == "input" else None
        return self.tree.gram_deviation(self.block_table(dtype), scale)

    def base_weight(self) -> torch.Tensor:
        """The frozen weight in torch layout (out, in), as stored (merged or not)."""
        return weight_out_in(self.base_layer)

    def original_weight(self) -> torch.Tensor:
        """The pretrained weight (out, in), also while merged."""
        return self._merged_from if self.merged else self.base_weight()

    def merged_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """diag(s_out) W M_s^T without touching the layer (O(n d log d))."""
        w = self.original_weight().to(dtype)
        out = self.tree.rotate_transposed(w, self.block_table(dtype))
        if self.scaling == "input":  # W (diag(s) M)^T = (W M^T) diag(s)
            out = out * self.qgoft_scale_in.to(dtype)
        if self.scaling == "output":
            out = self.qgoft_scale_out.to(dtype).unsqueeze(1) * out
        return out

    def orthogonality_penalty(self) -> torch.Tensor:
        """sum_i <alpha_i, beta_i>^2 over the layer's blocks (0 for GOFT)."""
        if self.method == "goft":
            return self.qgoft_theta.new_zeros(())
        alpha, beta = self.qgoft_blocks[..., 0], self.qgoft_blocks[..., 1]
        return ((alpha * beta).sum(-1) ** 2).sum()

    # -- forward ------------------------------------------------------------
    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.disabled:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        if self.merged:
            return self.base_layer(x, *args, **kwargs)
        dtype = x.dtype
        if self.scaling == "input":
            x = x * self.qgoft_scale_in.to(x.dtype)
        rotated = self.tree.rotate(x, self.block_table()).to(dtype)
        if self.scaling != "output":
            return self.base_layer(rotated, *args, **kwargs)
        weight = self.base_weight()
        out = nn.functional.linear(rotated, weight) * self.qgoft_scale_out.to(dtype)
        bias = self.base_layer.bias
        return out if bias is None else out + bias

    # -- merging ------------------------------------------------------------
    @torch.no_grad()
    def merge(self) -> None:
        """Fold the operator into the base weight: zero inference overhead."""
        if self.merged:
            return
        original = self.base_weight().detach().clone()
        merged = self.merged_weight(torch.float64).to(original.dtype)
        self._write_weight(merged)
        self._merged_from = original
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore the pretrained weight exactly (kept aside at merge time)."""
        if not self.merged:
            return
        self._write_weight(self._merged_from)
        self._merged_from = None
        self.merged = False

    def _write_weight(self, weight: torch.Tensor) -> None:
        """Write an (out, in) weight into the base layer, whatever its storage layout."""
        weight_out_in(self.base_layer).data.copy_(weight)

    def extra_repr(self) -> str:
        return (f"method={self.method}, d={self.in_features}, n={self.out_features}, "
                f"scaling={self.scaling}, merged={self.merged}")
