"""Building the per-layer table: grouping adapter tensors by layer, rows, angle and rotation statistics."""
from __future__ import annotations

import math
import re
from typing import Optional

import numpy as np
import torch

from qgoft_core.explore.analysis.health import wrap_angles
from qgoft_core.explore.analysis.report import COLUMNS, AdapterReport

KEY_PREFIX = "base_model.model."  # PEFT's prefix of every saved key


def group_tensors(tensors: dict[str, torch.Tensor], suffixes: tuple[str, ...]) -> tuple[dict[str, dict], int]:
    """{module path: {suffix: tensor}} for the adapter tensors; numel of everything else."""
    layers: dict[str, dict] = {}
    other = 0
    for key, value in tensors.items():
        for suffix in suffixes:
            if key.endswith("." + suffix):
                module = key[: -len(suffix) - 1]
                module = module[len(KEY_PREFIX):] if module.startswith(KEY_PREFIX) else module
                layers.setdefault(module, {})[suffix] = value
                break
        else:
            other += value.numel()
    return layers, other


def layer_label(name: str) -> str:
    """The short name of a module ("L3.query"), the same as Train's charts use.

    Inspect shows layers only by `display_names` (this name, made unique within
    the adapter): the table, the flags, the spectrum dropdown and the figures'
    axes; the full module path goes in the table's module column and in hovers.
    """
    # The one definition lives with the figures' axis labels; it is plain string work
    # (the import is here, not at module level, so that reading an adapter stays free of plotly
    # until a name is needed).
    from qgoft_core.viz.figures import short_layer_name

    return short_layer_name(name)


def display_names(modules: list[str]) -> dict[str, str]:
    """{module path: displayed name}: `layer_label`, lengthened where two modules would share one.

    Colliding names take more of their module path (its last 3, 4, ... parts)
    until they differ; the full path is the last resort.
    """
    names = {m: layer_label(m) for m in modules}
    for _ in range(64):
        seen: dict[str, list[str]] = {}
        for module, name in names.items():
            seen.setdefault(name, []).append(module)
        clashes = [group for group in seen.values() if len(group) > 1]
        if not clashes:
            break
        for group in clashes:
            for module in group:
                parts, current = module.split("."), names[module]
                longer = next((".".join(parts[-k:]) for k in range(3, len(parts) + 1)
                               if len(".".join(parts[-k:])) > len(current)
                               and ".".join(parts[-k:]) != current), module)
                names[module] = longer
    return names


def new_row(name: str, kind: str, d, n_or_r, params: int) -> dict:
    row = {c: None for c in COLUMNS}
    row.update({"layer": layer_label(name), "module": name, "kind": kind, "d": d, "n/r": n_or_r,
                "params": params, "_flags": []})
    return row


def angle_stats(row: dict, angles: np.ndarray) -> None:
    if angles.size:
        degrees = np.degrees(np.abs(wrap_angles(angles)))
        row["max |angle| (deg)"] = float(degrees.max())
        row["mean |angle| (deg)"] = float(degrees.mean())


def scale_stats(row: dict, scales: Optional[np.ndarray]) -> None:
    if scales is not None and scales.size:
        row["scale min"], row["scale max"] = float(scales.min()), float(scales.max())


