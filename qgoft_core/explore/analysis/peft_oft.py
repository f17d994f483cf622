"""PEFT OFT adapters (PEFT >= 0.14 format, `oft_R.weight`): the rotation PEFT applies, rebuilt exactly.

What PEFT 0.21 does with the stored vector of each block (tuners/oft/layer.py,
OFTRotationModule):

* skew matrix: the b(b-1)/2 values fill the strict upper triangle (row-major,
  `torch.triu_indices`), Q = U - U^T;
* COFT (`coft`): Q is first projected onto ||Q||_F <= eps / sqrt(stored blocks);
* rotation: exact Cayley R = (I - Q)(I + Q)^-1 (`use_cayley_neumann=False`), or
  the truncated series of `num_cayley_neumann_terms` = n terms:
  n = 1: I;  n = 2: I + 2Q;  n = 3 and n = 4: I + 2Q + 2Q^2 + Q^3;
  n >= 5: I + 2Q + 2Q^2 + ... + 2Q^(n-2) + Q^(n-1)  (PEFT's loop, kept as written);
* `block_share`: one stored block (weight of shape (1, ...)) repeated in_features / b times;
* the layer computes base(x R_blockdiag): the merged weight is W' = W R^T, so the
  input-side operator is M = R^T. ||M^T M - I||_F and the rotation angles are
  the same for R and R^T, so they are measured on R's blocks directly.

OFT has no scaling (PEFT refuses set_scale for OFT).
"""
from __future__ import annotations

import math
import re
from typing import Optional

import torch

from qgoft_core.explore.analysis.report import AdapterReport, InspectionError
from qgoft_core.explore.analysis.rows import all_finite, block_rotation_stats, group_tensors, new_row

OFT_PARAMS = ("oft_R.weight",)
PEFT_DEFAULT_NEUMANN = True  # OFTConfig.use_cayley_neumann
PEFT_DEFAULT_TERMS = 5  # OFTConfig.num_cayley_neumann_terms
PEFT_DEFAULT_EPS = 6e-5  # OFTConfig.eps (COFT)


def block_size_of(values_per_block: int) -> int:
    """b such that b(b-1)/2 == values_per_block; InspectionError-free: -1 when there is none."""
    b = int(round((1 + math.sqrt(1 + 8 * values_per_block)) / 2))
    return b if b * (b - 1) // 2 == values_per_block else -1


def skew_from_vector(vec: torch.Tensor, b: int) -> torch.Tensor:
    """PEFT's _pytorch_skew_symmetric: (k, b(b-1)/2) -> (k, b, b) with Q = U - U^T."""
    rows, cols = torch.triu_indices(b, b, 1)
    q = torch.zeros(vec.shape[0], b, b, dtype=vec.dtype)
    q[:, rows, cols] = vec
    return q - q.transpose(-1, -2)


def coft_project(vec: torch.Tensor, b: int, eps: float) -> torch.Tensor:
    """PEFT's _project_batch (COFT): each block's skew matrix shrunk onto ||Q||_F <= eps / sqrt(k)."""
    q = skew_from_vector(vec, b)
    eps = eps / math.sqrt(q.shape[0])
    norm = torch.linalg.matrix_norm(q, keepdim=True)
    projected = torch.where(norm <= eps, q, eps * q / norm)
    rows, cols = torch.triu_indices(b, b, 1)
    return projected[:, rows, cols]


def cayley_exact(q: torch.Tensor) -> torch.Tensor:
    """R = (I - Q)(I + Q)^-1, as PEFT's OFT (exact form) and BOFT compute it."""
    eye = torch.eye(q.shape[-1], dtype=q.dtype).expand_as(q)
    return torch.linalg.solve(eye + q, eye - q, left=False)


def cayley_neumann(q: torch.Tensor, terms: int) -> torch.Tensor:
    """PEFT 0.21's Cayley-Neumann series with `terms` terms (OFTRotationModule._cayley_batch), step by step."""
    r = torch.eye(q.shape[-1], dtype=q.dtype).repeat(q.shape[0], 1, 1)
    if terms > 1:
        r = r + 2.0 * q
        if terms > 2:
            q_squared = q @ q
            r = r + 2.0 * q_squared
            power = q_squared
            for _ in range(3, terms - 1):
                power = power @ q
                r = r + 2.0 * power
            power = power @ q
            r = r + power
    return r


