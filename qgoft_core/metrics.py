"""What an adapter has learned, as numbers: pure functions over tensors.

Everything here is computed without gradients and in float64 where precision
matters (hyperspherical-energy drift of a strict rotation is ~1e-12, so fp32
would drown it). Wide layers are sampled for the energy (stated in the result).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch

from qgoft_core.tuners.qgoft.layer import weight_out_in

HE_MAX_NEURONS = 256  # energy on at most this many neurons per layer (fixed, evenly spaced)
# Live snapshots: fp32 Gram products. Both the base and the tuned energy use it,
# so a strict rotation still shows a drift of ~1e-8, far below anything learned.
SNAPSHOT_GRAM_DTYPE = torch.float32


# -- single quantities ------------------------------------------------------
def hyperspherical_energy(weight, max_neurons: Optional[int] = HE_MAX_NEURONS,
                          eps: float = 1e-12, gram_dtype: torch.dtype = torch.float64,
                          min_distance: Optional[float] = None) -> float:
    """HE(W) = sum_{i != j} 1 / ||w^_i - w^_j|| over unit-normalised rows (s = 1).

    ||w^_i - w^_j||^2 = 2 - 2 cos_ij comes from the Gram matrix, in float64;
    distances are floored at sqrt(eps) so duplicate neurons give a large finite
    value rather than inf. With more rows than `max_neurons`, an evenly spaced
    fixed subset is used (the same subset for base and tuned weights).
    `gram_dtype=torch.float32` makes the Gram product ~3x cheaper (the live
    snapshots use it); the distances and the sum stay float64.

    `min_distance` (the playground's guard): raise ValueError instead for a
    zero-length neuron or two unit neurons closer than this (near-duplicates:
    the energy is effectively infinite and the Gram route no longer gives an
    accurate distance). `weight` may be a tensor or a numpy array.
    """
    weight = torch.as_tensor(weight).detach()
    rows = neuron_sample(weight.shape[0], max_neurons)
    w = weight[rows].to(gram_dtype)
    norms = w.norm(dim=1, keepdim=True)
    if min_distance is not None:
        zero = (norms[:, 0] <= 1e-12).nonzero()[:, 0]
        if zero.numel():
            raise ValueError(f"zero-length neuron(s) at rows {rows[zero].tolist()}")
    unit = w / norms.clamp_min(torch.finfo(gram_dtype).tiny)
    cos = (unit @ unit.T).to(torch.float64)
    dist2 = 2.0 - 2.0 * cos
    if min_distance is not None:
        close = dist2.clamp_min(0).sqrt() < min_distance
        close.fill_diagonal_(False)
        if close.any():
            i, j = close.nonzero()[0].tolist()
            raise ValueError(f"neurons {int(rows[i])} and {int(rows[j])} are near-duplicates (distance < "
                             f"{min_distance:g}); hyperspherical energy is not defined")
    dist = dist2.clamp_min(eps).sqrt()
    dist.fill_diagonal_(math.inf)
    return float((1.0 / dist).sum())


def torch_weight(layer) -> torch.Tensor:
    """(out, in) weight of an nn.Linear or a transformers Conv1D (stored (in, out)), detached."""
    return weight_out_in(layer).detach()


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr
    value = spearmanr(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)).statistic
    return float(value) if np.isfinite(value) else 0.0


def neuron_sample(n: int, max_neurons: Optional[int]) -> torch.Tensor:
    if max_neurons is None or n <= max_neurons:
        return torch.arange(n)
    return torch.linspace(0, n - 1, max_neurons).round().long()


def relative_drift(new: float, old: float) -> float:
    return (new - old) / old if old else 0.0


def norm_ratios(base: torch.Tensor, tuned: torch.Tensor) -> torch.Tensor:
    """Per-neuron ||w'_i|| / ||w_i|| (rows of the torch weight)."""
    b = base.detach().double().norm(dim=1)
    return tuned.detach().double().norm(dim=1) / b.clamp_min(1e-300)


def orthogonality_deviation(operator: torch.Tensor) -> tuple[float, float]:
    """(||M^T M - I||_F, the same / sqrt(d)) of a dense operator, in float64.

    For any learned input-side operator (PEFT OFT / BOFT, least-squares fits);
    GOFT / qGOFT layers use `GivensTree.gram_deviation`, which never forms M.
    OFT / BOFT operators are mostly zeros, so the Gram product is formed sparsely.
    """
    import scipy.sparse  # only here: `import qgoft_core` does not load scipy

    m = operator.detach().to(torch.float64).cpu().numpy()
    d = m.shape[0]
    sparse = scipy.sparse.csr_matrix(m)
    residual = (sparse.T @ sparse - scipy.sparse.identity(d, format="csr")).tocsr()
    dev = float(np.sqrt((residual.data**2).sum()))
    return dev, dev / math.sqrt(d)


def block_polar(blocks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per 2 x 2 block (columns alpha, beta): the polar decomposition B = U P.

    angle: the rotation factor's angle (radians; a reflection's U is reported by
    det < 0); scales: the two singular values; shear: cos of the angle between
    alpha and beta (0 for an orthogonal block, scale-free).
    """
    b = blocks.detach().to(torch.float64)
    # Closed forms for 2 x 2 (a batched SVD of thousands of tiny blocks costs
    # more than everything else here): the polar factor is proportional to
    # B + cof(B) when det >= 0 and to B - cof(B) (a reflection) when det < 0.
    a, bb, c, d = b[..., 0, 0], b[..., 0, 1], b[..., 1, 0], b[..., 1, 1]
    det = a * d - bb * c
    proper = det >= 0
    angle = torch.where(proper, torch.atan2(c - bb, a + d), torch.atan2(bb + c, a - d))
    fro2 = (b * b).sum((-1, -2))
    gap = (fro2 * fro2 - 4 * det * det).clamp_min(0).sqrt()
    largest = ((fro2 + gap) / 2).sqrt()
    # s1 s2 = |det| gives the small one without the cancellation of fro2 - gap.
    scales = torch.stack((largest, det.abs() / largest.clamp_min(1e-300)), dim=-1)
    alpha, beta = b[..., 0], b[..., 1]
    na, nb = alpha.norm(dim=-1), beta.norm(dim=-1)
    dot = (alpha * beta).sum(-1)
    return {
        "angle": angle,
        "scales": scales,
        "shear": dot / (na * nb).clamp_min(1e-300),
        "det": det,
        "dot": dot,
        "alpha_norm": na,
        "beta_norm": nb,
    }


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between two representations of the same examples (rows)."""
    x = x.detach().double().reshape(x.shape[0], -1)
    y = y.detach().double().reshape(y.shape[0], -1)
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    # Feature-space form ||Y^T X||^2 / (||X^T X|| ||Y^T Y||), via the smaller
    # example-space Gram matrices when there are fewer examples than features.
    kx, ky = x @ x.T, y @ y.T
    hsic = (kx * ky).sum()
    denom = kx.norm() * ky.norm()
    return float(hsic / denom) if denom > 0 else 0.0


# -- per layer --------------------------------------------------------------
@dataclass
class LayerMetrics:
    name: str
    d: int
    n: int
    method: str
    angles: list[float]  # radians, one per pair (qgoft: rotation factor of each block)
    norm_ratio: list[float]  # per neuron
    orth_dev: float  # ||M^T M - I||_F / sqrt(d)
    orth_dev_fro: float
    he_base: float
    he_tuned: float
    he_drift: float
    he_neurons: int  # neurons the energy was computed on
    scales: Optional[list[float]] = None  # learned output/input scales
    block: dict = field(default_factory=dict)  # qgoft block-level terms

    def to_dict(self) -> dict:
        return asdict(self)


def weight_metrics(name: str, base: torch.Tensor, tuned: torch.Tensor, method: str,
                   operator: Optional[torch.Tensor] = None, base_energy: Optional[float] = None,
                   max_neurons: Optional[int] = HE_MAX_NEURONS,
                   orth_dev_fro: Optional[float] = None) -> LayerMetrics:
    """Metrics any method has: norm changes, energy drift, and (for rotation
    methods, given their input-side operator or its ||M^T M - I||_F) the
    orthogonality deviation."""
    base, tuned = base.detach(), tuned.detach()
    he_base = base_energy if base_energy is not None else \
        hyperspherical_energy(base, max_neurons, gram_dtype=SNAPSHOT_GRAM_DTYPE)
    he_tuned = hyperspherical_energy(tuned, max_neurons, gram_dtype=SNAPSHOT_GRAM_DTYPE)
    d = base.shape[1]
    if orth_dev_fro is None:
        orth_dev_fro = orthogonality_deviation(operator)[0] if operator is not None else math.nan
    dev_fro, dev = orth_dev_fro, orth_dev_fro / math.sqrt(d)
    return LayerMetrics(
        name=name, d=base.shape[1], n=base.shape[0], method=method, angles=[],
        norm_ratio=norm_ratios(base, tuned).tolist(), orth_dev=dev, orth_dev_fro=dev_fro,
        he_base=he_base, he_tuned=he_tuned, he_drift=relative_drift(he_tuned, he_base),
        he_neurons=min(base.shape[0], max_neurons or base.shape[0]),
    )


def layer_metrics(name: str, layer, base_energy: Optional[float] = None,
                  max_neurons: Optional[int] = HE_MAX_NEURONS) -> LayerMetrics:
    """All metrics of one QGOFTLayer (merged or not: uses the pretrained weight)."""
    with torch.no_grad():
        # fp32 products (fast; ~1e-7 relative error, far below the drifts shown),
        # float64 for the Gram-based quantities computed from them.
        result = weight_metrics(name, layer.original_weight(), layer.merged_weight(torch.float32),
                                layer.method, None, base_energy, max_neurons,
                                orth_dev_fro=layer.orthogonality_deviation(torch.float32))
        if layer.method == "goft":
            result.angles = layer.angles().detach().double().tolist()
        else:
            polar = block_polar(layer.qgoft_blocks)
            result.angles = polar["angle"].tolist()
            result.block = {
                "penalty": float((polar["dot"] ** 2).sum()),
                "cos2_sum": float((polar["shear"] ** 2).sum()),
                "norm_drift": float(((polar["alpha_norm"] - 1) ** 2 + (polar["beta_norm"] - 1) ** 2).sum()),
                "reflections": int((polar["det"] < 0).sum()),
                "scale_min": float(polar["scales"].min()),
                "scale_max": float(polar["scales"].max()),
                "max_abs_shear": float(polar["shear"].abs().max()),
            }
        if layer.scaling == "output":
            result.scales = layer.qgoft_scale_out.detach().double().tolist()
        elif layer.scaling == "input":
            result.scales = layer.qgoft_scale_in.detach().double().tolist()
    return result


class BaseEnergyCache:
    """Energies of the frozen base weights, computed once per layer."""

    def __init__(self, max_neurons: Optional[int] = HE_MAX_NEURONS):
        self.max_neurons = max_neurons
        self._values: dict[str, float] = {}

    def get(self, name: str, layer) -> float:
        if name not in self._values:
            self._values[name] = hyperspherical_energy(layer.original_weight(), self.max_neurons,
                                                       gram_dtype=SNAPSHOT_GRAM_DTYPE)
        return self._values[name]

    def get_weight(self, name: str, weight: torch.Tensor) -> float:
        if name not in self._values:
            self._values[name] = hyperspherical_energy(weight, self.max_neurons,
                                                       gram_dtype=SNAPSHOT_GRAM_DTYPE)
        return self._values[name]


def adapter_metrics(model, cache: Optional[BaseEnergyCache] = None) -> dict[str, LayerMetrics]:
    """Metrics of every adapted layer of a QGOFTModel."""
    cache = cache or BaseEnergyCache()
    return {name: layer_metrics(name, layer, cache.get(name, layer), cache.max_neurons)
            for name, layer in model.adapter_layers().items()}


def summarize(metrics: dict[str, LayerMetrics]) -> dict[str, float]:
    """Model-level summary: worst-case and mean values over layers."""
    rows = list(metrics.values())
    if not rows:
        return {}
    all_angles = np.concatenate([np.abs(np.asarray(r.angles)) for r in rows])
    ratios = np.concatenate([np.asarray(r.norm_ratio) for r in rows])
    return {
        "layers": len(rows),
        "max_abs_angle_deg": float(np.degrees(all_angles.max())) if all_angles.size else 0.0,
        "mean_abs_angle_deg": float(np.degrees(all_angles.mean())) if all_angles.size else 0.0,
        "max_orth_dev": max(r.orth_dev for r in rows),
        "mean_abs_he_drift": float(np.mean([abs(r.he_drift) for r in rows])),
        "max_abs_he_drift": max(abs(r.he_drift) for r in rows),
        "norm_ratio_min": float(ratios.min()),
        "norm_ratio_max": float(ratios.max()),
    }
