"""PEFT BOFT adapters (`boft_R`, `boft_s`): butterfly factors of exact Cayley blocks, and output scales.

What PEFT 0.21 does (tuners/boft/layer.py): each stored b x b block A becomes
the skew matrix Q = (A - A^T) / 2 and then R = (I - Q)(I + Q)^-1 (exact, so
orthogonal to float error); factor i is P_i blockdiag(R_i) P_i^T with a
butterfly permutation P_i, and the rotation is B = F_{N-1} ... F_0. The merged
weight is W' = diag(s) W B^T: the input-side operator is M = B^T, and the
learned scales s (`boft_s`, one per output neuron) multiply the rows.
A product of orthogonal blocks is orthogonal, so orthogonality, reflections and
angles are measured per block of each factor (with one factor, the blocks are M's).
"""
from __future__ import annotations

import torch

from qgoft_core.explore.analysis.peft_oft import cayley_exact
from qgoft_core.explore.analysis.report import AdapterReport, InspectionError
from qgoft_core.explore.analysis.rows import (all_finite, block_rotation_stats, group_tensors, new_row,
                                              scale_stats)

BOFT_PARAMS = ("boft_R", "boft_s")


def boft_rotation_blocks(data: torch.Tensor) -> torch.Tensor:
    """PEFT's cayley_batch in float64: (factors, blocks, b, b) stored -> (factors * blocks, b, b) rotations."""
    b = data.shape[-1]
    data = data.double().reshape(-1, b, b)
    return cayley_exact(0.5 * (data - data.transpose(-1, -2)))


def analyse_boft(report: AdapterReport, config: dict, tensors: dict) -> None:
    groups, report.saved_params = group_tensors(tensors, BOFT_PARAMS)
    factors_seen = set()
    for name, parts in groups.items():
        data, s = parts.get("boft_R"), parts.get("boft_s")
        if data is None or data.dim() != 4 or data.shape[-1] != data.shape[-2]:
            raise InspectionError(f"layer {name}: boft_R is missing or not of shape (factors, blocks, b, b)")
        factors, blocks, b, _ = data.shape
        factors_seen.add(int(factors))
        row = new_row(name, report.method_label, blocks * b, None if s is None else s.numel(),
                      sum(p.numel() for p in parts.values()))
        report.layers.append(row)
        if not all_finite(row, parts):
            continue
        report.angles[name] = block_rotation_stats(row, boft_rotation_blocks(data))
        if s is not None:
            scales = s.double().numpy().ravel()
            report.scales[name] = scales
            scale_stats(row, scales)
    if any(f > 1 for f in factors_seen):
        report.notes.append(f"BOFT with {max(factors_seen)} butterfly factors: angles are those of each "
                            "block of each factor (the rotation is their product)")


def butterfly_permutation(n: int, blocks: int, half_block: int, factors_minus_one: int) -> torch.Tensor:
    """PEFT's BOFTLayer.block_butterfly_perm: the index order of one butterfly factor."""
    if factors_minus_one == 0:
        return torch.arange(n)
    if blocks * half_block * 2 > n:
        raise ValueError("Invalid number of blocks!")
    block_size = int(n // blocks)
    indices = torch.arange(n)
    step = block_size / half_block
    order = torch.empty(block_size, dtype=torch.long)
    sequence = torch.cat((torch.arange(0, step, 2), torch.arange(1, step, 2)), dim=0)
    for i, pos in enumerate(sequence):
        order[int(i * half_block): int(i * half_block + half_block)] = \
            torch.arange(block_size)[int(pos * half_block): int(pos * half_block + half_block)]
    for start in range(0, n, block_size):
        indices[start:start + block_size] = indices[start:start + block_size][order]
    return indices


def boft_input_operator(data: torch.Tensor) -> torch.Tensor:
    """M (d x d, float64) with W' = diag(s) W M: the transpose of PEFT's butterfly product B.

    B = F_{N-1} ... F_0, F_i = P_i blockdiag(R_i) P_i^T (BOFT's get_delta_weight).
    """
    factors, blocks, b, _ = data.shape
    n = blocks * b
    rotations = boft_rotation_blocks(data).reshape(factors, blocks, b, b)
    product = torch.eye(n, dtype=torch.float64)
    for i in range(factors):
        perm = butterfly_permutation(n, int(blocks / (2 ** i)), int(b / 2), factors - 1)
        p = torch.zeros(n, n, dtype=torch.float64)
        p[torch.arange(n), perm] = 1.0
        product = (p @ torch.block_diag(*rotations[i]) @ p.T) @ product
    return product.T
