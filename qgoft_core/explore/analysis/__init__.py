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
from qgoft_core.explore.analysis.health import (ORTH_DEV_THRESHOLD, SATURATION_FRACTION, SCALE_MEDIAN_FACTOR,
                                                SCALE_RANGE, STILL_ANGLE, threshold_text)
from qgoft_core.explore.analysis.inspector import inspect_adapter
from qgoft_core.explore.analysis.report import COLUMN_NOTES, COLUMNS, AdapterReport, InspectionError, LazySpectra
from qgoft_core.io.safe_files import CONFIG_NAME, PICKLE_SUFFIXES, WEIGHTS_NAME

__all__ = ["inspect_adapter", "InspectionError", "AdapterReport", "LazySpectra", "COLUMNS", "COLUMN_NOTES",
           "CONFIG_NAME", "WEIGHTS_NAME", "PICKLE_SUFFIXES", "SATURATION_FRACTION", "STILL_ANGLE",
           "ORTH_DEV_THRESHOLD", "SCALE_RANGE", "SCALE_MEDIAN_FACTOR", "threshold_text"]
