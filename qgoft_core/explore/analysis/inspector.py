"""The entry point: `inspect_adapter(path)` reads an adapter folder or .zip and measures it.

Reading goes through the library's safe readers (qgoft_core.io.safe_files);
the kind of adapter is told by its config (ours: `format == "qgoft-adapter"`,
PEFT: `peft_type`, see the method registry) and each kind is analysed by its
own module (ours, peft_lora, peft_oft, peft_boft); with a base model the tuned
weights are compared with the pretrained ones (with_base).
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

import torch

from qgoft_core.explore.analysis.health import CHECKS, checks_for, health_flags
from qgoft_core.explore.analysis.ours import OUR_FORMAT, analyse_ours
from qgoft_core.explore.analysis.peft_boft import analyse_boft
from qgoft_core.explore.analysis.peft_lora import analyse_lora
from qgoft_core.explore.analysis.peft_oft import analyse_oft
from qgoft_core.explore.analysis.report import AdapterReport, InspectionError
from qgoft_core.explore.analysis.rows import display_names, sort_layers
from qgoft_core.explore.registry import PEFT_TYPES, method_label
from qgoft_core.io import safe_files
from qgoft_core.io.safe_files import CONFIG_NAME

ANALYSERS = {"goft": analyse_ours, "qgoft": analyse_ours, "lora": analyse_lora, "oft": analyse_oft,
             "boft": analyse_boft}
DEFAULT_MAX_BYTES = safe_files.DEFAULT_MAX_BYTES
ROW_WORK_KEYS = ("_flags", "_block", "_broken", "_rotation_dev", "_b_zero")  # kept on a row while it is built, removed from the report


@contextmanager
def _as_inspection_errors() -> Iterator[None]:
    """The safe readers' refusals, raised as InspectionError (same sentence)."""
    try:
        yield
    except safe_files.SafeFileError as exc:
        raise InspectionError(str(exc)) from None


