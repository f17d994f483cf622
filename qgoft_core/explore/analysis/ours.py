"""Our own adapters (GOFT / qGOFT, `format == "qgoft-adapter"`): angles, block polar factors, scales, orthogonality."""
from __future__ import annotations

import math

import torch

from qgoft_core import metrics as M
from qgoft_core.explore.analysis.report import AdapterReport, InspectionError
from qgoft_core.explore.analysis.rows import all_finite, angle_stats, group_tensors, new_row, scale_stats

OUR_FORMAT = "qgoft-adapter"
OUR_PARAMS = ("qgoft_theta", "qgoft_blocks", "qgoft_scale_out", "qgoft_scale_in")


def analyse_ours(report: AdapterReport, config: dict, tensors: dict) -> None:
    from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table

    groups, report.saved_params = group_tensors(tensors, OUR_PARAMS)
    recorded = config.get("layers") or {}
    parameter = "qgoft_theta" if report.method == "goft" else "qgoft_blocks"
    tanh = config.get("angle_param") == "tanh"
    for name, parts in groups.items():
        if parameter not in parts:
            raise InspectionError(f"layer {name}: {parameter} is missing for a {report.method_label} adapter")
        main = parts[parameter].double()
        if (report.method == "goft" and main.dim() != 1) or (report.method == "qgoft" and (
                main.dim() != 3 or tuple(main.shape[1:]) != (2, 2))):
            raise InspectionError(f"layer {name}: {parameter} has shape {tuple(main.shape)}, which is not "
                                  f"a {report.method_label} layer")
        meta = recorded.get(name, {}) if isinstance(recorded, dict) else {}
        d = int(meta.get("in_features") or main.shape[0] + 1)
        if d != main.shape[0] + 1:
            raise InspectionError(f"layer {name}: {main.shape[0]} pairs do not fit in_features={d} (need d - 1)")
        scale_out, scale_in = parts.get("qgoft_scale_out"), parts.get("qgoft_scale_in")
        n = meta.get("out_features") or (scale_out.numel() if scale_out is not None else None)
        kind = report.method_label + (" (conv1d)" if meta.get("kind") == "conv1d" else "")
        row = new_row(name, kind, d, n, sum(p.numel() for p in parts.values()))
        report.layers.append(row)
        if not all_finite(row, parts):
            continue
        if report.method == "goft":
            theta = math.pi * torch.tanh(main) if tanh else main
            angles, table = theta.numpy(), givens_table(theta)
            row["reflections"] = 0
            scales = None
        else:
            polar = M.block_polar(main)
            angles, table = polar["angle"].numpy(), quasi_table(main)
            row["reflections"] = int((polar["det"] < 0).sum())
            scales = polar["scales"].numpy().ravel()
        learned = scale_out if scale_out is not None else scale_in
        if learned is not None:
            scales = learned.double().numpy().ravel()
        report.angles[name] = angles
        if scales is not None:
            report.scales[name] = scales
        angle_stats(row, angles)
        scale_stats(row, scales)
        # The same operator the training snapshots measure: diag(s_in) M.
        with torch.no_grad():
            tree = GivensTree(d)
            row["orth dev"] = tree.gram_deviation(table, scale_in) / math.sqrt(d)
            if scale_in is not None:  # GOFT*: the health check asks whether the rotation alone is one
                row["_rotation_dev"] = tree.gram_deviation(table) / math.sqrt(d)
