"""The result of an inspection: `AdapterReport`, its per-layer table columns, and `InspectionError`.

Data only (numbers, arrays, sentences) and a plain-text rendering; the figures
and the HTML page are drawn by `qgoft_core.viz.inspection_figures`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from qgoft_core.explore.analysis.health import checks_summary
from qgoft_core.explore.analysis.model_names import display_model_name
from qgoft_core.explore.registry import method_label

COLUMNS = ["layer", "module", "kind", "d", "n/r", "params", "max |angle| (deg)", "mean |angle| (deg)",
           "orth dev", "scale min", "scale max", "reflections", "‖ΔW‖_F", "‖ΔW‖/‖W‖", "eff. rank", "HE drift",
           "norm ratio min", "norm ratio max"]
COLUMN_NOTES = {
    "n/r": "n (out features) for GOFT/qGOFT/BOFT, rank r for LoRA, number of blocks for OFT",
    "max |angle| (deg)": "GOFT: Givens angles; qGOFT: angle of each block's polar rotation factor; "
                         "OFT/BOFT: principal rotation angles (eigenvalue phases) of each block (BOFT: of "
                         "every butterfly factor)",
    "orth dev": "||M^T M - I||_F / sqrt(d) (orthogonal up to 1e-5, the one tolerance of Train and Inspect) of the input-side operator M (W' = W M; for OFT/BOFT M is the "
                "transpose of PEFT's rotation R, and its blocks give the same value); with GOFT* input scaling it is of diag(s)·M, scale included",
    "scale min": "learned scales (GOFT/qGOFT scaling, BOFT boft_s); qGOFT without scaling: block singular values",
    "‖ΔW‖_F": "LoRA: Frobenius norm of the update s B A, s = lora_alpha / r (lora_alpha / sqrt(r) with rsLoRA)",
    "‖ΔW‖/‖W‖": "‖W′ − W‖_F / ‖W‖_F: the size of the change next to the pretrained weight (needs the base)",
    "eff. rank": "LoRA: entropy effective rank exp(H(sigma / sum sigma)) of the update",
    "HE drift": "relative change of hyperspherical energy of the neurons, W' vs W (needs the base)",
}


class InspectionError(ValueError):
    """An adapter that cannot be inspected; the message names the problem."""


WeightPair = Callable[[], tuple[torch.Tensor, torch.Tensor]]


class LazySpectra(Mapping):
    """{layer: (singular values of W, of W')}, each computed when first read.

    Two SVDs per layer cost seconds for a whole model (most of an inspection's
    time), while a person looks at one layer's spectrum at a time.
    """

    def __init__(self, pairs: Optional[dict[str, WeightPair]] = None):
        self._pairs = dict(pairs or {})
        self._values: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getitem__(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._values:
            with torch.no_grad():
                w, tuned = self._pairs[name]()
                self._values[name] = (torch.linalg.svdvals(w).numpy(), torch.linalg.svdvals(tuned).numpy())
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


@dataclass
class AdapterReport:
    """What an adapter holds, per layer, with health flags."""

    method: str  # goft | qgoft | lora | oft | boft
    base_model: Optional[str]  # the base the adapter records
    num_params: int  # every number in the adapter file (adapter tensors + saved modules)
    layers: list[dict]  # one row per adapted layer, keys in COLUMNS
    flags: list[str]  # health problems, one sentence each, naming the layer
    layer_flags: dict[str, list[str]] = field(default_factory=dict)  # {module: its flags}
    checks_ran: list[str] = field(default_factory=list)  # keys of health.CHECKS that were applied
    checks_skipped: dict[str, str] = field(default_factory=dict)  # {check key: why it did not run}
    angles: dict[str, np.ndarray] = field(default_factory=dict)  # radians, for heatmap/histogram
    norm_ratios: dict[str, np.ndarray] = field(default_factory=dict)  # with the base only
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=LazySpectra)  # (W, W') SVs
    # |‖W'‖_F / ‖W‖_F - 1| per layer: the root-sum-square of the singular values
    # changes exactly when the spectrum's overall size does (0 for any rotation).
    spectrum_change: dict[str, float] = field(default_factory=dict)
    scales: dict[str, np.ndarray] = field(default_factory=dict)
    adapter_params: int = 0  # rotation / LoRA / OFT tensors
    saved_params: int = 0  # modules trained in full and saved alongside (e.g. a classifier head)
    base_used: Optional[str] = None  # the base model the tuned weights were compared with
    source: str = ""
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def method_label(self) -> str:
        return method_label(self.method, short=True)

    @property
    def signed_angles(self) -> bool:
        """GOFT/qGOFT angles carry a sign; OFT/BOFT principal angles are magnitudes."""
        return self.method in ("goft", "qgoft")

    def layer_name(self, module: str) -> str:
        """The one displayed name of a layer (table, flags, dropdowns, figures); the module path otherwise."""
        return next((r["layer"] for r in self.layers if r["module"] == module), module)

    @property
    def checks_text(self) -> str:
        """Which health checks ran and which did not (never 'healthy' when none ran)."""
        return checks_summary(self.checks_ran, self.checks_skipped)

    def summary_rows(self) -> list[dict]:
        """The summary; base models by name (the offline default by its hub id, a local folder by its
        last parts), never the path a machine installed them at."""
        rows = [
            ("source", self.source),
            ("method", self.method_label),
            ("base model (recorded)", display_model_name(self.base_model) or "not recorded"),
            ("compared with base", display_model_name(self.base_used) or "no (inspect with a base model for "
                                                                         "norm changes, energy drift and spectra)"),
            ("adapted layers", len(self.layers)),
            ("parameters", f"{self.num_params:,} ({self.adapter_params:,} adapter + "
                           f"{self.saved_params:,} in saved modules)"),
            ("health checks", self.checks_text),
        ]
        return [{"item": k, "value": v} for k, v in rows]

    def shown_columns(self, with_module: bool = True) -> list[str]:
        """The COLUMNS that have a value in some row."""
        return [c for c in COLUMNS if (with_module or c != "module")
                and any(r.get(c) is not None for r in self.layers)]

    def spectrum_layer(self) -> Optional[str]:
        """The layer whose spectrum grew or shrank most (Frobenius norm), or None without a base."""
        if not self.spectra:
            return None
        return max(self.spectra, key=lambda name: self.spectrum_change.get(name, 0.0))

    def to_text(self) -> str:
        """A terminal report: summary, per-layer table, health flags, notes."""
        lines = [f"{row['item']}: {row['value']}" for row in self.summary_rows()]
        columns = self.shown_columns(with_module=False)
        cells = [[_cell(r.get(c)) for c in columns] for r in self.layers]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        lines.append("")
        lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
                  for row in cells]
        lines.append("")
        if self.flags:
            lines.append(f"Health flags ({len(self.flags)}):")
            lines += [f"  ! {flag}" for flag in self.flags]
        else:
            lines.append("Health flags: none raised (" + self.checks_text + ")")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
