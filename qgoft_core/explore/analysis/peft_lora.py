"""PEFT LoRA adapters: the update s B A per layer, its Frobenius norm and effective rank.

s is PEFT's `scaling`: lora_alpha / r, or lora_alpha / sqrt(r) with rank-stabilised
LoRA (use_rslora), where lora_alpha comes from alpha_pattern when a key matches
the module (PEFT's get_pattern_key) and r is the layer's own rank (rank_pattern
decides it; the tensors carry it).
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch

from qgoft_core.explore.analysis.report import AdapterReport, InspectionError
from qgoft_core.explore.analysis.rows import all_finite, group_tensors, new_row

LORA_PARAMS = ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector", "lora_embedding_A", "lora_embedding_B")


def pattern_value(patterns: Any, name: str, default):
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches the module name or its tail."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def lora_scaling(config: dict, name: str, r: int) -> float:
    """PEFT's LoraLayer.scaling of module `name` with rank r."""
    alpha = float(pattern_value(config.get("alpha_pattern"), name, config.get("lora_alpha", 8)))
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def update_singular_values(a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """Singular values of scaling * B A from two QR factors: r x r work instead of n x d."""
    _, rb = torch.linalg.qr(b.double())
    _, ra = torch.linalg.qr(a.double().T)
    return abs(scaling) * torch.linalg.svdvals(rb @ ra.T)


def effective_rank(sv: torch.Tensor) -> float:
    """exp of the entropy of sigma / sum(sigma); 0 for a zero update."""
    total = float(sv.sum())
    if total <= 0:
        return 0.0
    p = (sv / total).numpy()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def analyse_lora(report: AdapterReport, config: dict, tensors: dict) -> None:
    groups, report.saved_params = group_tensors(tensors, LORA_PARAMS)
    if config.get("use_dora"):
        report.notes.append("DoRA magnitude vectors are counted but not analysed: ‖ΔW‖_F and the effective "
                            "rank are those of s B A alone (the tuned weights, with the base, are DoRA's)")
    if config.get("use_rslora"):
        report.notes.append("rank-stabilised LoRA: the update is scaled by lora_alpha / sqrt(r)")
    for name, parts in groups.items():
        a, b = parts.get("lora_A.weight"), parts.get("lora_B.weight")
        if a is None or b is None:
            if "lora_embedding_A" in parts:
                report.notes.append(f"{name}: LoRA on an embedding layer is counted but not analysed")
                continue
            raise InspectionError(f"layer {name}: lora_A.weight or lora_B.weight is missing")
        if a.dim() != 2 or b.dim() != 2 or b.shape[1] != a.shape[0]:
            raise InspectionError(f"layer {name}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not "
                                  "form a product B A (only linear layers are analysed)")
        r = a.shape[0]
        row = new_row(name, report.method_label, int(a.shape[1]), r, sum(p.numel() for p in parts.values()))
        report.layers.append(row)
        if not all_finite(row, parts):
            continue
        sv = update_singular_values(a, b, lora_scaling(config, name, r))
        row["‖ΔW‖_F"] = float(sv.norm())
        row["eff. rank"] = effective_rank(sv)
        row["_b_zero"] = not bool(b.any())  # flagged with LoRA's other checks (health.lora_flags)