def all_finite(row: dict, parts: dict[str, torch.Tensor]) -> bool:
    bad = [k for k, v in parts.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        row["_flags"].append(f"{', '.join(bad)} contain NaN or infinite values; the adapter is broken "
                             "(training diverged?)")
        row["_broken"] = True
    return not bad


def principal_angles(blocks: np.ndarray) -> np.ndarray:
    """Rotation angles (radians, >= 0) of each b x b block: eigenvalue phases, one per conjugate pair."""
    b = blocks.shape[-1]
    phases = np.sort(np.abs(np.angle(np.linalg.eigvals(blocks))), axis=-1)[..., ::-1]
    return phases[..., ::2][..., : max(b // 2, 1)].reshape(-1)


def orth_dev(blocks: torch.Tensor) -> float:
    """||M^T M - I||_F / sqrt(d) of the block-diagonal M made of `blocks` (k, b, b), d = k b.

    Normalised by sqrt(d), it is the same for M and for M with its blocks repeated
    (PEFT OFT's block_share), and the same for M and M^T.
    """
    eye = torch.eye(blocks.shape[-1], dtype=blocks.dtype)
    residual = blocks.transpose(-1, -2) @ blocks - eye
    return float(residual.pow(2).sum().sqrt()) / math.sqrt(blocks.shape[0] * blocks.shape[-1])


def block_rotation_stats(row: dict, rotations: torch.Tensor) -> np.ndarray:
    """Orthogonality, reflections and angles of a batch of b x b rotation blocks; returns the angles."""
    row["orth dev"] = orth_dev(rotations)
    row["reflections"] = int((torch.linalg.det(rotations) < 0).sum())
    angles = principal_angles(rotations.numpy())
    angle_stats(row, angles)
    return angles


def natural_key(name: str) -> list:
    """'layer.10.x' after 'layer.9.x': numbers compared as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# A block's sub-modules in the order the forward pass uses them (BERT/RoBERTa/DeBERTa, DistilBERT,
# MPNet, ModernBERT, GPT-2, LLaMA-style, Phi): query, key, value, attention output, MLP in, up, out.
# A module path's part after its layer number is matched against these suffixes (the longest wins:
# "attention.output.dense" is the attention output, "output.dense" alone the MLP's).
FORWARD_ROLES = (
    ("query", "q_lin", "q_proj", "q", "query_proj", "in_proj", "Wqkv", "qkv_proj", "c_attn"),
    ("key", "k_lin", "k_proj", "k", "key_proj"),
    ("value", "v_lin", "v_proj", "v", "value_proj"),
    ("attention.output.dense", "out_lin", "o_proj", "o", "attn.Wo", "attn.c_proj", "self_attn.dense",
     "out_proj"),
    ("intermediate.dense", "lin1", "gate_proj", "gate_up_proj", "Wi", "c_fc", "fc1"),
    ("up_proj",),
    ("output.dense", "lin2", "down_proj", "mlp.Wo", "mlp.c_proj", "fc2"),
)


def forward_role(tail: str) -> int:
    """The position of a block's sub-module (path after the layer number) in the forward pass; unknown last."""
    best, rank = -1, len(FORWARD_ROLES)
    for i, suffixes in enumerate(FORWARD_ROLES):
        for suffix in suffixes:
            if (tail == suffix or tail.endswith("." + suffix)) and len(suffix) > best:
                best, rank = len(suffix), i
    return rank


def model_order_key(name: str) -> tuple:
    """Model order without the model: blocks by number (2 before 10), inside a block the forward order,
    then modules outside the numbered blocks (a pooler, a head) in natural order.

    For adapters that do not record their modules' order (PEFT saves its tensors sorted by
    name, so "attention.output.dense" would come before "attention.self.query").
    """
    parts = name.split(".")
    numbers = [i for i, part in enumerate(parts) if part.isdigit()]
    if not numbers:
        return 1, natural_key(name)
    cut = numbers[-1] + 1
    tail = ".".join(parts[cut:])
    return 0, natural_key(".".join(parts[:cut])), forward_role(tail), natural_key(tail)


def _rank_of(module: str, rank: dict[str, int]) -> Optional[int]:
    """The module's position in the model, found under its own path or a shorter tail of it
    ("backbone.encoder.layer.0..." in a model whose modules are named "encoder.layer.0...")."""
    parts = module.split(".")
    for k in range(len(parts)):
        found = rank.get(".".join(parts[k:]))
        if found is not None:
            return found
    return None


def sort_layers(report: AdapterReport, order: list[str]) -> None:
    """Rows (and angle rows of the heatmap) in model order: the model's own where known, else
    `model_order_key` (layer number, then the forward order inside a block), never alphabetical."""
    rank = {name: i for i, name in enumerate(order)}

    def key(row: dict) -> tuple:
        found = _rank_of(row["module"], rank) if rank else None
        return (0, found, ()) if found is not None else (1, 0, model_order_key(row["module"]))

    report.layers.sort(key=key)
    names = [r["module"] for r in report.layers]
    report.angles = {n: report.angles[n] for n in names if n in report.angles}
    report.scales = {n: report.scales[n] for n in names if n in report.scales}
