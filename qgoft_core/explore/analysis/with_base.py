"""Comparison with the base model: the tuned weights W' next to the pretrained W, per adapted layer.

The adapter is applied by its own library (ours, or PEFT's PeftModel) to a
shared copy of the base; W' is read from the loaded model (ours: the merged
weight; PEFT: the layer probed with the identity, which holds for every PEFT
method since each layer is affine in its input). Gives per-neuron norm changes,
hyperspherical-energy drift and, lazily, the singular values of W and W'.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from qgoft_core import metrics as M
from qgoft_core.explore.analysis.report import AdapterReport, InspectionError, LazySpectra, WeightPair
from qgoft_core.explore.analysis.health import update_size_flag
from qgoft_core.explore.analysis.model_names import canonical_model_id, display_model_name
from qgoft_core.explore.analysis.rows import sort_layers
from qgoft_core.io.safe_files import CONFIG_NAME, WEIGHTS_NAME


def same_model(a: Optional[str], b: Optional[str]) -> bool:
    return canonical_model_id(a) == canonical_model_id(b)


def _resolve_base(base_model: Any, recorded: Optional[str]):
    from qgoft_core.explore.models import DEFAULT_MODEL_ID, BaseModel, ModelLoadError, load_base
    if isinstance(base_model, BaseModel):
        return base_model
    name = str(base_model).strip()
    if name.lower() == "auto":
        if not recorded:
            raise InspectionError("the adapter records no base model; name one (e.g. 'default')")
        name = "default" if canonical_model_id(recorded) == DEFAULT_MODEL_ID else recorded
    try:
        return load_base(name)
    except ModelLoadError as exc:
        raise InspectionError(f"base model: {exc}") from None


def _host_module(base, names: list[str], tensors: dict):
    """The module the adapter was saved from: a SentenceClassifier (engine runs) or the plain encoder."""
    from qgoft_core.explore.models import SentenceClassifier
    from qgoft_core.tuners.qgoft import share_base
    if names and all(n.startswith("backbone.") for n in names):
        head = next((t for k, t in tensors.items() if k.endswith("head.weight")), None)
        num_labels = int(head.shape[0]) if head is not None and head.dim() == 2 else 2
        return SentenceClassifier(share_base(base.encoder), num_labels, base.pooling)
    return share_base(base.encoder)


def _load_onto(report: AdapterReport, host, folder: Path):
    """The adapter applied to `host` by its own library (ours or PEFT)."""
    if report.method in ("goft", "qgoft"):
        from qgoft_core.io.adapter_files import AdapterFormatError
        from qgoft_core.tuners.qgoft import QGOFTModel
        try:
            return QGOFTModel.from_pretrained(host, folder)
        except (AdapterFormatError, ValueError) as exc:
            raise InspectionError(f"the adapter does not fit the base model: {exc}") from None
    from peft import PeftModel
    try:
        return PeftModel.from_pretrained(host, str(folder))
    except Exception as exc:  # noqa: BLE001 - PEFT raises many kinds for a mismatched base
        raise InspectionError(f"the adapter does not fit the base model: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None


def _tuned_weights(report: AdapterReport, host, folder: Path, weights: Path,
                   base_id: Optional[str] = None) -> dict[str, WeightPair]:
    """{layer: () -> (W, W')}, float64 (out, in) tensors, with the adapter applied by its own library.

    Functions, not tensors: they keep only the loaded model (the shared frozen
    base plus the adapter), so one layer's pair can be rebuilt when needed.
    """
    from qgoft_core.metrics import torch_weight
    names = [r["module"] for r in report.layers]
    with tempfile.TemporaryDirectory(prefix="qgoft-stage-") as staged:
        # The loaders read the folder themselves: give them only the config and the
        # safetensors weights, under the names they expect.
        shutil.copyfile(folder / CONFIG_NAME, Path(staged) / CONFIG_NAME)
        recorded = report.config.get("base_model_name_or_path")
        if base_id and recorded and recorded != base_id and same_model(recorded, base_id):
            # the same model under another of its names (e.g. "all-MiniLM-L6-v2" for the offline
            # default): the staged copy records the loaded base's id, so no loader takes it for another
            config = dict(report.config, base_model_name_or_path=base_id)
            (Path(staged) / CONFIG_NAME).write_text(json.dumps(config), encoding="utf-8")
        os.symlink(weights.resolve(), Path(staged) / WEIGHTS_NAME)
        model = _load_onto(report, host, Path(staged))
    if report.method in ("goft", "qgoft"):
        layers = model.adapter_layers()

        def ours(layer) -> WeightPair:
            @torch.no_grad()
            def pair():
                return layer.original_weight().double(), layer.merged_weight(torch.float64)
            return pair
        return {n: ours(layers[n]) for n in names if n in layers}

    def peft(layer) -> WeightPair:
        @torch.no_grad()
        def pair():
            base_layer = layer.get_base_layer()
            w = torch_weight(base_layer)
            out = layer(torch.eye(w.shape[1], dtype=w.dtype))  # affine in x: probing with I reads W'
            if getattr(base_layer, "bias", None) is not None:
                out = out - base_layer.bias
            return w.double(), out.double().T
        return pair
    inner = model.base_model.model
    return {name: peft(inner.get_submodule(name)) for name in names}


def compare_with_base(report: AdapterReport, config: dict, tensors: dict, folder: Path, weights: Path,
                      base_model: Any) -> None:
    base = _resolve_base(base_model, report.base_model)
    report.base_used = base.model_id
    if report.base_model and not same_model(report.base_model, base.model_id):
        report.notes.append(f"the adapter records base {display_model_name(report.base_model)!r} but was "
                            f"compared with {display_model_name(base.model_id)!r}")
    host = _host_module(base, [r["module"] for r in report.layers], tensors)
    model_order = [name for name, _ in host.named_modules()]  # before an adapter renames anything
    pairs = _tuned_weights(report, host, folder, weights, base.model_id)
    sort_layers(report, model_order)
    report.spectra = LazySpectra({r["module"]: pairs[r["module"]] for r in report.layers if r["module"] in pairs})
    for row in report.layers:
        if row["module"] not in pairs:
            continue
        w, tuned = pairs[row["module"]]()
        report.spectrum_change[row["module"]] = abs(float(tuned.norm() / w.norm().clamp_min(1e-300)) - 1.0)
        # float32, like the training snapshots: float64 ratios of a strict rotation spread over a
        # few ulps around 1, too narrow a range for numpy to bin.
        ratios = M.norm_ratios(w, tuned).numpy().astype(np.float32)
        report.norm_ratios[row["module"]] = ratios
        row["norm ratio min"], row["norm ratio max"] = float(ratios.min()), float(ratios.max())
        row["HE drift"] = M.relative_drift(M.hyperspherical_energy(tuned), M.hyperspherical_energy(w))
        row["‖ΔW‖/‖W‖"] = float((tuned - w).norm() / w.norm().clamp_min(1e-300))
        update_size_flag(row, report.method, tuple(report.checks_ran))
        if row["n/r"] is None and report.method in ("goft", "qgoft", "boft"):
            row["n/r"] = int(w.shape[0])  # out features, now known
        if row["d"] is None:
            row["d"] = int(w.shape[1])
        if report.method == "oft" and row.get("_block") and row["d"] and report.config.get("block_share"):
            row["n/r"] = int(row["d"]) // int(row["_block"])  # the shared block, repeated d / b times