def inspect_adapter(path: Union[str, os.PathLike], base_model: Any = None,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> AdapterReport:
    """Inspect the adapter folder or .zip at `path`.

    base_model: None (adapter tensors only), "default" (the offline MiniLM),
    "auto" (the base the adapter records), a hub id or folder, or a loaded
    qgoft_core.explore.models.BaseModel.
    """
    path = Path(path)
    if not path.exists():
        raise InspectionError(f"{path}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="qgoft-inspect-") as tmp:
        with _as_inspection_errors():
            if path.is_dir():
                # A run folder written by `qgoft train` holds the adapter in adapter/.
                nested = path / "adapter"
                use_nested = not (path / CONFIG_NAME).exists() and (nested / CONFIG_NAME).is_file()
                folder = nested if use_nested else path
            elif zipfile.is_zipfile(path):
                folder = safe_files.extract_adapter_zip(path, Path(tmp), max_bytes)
            elif path.suffix.lower() == ".zip":
                raise InspectionError(f"{path.name} is not a valid zip file")
            elif path.name == CONFIG_NAME or path.suffix.lower() == ".safetensors":
                raise InspectionError(f"{path.name}: give the adapter folder (or a .zip of it), not one of its "
                                      "files")
            else:
                raise InspectionError(f"{path.name}: expected an adapter folder or a .zip of one")
            config = safe_files.read_json_config(folder)
            method_of(config)  # an unknown kind of adapter is named before its files are looked for
            weights = safe_files.find_weights_file(folder, max_bytes)
            tensors = safe_files.read_safetensors(weights)
        report = analyse(config, tensors)
        # "run-3/adapter" says more than "adapter" (what the engine names its folders)
        report.source = f"{path.parent.name}/{path.name}" if path.is_dir() and path.parent.name else path.name
        if base_model is not None and not (isinstance(base_model, str) and not base_model.strip()):
            from qgoft_core.explore.analysis.with_base import compare_with_base

            compare_with_base(report, config, tensors, folder, weights, base_model)
        else:
            report.checks_skipped.update({k: "needs the base model" for k in report.checks_ran
                                          if CHECKS[k].needs_base})
        report.checks_ran = [k for k in report.checks_ran if k not in report.checks_skipped]
        finish_flags(report)
        for row in report.layers:
            for key in ROW_WORK_KEYS:
                row.pop(key, None)
        return report


def finish_flags(report: AdapterReport) -> None:
    """Every flag named by its layer's displayed name and module path, per layer and in one list."""
    report.layer_flags = {row["module"]: [f"{row['layer']} ({row['module']}): {text}" for text in row["_flags"]]
                          for row in report.layers}
    report.flags = [flag for flags in report.layer_flags.values() for flag in flags]


def method_of(config: dict) -> str:
    """goft | qgoft | lora | oft | boft, from the adapter's config; InspectionError for anything else."""
    if config.get("format") == OUR_FORMAT:
        method = config.get("method")
        if method not in ("goft", "qgoft"):
            raise InspectionError(f"qGOFT adapter with unknown method {method!r} (expected 'goft' or 'qgoft')")
        return method
    if "peft_type" in config:
        peft_type = str(config["peft_type"]).upper()
        if peft_type not in PEFT_TYPES:
            names = [method_label(k, short=True) for k in PEFT_TYPES.values()]
            known = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
            raise InspectionError(f"unknown peft_type {config['peft_type']!r}: this inspector reads {known} "
                                  "adapters and qGOFT's own format")
        return PEFT_TYPES[peft_type]
    raise InspectionError(f"{CONFIG_NAME} has neither format={OUR_FORMAT!r} nor a peft_type: "
                          "not an adapter this tool knows")


def analyse(config: dict, tensors: dict[str, torch.Tensor]) -> AdapterReport:
    """The report from the adapter's config and tensors alone (no base model)."""
    method = method_of(config)
    report = AdapterReport(method=method, base_model=config.get("base_model_name_or_path"),
                           num_params=sum(t.numel() for t in tensors.values()), layers=[], flags=[],
                           config=config)
    ANALYSERS[method](report, config, tensors)
    sort_layers(report, list(config.get("layers") or {}) if isinstance(config.get("layers"), dict) else [])
    if not report.layers:
        raise InspectionError(f"the weights file holds no {report.method_label} tensors "
                              f"(keys look like {sorted(tensors)[:2]}); is the config's method right?")
    report.adapter_params = report.num_params - report.saved_params
    names = display_names([row["module"] for row in report.layers])
    for row in report.layers:
        row["layer"] = names[row["module"]]
    checks = checks_for(method, config.get("angle_param"))
    report.checks_ran = list(checks)
    neumann = method == "oft" and bool(config.get("use_cayley_neumann", True))
    for row in report.layers:
        health_flags(row, report.angles.get(row["module"]), report.scales.get(row["module"]), method, checks,
                     neumann=neumann, rotation_dev=row.get("_rotation_dev"))
    if method == "lora":
        from qgoft_core.explore.analysis.health import lora_flags
        for row in report.layers:
            lora_flags(row, bool(row.get("_b_zero")), checks)
    if method == "qgoft":
        from qgoft_core.explore.analysis.health import ORTH_TOLERANCE
        devs = [(row["orth dev"], row["layer"]) for row in report.layers if row.get("orth dev") is not None]
        beyond = [d for d in devs if d[0] > ORTH_TOLERANCE]
        if devs:
            worst = max(devs)
            report.notes.append(
                f"orthogonality: {len(beyond)} of {len(devs)} layers are beyond the tolerance {ORTH_TOLERANCE:g} "
                f"(largest {worst[0]:.3g}, {worst[1]}); qGOFT is quasi-orthogonal by design (reg_lambda keeps "
                "each block's columns perpendicular, not their lengths), so this is reported, not flagged")
    return report
