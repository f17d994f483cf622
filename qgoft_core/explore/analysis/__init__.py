"""Look inside a saved adapter: what it learned, per layer, and whether it is healthy.

Reads our own qGOFT format and PEFT LoRA, OFT and BOFT adapters, from a folder
or a .zip of one, through the library's safe readers (only adapter_config.json
and *.safetensors are read; pickle is refused; zip entries are checked before
anything is extracted). Every problem raises `InspectionError` naming it.

Without the base model everything comes from the adapter tensors alone:
rotation angles, orthogonality, scales, LoRA update norms (PEFT's rotations and
scalings rebuilt exactly as PEFT applies them). With it (a hub id, a folder,
"default" for the offline MiniLM, "auto" for the id the adapter records, or a
loaded BaseModel) the tuned weights W' are formed next to the pretrained W,
giving per-neuron norm changes, hyperspherical-energy drift and singular values.

Modules: report (AdapterReport, columns, InspectionError), inspector (entry
point), ours / peft_lora / peft_oft / peft_boft (one kind of adapter each),
health (flags and thresholds), rows (the per-layer table), with_base (the
comparison with the base model). Figures: qgoft_core.viz.inspection_figures.
"""
from __future__ import annotations

import importlib
from typing import Any

# Public names load their module on first use: the health thresholds (numpy only) can be
# imported by the figures without bringing in torch or the readers.
_WHERE = {
    "inspect_adapter": "inspector",
    "InspectionError": "report", "AdapterReport": "report", "LazySpectra": "report", "COLUMNS": "report",
    "COLUMN_NOTES": "report",
    "SATURATION_FRACTION": "health", "STILL_ANGLE": "health", "ORTH_TOLERANCE": "health",
    "ORTH_DEV_THRESHOLD": "health", "SCALE_RANGE": "health", "SCALE_MEDIAN_FACTOR": "health",
    "LORA_UPDATE_RATIO": "health", "threshold_text": "health", "checks_for": "health",
}
_SAFE_FILES = ("CONFIG_NAME", "WEIGHTS_NAME", "PICKLE_SUFFIXES")

__all__ = sorted([*_WHERE, *_SAFE_FILES])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    elif name in _SAFE_FILES:
        value = getattr(importlib.import_module("qgoft_core.io.safe_files"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