def cayley(q: torch.Tensor, neumann_terms: Optional[int] = None) -> torch.Tensor:
    """PEFT's rotation of the skew matrices q: exact (None) or the series with that many terms."""
    return cayley_exact(q) if neumann_terms is None else cayley_neumann(q, neumann_terms)


def oft_settings(config: dict) -> tuple[Optional[int], bool, Optional[float]]:
    """(series terms or None for the exact form, block_share, COFT eps or None) as PEFT reads the config."""
    neumann = bool(config.get("use_cayley_neumann", PEFT_DEFAULT_NEUMANN))
    terms = int(config.get("num_cayley_neumann_terms", PEFT_DEFAULT_TERMS)) if neumann else None
    eps = float(config.get("eps", PEFT_DEFAULT_EPS)) if config.get("coft") else None
    return terms, bool(config.get("block_share", False)), eps


def oft_rotation_blocks(vec: torch.Tensor, b: int, config: dict) -> torch.Tensor:
    """PEFT's rotation blocks R (stored blocks, b, b) in float64 from the stored vectors (stored blocks, b(b-1)/2)."""
    terms, _, eps = oft_settings(config)
    vec = vec.double()
    if eps is not None:
        vec = coft_project(vec, b, eps)
    return cayley(skew_from_vector(vec, b), terms)


def oft_input_operator(vec: torch.Tensor, config: dict, in_features: Optional[int] = None) -> torch.Tensor:
    """M (d x d, float64) with W' = W M for one layer: blockdiag(R)^T, the shared block repeated if block_share.

    PEFT merges an OFT layer as W' = (R W^T)^T = W R^T (OFT's merge / get_delta_weight).
    """
    b = block_size_of(vec.shape[1])
    blocks = oft_rotation_blocks(vec, b, config)
    if blocks.shape[0] == 1 and oft_settings(config)[1]:
        if not in_features:
            raise ValueError("a block_share layer needs in_features to build its operator")
        blocks = blocks.expand(in_features // b, b, b)
    return torch.block_diag(*blocks).T


def analyse_oft(report: AdapterReport, config: dict, tensors: dict) -> None:
    if any(k.endswith(".oft_r") for k in tensors):
        raise InspectionError("this OFT adapter uses PEFT's format from before 0.14 (oft_r); re-save it "
                              "with a current PEFT to inspect it")
    groups, report.saved_params = group_tensors(tensors, OFT_PARAMS)
    terms, share, eps = oft_settings(config)
    report.notes.append("OFT rotations computed as PEFT does, with " + (
        f"the Cayley-Neumann series ({terms} terms); it is only approximately orthogonal" if terms is not None
        else "the exact Cayley transform") + (f", after COFT's projection (eps {eps:g})" if eps is not None else ""))
    if terms is not None and _older_than(config.get("peft_version"), (0, 18)):
        report.notes.append("this adapter was saved by a PEFT older than 0.18, whose Cayley-Neumann series "
                            "differed; the numbers are those of the series current PEFT applies on loading")
    if share:
        report.notes.append("block_share: each layer has one stored block, repeated along the diagonal; "
                            "its angles are shown once")
    for name, parts in groups.items():
        vec = parts["oft_R.weight"]
        if vec.dim() != 2:
            raise InspectionError(f"layer {name}: oft_R.weight has shape {tuple(vec.shape)}; expected "
                                  "(blocks, b(b-1)/2)")
        b = block_size_of(vec.shape[1])
        if b < 0:
            raise InspectionError(f"layer {name}: {vec.shape[1]} values per block is not b(b-1)/2 for any b")
        row = new_row(name, report.method_label, vec.shape[0] * b if not share else None,
                      vec.shape[0], vec.numel())
        row["_block"] = b
        report.layers.append(row)
        if all_finite(row, parts):
            report.angles[name] = block_rotation_stats(row, oft_rotation_blocks(vec, b, config))


def _older_than(version, than: tuple[int, int]) -> bool:
    """PEFT's check: a config without peft_version predates 0.18 (the field came with it)."""
    match = re.match(r"\s*(\d+)\.(\d+)", version) if isinstance(version, str) else None
    return match is None or (int(match.group(1)), int(match.group(2))) < than
