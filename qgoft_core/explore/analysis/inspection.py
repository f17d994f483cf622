"""Look inside a saved adapter: what it learned, per layer, and whether it is healthy.

Reads our own qGOFT format (`format == "qgoft-adapter"`, see adapter_files) and
PEFT LoRA, OFT and BOFT adapters, from a folder or a .zip of one. Only
adapter_config.json and *.safetensors are ever read; pickle files are refused,
zip entries are checked before anything is extracted, and every problem
raises `InspectionError` with a sentence naming it.

Without the base model everything comes from the adapter tensors alone:
rotation angles, orthogonality, scales, LoRA update norms. With it (a hub id,
a folder, "default" for the offline MiniLM, "auto" for the id the adapter
records, or a loaded BaseModel) the tuned weights W' are formed next to the
pretrained W, giving per-neuron norm changes, hyperspherical-energy drift and
singular values.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import plotly.graph_objects as go
import torch

from qgoft_core.viz import figures as F
from qgoft_core import metrics as M

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
OUR_FORMAT = "qgoft-adapter"
OUR_PARAMS = ("qgoft_theta", "qgoft_blocks", "qgoft_scale_out", "qgoft_scale_in")
PEFT_TYPES = {"LORA": "lora", "OFT": "oft", "BOFT": "boft"}
METHOD_NAMES = {"goft": "GOFT", "qgoft": "qGOFT", "lora": "LoRA", "oft": "OFT", "boft": "BOFT"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
KEY_PREFIX = "base_model.model."

# Health thresholds (see health_flags): explicit so that the app and the docs can quote them.
SATURATION_FRACTION = 0.95  # |theta| > 0.95 pi: a rotation at the end of its range
STILL_ANGLE = 1e-6  # radians: every angle of a layer below this = the rotation never moved
ORTH_DEV_THRESHOLD = 1e-3  # ||M^T M - I||_F / sqrt(d) above this = no longer orthogonal
SCALE_RANGE = (0.5, 2.0)  # a learned scale outside this range is an outlier
SCALE_MEDIAN_FACTOR = 1.5  # ... and so is one more than 1.5x above (or below) the layer's median

# Limits on what is read.
MAX_CONFIG_BYTES = 2 * 1024**2
MAX_ZIP_ENTRIES = 1000

COLUMNS = ["layer", "module", "kind", "d", "n/r", "params", "max |angle| (deg)", "mean |angle| (deg)",
           "orth dev", "scale min", "scale max", "reflections", "‖ΔW‖_F", "eff. rank", "HE drift",
           "norm ratio min", "norm ratio max"]
COLUMN_NOTES = {
    "n/r": "n (out features) for GOFT/qGOFT/BOFT, rank r for LoRA, number of blocks for OFT",
    "max |angle| (deg)": "GOFT: Givens angles; qGOFT: angle of each block's polar rotation factor; "
                         "OFT/BOFT: principal rotation angles (eigenvalue phases) of each block",
    "orth dev": "||M^T M - I||_F / sqrt(d) of the input-side operator (blocks for OFT/BOFT)",
    "scale min": "learned scales (GOFT/qGOFT scaling, BOFT boft_s); qGOFT without scaling: block singular values",
    "‖ΔW‖_F": "LoRA: Frobenius norm of the update (lora_alpha / r) B A",
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


# ---------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------
@dataclass
class AdapterReport:
    """What an adapter holds, per layer, with health flags and figures."""

    method: str  # goft | qgoft | lora | oft | boft
    base_model: Optional[str]  # the base the adapter records
    num_params: int  # every number in the adapter file (adapter tensors + saved modules)
    layers: list[dict]  # one row per adapted layer, keys in COLUMNS
    flags: list[str]  # health problems, one sentence each, naming the layer
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
        return METHOD_NAMES.get(self.method, self.method)

    def summary_rows(self) -> list[dict]:
        rows = [
            ("source", self.source),
            ("method", self.method_label),
            ("base model (recorded)", self.base_model or "not recorded"),
            ("compared with base", self.base_used or "no (inspect with a base model for norm changes, "
                                                     "energy drift and spectra)"),
            ("adapted layers", len(self.layers)),
            ("parameters", f"{self.num_params:,} ({self.adapter_params:,} adapter + "
                           f"{self.saved_params:,} in saved modules)"),
        ]
        return [{"item": k, "value": v} for k, v in rows]

    # -- text --------------------------------------------------------------
    def to_text(self) -> str:
        """A terminal report: summary, per-layer table, health flags, notes."""
        lines = [f"{row['item']}: {row['value']}" for row in self.summary_rows()]
        columns = [c for c in COLUMNS if c != "module" and any(r.get(c) is not None for r in self.layers)]
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
            lines.append("Health flags: none (thresholds: " + threshold_text() + ")")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    # -- figures -----------------------------------------------------------
    def figures(self) -> dict[str, go.Figure]:
        """angle_heatmap, angle_histogram, norm_changes, spectrum (each says why when empty)."""
        return {
            "angle_heatmap": self.angle_heatmap(),
            "angle_histogram": self.angle_histogram(),
            "norm_changes": self.norm_change_figure(),
            "spectrum": self.spectrum_figure(),
        }

    def angle_heatmap(self, scale: str = "global") -> go.Figure:
        if not self.angles:
            return _message_figure("Rotation angles per layer", f"{self.method_label} has no rotation angles.")
        names = list(self.angles)
        signed = self.method in ("goft", "qgoft")  # OFT/BOFT principal angles are magnitudes
        return F.angle_heatmap(names, [self.angles[n] for n in names], scale=scale, signed=signed)

    def angle_histogram(self, bins: int = 72) -> go.Figure:
        title = "Distribution of rotation angles, all layers"
        if not self.angles:
            return _message_figure(title, f"{self.method_label} has no rotation angles.")
        values = np.degrees(np.concatenate([np.asarray(a, dtype=float).ravel() for a in self.angles.values()]))
        values = F.wrap_angles(values[np.isfinite(values)])
        edges = F.angle_bin_edges(bins)
        counts, _ = np.histogram(values, bins=edges)
        fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                               marker_color="#4c78a8", name="angles",
                               hovertemplate="angle ≈ %{x:.3g} deg<br>%{y} angles<extra></extra>"))
        limit = SATURATION_FRACTION * 180
        for x in (-limit, limit):
            fig.add_vline(x=x, line=dict(color=F.OUTLIER_COLOR, dash="dot", width=1))
        fig.update_xaxes(title_text="rotation angle (deg, fixed bins)", range=[-180, 180])
        fig.update_yaxes(title_text="angles (count)")
        note = f"{values.size} angles in {len(self.angles)} layers; dotted lines: saturation at ±{limit:g} deg"
        return _styled(fig, f"{title}<br><sup>{note}</sup>", 380)

    def norm_change_figure(self) -> go.Figure:
        if self.norm_ratios:
            return F.norm_change_histogram(self.norm_ratios)
        if self.scales:
            return F.norm_change_histogram(self.scales, value_label="learned scale (1 = unchanged)")
        return _message_figure("Per-neuron norm change",
                               "Norm changes need the base model: inspect again with a base model.")

    def spectrum_layer(self) -> Optional[str]:
        """The layer whose spectrum grew or shrank most (Frobenius norm), or None without a base."""
        if not self.spectra:
            return None
        return max(self.spectra, key=lambda name: self.spectrum_change.get(name, 0.0))

    def spectrum_figure(self, layer: Optional[str] = None) -> go.Figure:
        layer = layer or self.spectrum_layer()
        if layer is None or layer not in self.spectra:
            return _message_figure("Singular values of W and W′",
                                   "The spectrum needs the base model: inspect again with a base model.")
        return F.spectrum_figure(*self.spectra[layer], layer_name=layer)

    # -- html --------------------------------------------------------------
    def to_html(self, title: Optional[str] = None) -> str:
        """A self-contained HTML report: summary, flags, heatmap, histogram, norms, spectrum, table."""
        title = title or f"Adapter inspection: {self.source or self.method_label}"
        flags = ("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in self.flags) + "</ul>"
                 if self.flags else "<p>No health flags.</p>")
        notes = "".join(f'<p class="explain">{html.escape(n)}</p>' for n in self.notes)
        spectrum_layer = self.spectrum_layer()
        columns = [c for c in COLUMNS if any(r.get(c) is not None for r in self.layers)]
        definitions = "\n\n".join(f"{k}: {v}" for k, v in COLUMN_NOTES.items() if k in columns)
        sections = [
            ("Summary", "What the adapter is and what it was compared with.",
             F.rows_to_html_table(self.summary_rows(), ["item", "value"]) + notes),
            ("Health flags", "Thresholds: " + threshold_text() + ".", flags),
            ("Rotation angles per layer", "One row per adapted layer, one column per rotation.",
             self.angle_heatmap()),
            ("Angle distribution", "All layers pooled, in fixed bins on [-180, 180] degrees.",
             self.angle_histogram()),
            ("Norm changes", "Per-neuron ||w'_i|| / ||w_i|| with the base model, else the learned scales.",
             self.norm_change_figure()),
            ("Spectrum" + (f" of {spectrum_layer}" if spectrum_layer else ""),
             "Singular values of the pretrained and the tuned weight of the layer whose spectrum changed "
             "most in size (Frobenius norm). A rotation without scaling leaves them unchanged.", self.spectrum_figure(spectrum_layer)),
            ("Per-layer table", definitions, F.rows_to_html_table(self.layers, columns)),
        ]
        return F.html_report(title, sections)


def threshold_text() -> str:
    return (f"angles saturated when |θ| > {SATURATION_FRACTION:g}π; rotation never moved when every "
            f"|θ| < {STILL_ANGLE:g} rad; orthogonality deviation > {ORTH_DEV_THRESHOLD:g} (normalised); "
            f"scales outside [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] or more than "
            f"{SCALE_MEDIAN_FACTOR:g}x from the layer's median; blocks with det < 0 (reflections)")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _styled(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(template=F.TEMPLATE, height=height, title=dict(text=title, x=0.01, xanchor="left"),
                      margin=dict(l=70, r=30, t=80, b=60))
    return fig


def _message_figure(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _styled(fig, title, 300)


# ---------------------------------------------------------------------------
# Reading files safely
# ---------------------------------------------------------------------------
def _size_text(n: int) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n / 1024:.1f} KB"


def _check_zip_member(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise InspectionError(f"the zip holds an entry with an absolute path ({name!r}); refused")
    if ".." in re.split(r"[/\\]+", name):
        raise InspectionError(f"the zip holds an entry that points outside its folder ({name!r}); refused")
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise InspectionError(f"the zip holds a symbolic link ({name!r}); refused")


def _pickle_hint(names: list[str]) -> str:
    pickles = sorted(n for n in names if n.lower().endswith(PICKLE_SUFFIXES))
    if not pickles:
        return ""
    return (f" It holds only pickle weight files ({', '.join(pickles[:3])}), which are never loaded because "
            "unpickling can run arbitrary code: save the adapter with safetensors "
            "(save_pretrained(..., safe_serialization=True)).")


def _extract_zip(path: Path, dest: Path, max_bytes: int) -> Path:
    """adapter_config.json + *.safetensors of the one adapter folder in the zip, into `dest`."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InspectionError(f"{path.name} is not a valid zip file ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise InspectionError(f"{path.name} holds {len(infos)} entries (the limit is {MAX_ZIP_ENTRIES})")
        for info in infos:
            _check_zip_member(info)
        files = [i for i in infos if not i.is_dir()]
        configs = [i for i in files if i.filename.replace("\\", "/").rsplit("/", 1)[-1] == CONFIG_NAME]
        if not configs:
            raise InspectionError(f"{path.name} holds no {CONFIG_NAME}: not an adapter."
                                  + _pickle_hint([i.filename for i in files]))
        if len(configs) > 1:
            raise InspectionError(f"{path.name} holds {len(configs)} adapters "
                                  f"({', '.join(c.filename for c in configs[:3])}); zip one adapter folder")
        folder = configs[0].filename.replace("\\", "/").rpartition("/")[0]

        def in_folder(info: zipfile.ZipInfo) -> bool:
            return info.filename.replace("\\", "/").rpartition("/")[0] == folder

        weights = [i for i in files if in_folder(i) and i.filename.lower().endswith(".safetensors")]
        if not weights:
            raise InspectionError(f"{path.name} holds no .safetensors weights next to {CONFIG_NAME}."
                                  + _pickle_hint([i.filename for i in files if in_folder(i)]))
        wanted = configs + weights
        declared = sum(i.file_size for i in wanted)
        if declared > max_bytes:
            raise InspectionError(f"{path.name} is too large ({_size_text(declared)} unpacked; the limit is "
                                  f"{_size_text(max_bytes)})")
        written = 0
        for info in wanted:
            target = dest / info.filename.replace("\\", "/").rpartition("/")[2]
            try:
                with archive.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        if written > max_bytes:  # the header lied about the size
                            raise InspectionError(f"{path.name} unpacks to more than {_size_text(max_bytes)}; "
                                                  "refused")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
                    OSError, EOFError) as exc:
                raise InspectionError(f"{path.name}: cannot unpack {info.filename} ({exc})") from None
    return dest


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_NAME
    if not path.is_file():
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        raise InspectionError(f"{CONFIG_NAME} is missing in {folder.name or folder}: not an adapter folder."
                              + _pickle_hint(names))
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InspectionError(f"{CONFIG_NAME} is larger than {_size_text(MAX_CONFIG_BYTES)}; refused")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InspectionError(f"{CONFIG_NAME} is not UTF-8 text (malformed JSON)") from None
    except json.JSONDecodeError as exc:
        raise InspectionError(f"{CONFIG_NAME} is malformed JSON: {exc.msg} at line {exc.lineno}, "
                              f"column {exc.colno}") from None
    if not isinstance(config, dict):
        raise InspectionError(f"{CONFIG_NAME} is malformed: it must hold a JSON object, not "
                              f"{type(config).__name__}")
    return config


def _weights_file(folder: Path, max_bytes: int) -> Path:
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(".safetensors"))
    if not found:
        raise InspectionError(f"no .safetensors weights in {folder.name or folder} (expected {WEIGHTS_NAME})."
                              + _pickle_hint([p.name for p in folder.iterdir()]))
    chosen = [p for p in found if p.name == WEIGHTS_NAME] or found
    if len(chosen) > 1:
        raise InspectionError(f"several .safetensors files and no {WEIGHTS_NAME} in {folder.name}: "
                              f"{', '.join(p.name for p in chosen[:3])}")
    size = chosen[0].stat().st_size
    if size > max_bytes:
        raise InspectionError(f"{chosen[0].name} is too large ({_size_text(size)}; the limit is "
                              f"{_size_text(max_bytes)})")
    return chosen[0]


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InspectionError(f"{path.name} is not a valid safetensors file ({exc})") from None
    if not tensors:
        raise InspectionError(f"{path.name} holds no tensors")
    return tensors


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------
def inspect_adapter(path: Union[str, os.PathLike], base_model: Any = None,
                    max_bytes: int = 500 * 1024**2) -> AdapterReport:
    """Inspect the adapter folder or .zip at `path`.

    base_model: None (adapter tensors only), "default" (the offline MiniLM),
    "auto" (the base the adapter records), a hub id or folder, or a loaded
    qgoft_core.explore.models.BaseModel.
    """
    path = Path(path)
    if not path.exists():
        raise InspectionError(f"{path}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="qgoft-inspect-") as tmp:
        if path.is_dir():
            # A run folder written by `qgoft train` holds the adapter in adapter/.
            nested = path / "adapter"
            folder = nested if not (path / CONFIG_NAME).exists() and (nested / CONFIG_NAME).is_file() else path
        elif zipfile.is_zipfile(path):
            folder = _extract_zip(path, Path(tmp), max_bytes)
        elif path.suffix.lower() == ".zip":
            raise InspectionError(f"{path.name} is not a valid zip file")
        elif path.name == CONFIG_NAME or path.suffix.lower() == ".safetensors":
            raise InspectionError(f"{path.name}: give the adapter folder (or a .zip of it), not one of its files")
        else:
            raise InspectionError(f"{path.name}: expected an adapter folder or a .zip of one")
        config = _read_config(folder)
        _method_of(config)  # an unknown kind of adapter is named before its files are looked for
        weights = _weights_file(folder, max_bytes)
        tensors = _read_tensors(weights)
        report = _analyse(config, tensors)
        # "run-3/adapter" says more than "adapter" (what the engine names its folders)
        report.source = f"{path.parent.name}/{path.name}" if path.is_dir() and path.parent.name else path.name
        if base_model is not None and not (isinstance(base_model, str) and not base_model.strip()):
            _compare_with_base(report, config, tensors, folder, weights, base_model)
        report.flags = [flag for row in report.layers for flag in row.pop("_flags")]
        return report


def _method_of(config: dict) -> str:
    if config.get("format") == OUR_FORMAT:
        method = config.get("method")
        if method not in ("goft", "qgoft"):
            raise InspectionError(f"qGOFT adapter with unknown method {method!r} (expected 'goft' or 'qgoft')")
        return method
    if "peft_type" in config:
        peft_type = str(config["peft_type"]).upper()
        if peft_type not in PEFT_TYPES:
            raise InspectionError(f"unknown peft_type {config['peft_type']!r}: this inspector reads LoRA, OFT "
                                  "and BOFT adapters and qGOFT's own format")
        return PEFT_TYPES[peft_type]
    raise InspectionError(f"{CONFIG_NAME} has neither format={OUR_FORMAT!r} nor a peft_type: "
                          "not an adapter this tool knows")


# ---------------------------------------------------------------------------
# Per-layer analysis from the adapter tensors alone
# ---------------------------------------------------------------------------
def _group(tensors: dict[str, torch.Tensor], suffixes: tuple[str, ...]) -> tuple[dict[str, dict], int]:
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


def _new_row(name: str, kind: str, d, n_or_r, params: int) -> dict:
    row = {c: None for c in COLUMNS}
    row.update({"layer": F.short_layer_name(name), "module": name, "kind": kind, "d": d, "n/r": n_or_r,
                "params": params, "_flags": []})
    return row


def _angle_stats(row: dict, angles: np.ndarray) -> None:
    if angles.size:
        degrees = np.degrees(np.abs(F.wrap_angles(angles, degrees=False)))
        row["max |angle| (deg)"] = float(degrees.max())
        row["mean |angle| (deg)"] = float(degrees.mean())


def _scale_stats(row: dict, scales: Optional[np.ndarray]) -> None:
    if scales is not None and scales.size:
        row["scale min"], row["scale max"] = float(scales.min()), float(scales.max())


def _all_finite(row: dict, parts: dict[str, torch.Tensor]) -> bool:
    bad = [k for k, v in parts.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        row["_flags"].append(f"{row['layer']} ({row['module']}): {', '.join(bad)} contain NaN or infinite "
                             "values; the adapter is broken (training diverged?)")
    return not bad


def _analyse(config: dict, tensors: dict[str, torch.Tensor]) -> AdapterReport:
    method = _method_of(config)
    analyse = {"goft": _analyse_ours, "qgoft": _analyse_ours, "lora": _analyse_lora,
               "oft": _analyse_oft, "boft": _analyse_boft}[method]
    report = AdapterReport(method=method, base_model=config.get("base_model_name_or_path"),
                           num_params=sum(t.numel() for t in tensors.values()), layers=[], flags=[],
                           config=config)
    analyse(report, config, tensors)
    _sort_layers(report, list(config.get("layers") or {}) if isinstance(config.get("layers"), dict) else [])
    if not report.layers:
        raise InspectionError(f"the weights file holds no {report.method_label} tensors "
                              f"(keys look like {sorted(tensors)[:2]}); is the config's method right?")
    report.adapter_params = report.num_params - report.saved_params
    for row in report.layers:
        _health_flags(row, report.angles.get(row["module"]), report.scales.get(row["module"]), method)
    return report


def _natural_key(name: str) -> list:
    """'layer.10.x' after 'layer.9.x': numbers compared as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _sort_layers(report: AdapterReport, order: list[str]) -> None:
    """Rows (and angle rows of the heatmap) in model order where known, else in natural order."""
    rank = {name: i for i, name in enumerate(order)}
    report.layers.sort(key=lambda r: (rank.get(r["module"], len(rank)), _natural_key(r["module"])))
    names = [r["module"] for r in report.layers]
    report.angles = {n: report.angles[n] for n in names if n in report.angles}
    report.scales = {n: report.scales[n] for n in names if n in report.scales}


def _analyse_ours(report: AdapterReport, config: dict, tensors: dict) -> None:
    from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table

    groups, report.saved_params = _group(tensors, OUR_PARAMS)
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
        row = _new_row(name, kind, d, n, sum(p.numel() for p in parts.values()))
        report.layers.append(row)
        if not _all_finite(row, parts):
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
        _angle_stats(row, angles)
        _scale_stats(row, scales)
        # The same operator the training snapshots measure: diag(s_in) M.
        with torch.no_grad():
            row["orth dev"] = GivensTree(d).gram_deviation(table, scale_in) / math.sqrt(d)


def _pattern_value(patterns: Any, name: str, default):
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches the module name or its tail."""
    for key, value in (patterns or {}).items():
        if re.fullmatch(rf"(.*\.)?{key}", name):
            return value
    return default


def _analyse_lora(report: AdapterReport, config: dict, tensors: dict) -> None:
    groups, report.saved_params = _group(tensors, ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector",
                                                   "lora_embedding_A", "lora_embedding_B"))
    if config.get("use_dora"):
        report.notes.append("DoRA magnitude vectors are counted but not analysed")
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
        row = _new_row(name, report.method_label, int(a.shape[1]), r, sum(p.numel() for p in parts.values()))
        report.layers.append(row)
        if not _all_finite(row, parts):
            continue
        alpha = float(_pattern_value(config.get("alpha_pattern"), name, config.get("lora_alpha", 8)))
        scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        # Singular values of s B A from two QR factors: r x r work instead of n x d.
        _, rb = torch.linalg.qr(b.double())
        _, ra = torch.linalg.qr(a.double().T)
        sv = abs(scaling) * torch.linalg.svdvals(rb @ ra.T)
        row["‖ΔW‖_F"] = float(sv.norm())
        total = float(sv.sum())
        if total > 0:
            p = (sv / total).numpy()
            p = p[p > 0]
            row["eff. rank"] = float(np.exp(-(p * np.log(p)).sum()))
        else:
            row["eff. rank"] = 0.0
            row["_flags"].append(f"{row['layer']} ({name}): the LoRA update is exactly zero; this layer never "
                                 "moved (untrained, or no gradient reached it)")


def _principal_angles(blocks: np.ndarray) -> np.ndarray:
    """Rotation angles (radians, >= 0) of each b x b block: eigenvalue phases, one per conjugate pair."""
    b = blocks.shape[-1]
    phases = np.sort(np.abs(np.angle(np.linalg.eigvals(blocks))), axis=-1)[..., ::-1]
    return phases[..., ::2][..., : max(b // 2, 1)].reshape(-1)


def _block_rotation_stats(row: dict, rotations: torch.Tensor) -> np.ndarray:
    """Orthogonality, reflections and angles of a batch of b x b rotation blocks; returns the angles."""
    eye = torch.eye(rotations.shape[-1], dtype=rotations.dtype)
    residual = rotations.transpose(-1, -2) @ rotations - eye
    count = rotations.shape[0] * rotations.shape[-1]  # the operator's dimension
    row["orth dev"] = float(residual.pow(2).sum().sqrt()) / math.sqrt(count)
    row["reflections"] = int((torch.linalg.det(rotations) < 0).sum())
    angles = _principal_angles(rotations.numpy())
    _angle_stats(row, angles)
    return angles


def _skew_from_upper(vec: torch.Tensor, b: int) -> torch.Tensor:
    rows, cols = torch.triu_indices(b, b, 1)
    q = torch.zeros(vec.shape[0], b, b, dtype=vec.dtype)
    q[:, rows, cols] = vec
    return q - q.transpose(-1, -2)


def cayley(q: torch.Tensor, neumann_terms: Optional[int] = None) -> torch.Tensor:
    """R = (I - Q)(I + Q)^-1 exactly, or PEFT OFT's truncated Neumann series for it."""
    eye = torch.eye(q.shape[-1], dtype=q.dtype).expand_as(q)
    if neumann_terms is None:
        return torch.linalg.solve(eye + q, eye - q, left=False)
    # PEFT: R = I + 2Q + 2Q^2 + ... + 2Q^(n-2) + Q^(n-1) for n terms.
    r = eye.clone()
    if neumann_terms > 1:
        power = q
        for k in range(1, neumann_terms - 1):
            r = r + 2 * power
            power = power @ q
        r = r + power
    return r


def _analyse_oft(report: AdapterReport, config: dict, tensors: dict) -> None:
    if any(k.endswith(".oft_r") for k in tensors):
        raise InspectionError("this OFT adapter uses PEFT's format from before 0.14 (oft_r); re-save it "
                              "with a current PEFT to inspect it")
    groups, report.saved_params = _group(tensors, ("oft_R.weight",))
    neumann = bool(config.get("use_cayley_neumann", False))
    terms = int(config.get("num_cayley_neumann_terms", 5)) if neumann else None
    report.notes.append("OFT rotations computed with " + (f"the Cayley-Neumann series ({terms} terms), as "
                        "PEFT does; it is only approximately orthogonal" if neumann else "the exact Cayley "
                        "transform"))
    for name, parts in groups.items():
        vec = parts["oft_R.weight"].double()
        if vec.dim() != 2:
            raise InspectionError(f"layer {name}: oft_R.weight has shape {tuple(vec.shape)}; expected "
                                  "(blocks, b(b-1)/2)")
        b = int(round((1 + math.sqrt(1 + 8 * vec.shape[1])) / 2))
        if b * (b - 1) // 2 != vec.shape[1]:
            raise InspectionError(f"layer {name}: {vec.shape[1]} values per block is not b(b-1)/2 for any b")
        row = _new_row(name, report.method_label, vec.shape[0] * b if not config.get("block_share") else None,
                       vec.shape[0], vec.numel())
        report.layers.append(row)
        if _all_finite(row, parts):
            report.angles[name] = _block_rotation_stats(row, cayley(_skew_from_upper(vec, b), terms))


def _analyse_boft(report: AdapterReport, config: dict, tensors: dict) -> None:
    groups, report.saved_params = _group(tensors, ("boft_R", "boft_s"))
    for name, parts in groups.items():
        data, s = parts.get("boft_R"), parts.get("boft_s")
        if data is None or data.dim() != 4 or data.shape[-1] != data.shape[-2]:
            raise InspectionError(f"layer {name}: boft_R is missing or not of shape (factors, blocks, b, b)")
        factors, blocks, b, _ = data.shape
        row = _new_row(name, report.method_label, blocks * b, None if s is None else s.numel(),
                       sum(p.numel() for p in parts.values()))
        report.layers.append(row)
        if not _all_finite(row, parts):
            continue
        data = data.double().reshape(-1, b, b)
        q = 0.5 * (data - data.transpose(-1, -2))  # PEFT BOFT takes the skew part, then exact Cayley
        report.angles[name] = _block_rotation_stats(row, cayley(q))
        if s is not None:
            scales = s.double().numpy().ravel()
            report.scales[name] = scales
            _scale_stats(row, scales)


# ---------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------
ORTH_DEV_MEANING = {
    "goft": "a strict Givens rotation should be orthogonal to float error: the stored angles are broken",
    "qgoft": "the quasi-Givens blocks have drifted away from rotations (a larger reg_lambda pulls them back)",
    "oft": "the Cayley-Neumann series is no longer a good approximation (rotation too large for it)",
    "boft": "an exact Cayley rotation should be orthogonal to float error",
}


def _health_flags(row: dict, angles: Optional[np.ndarray], scales: Optional[np.ndarray],
                  method: str) -> None:
    where = f"{row['layer']} ({row['module']})"
    flags = row["_flags"]
    if angles is not None and angles.size:
        wrapped = np.abs(F.wrap_angles(np.asarray(angles, dtype=float), degrees=False))
        saturated = int((wrapped > SATURATION_FRACTION * math.pi).sum())
        if saturated:
            flags.append(f"{where}: {saturated} of {wrapped.size} rotation angles are saturated near ±180° "
                         f"(|θ| > {SATURATION_FRACTION * 180:g}°)")
        if float(wrapped.max()) < STILL_ANGLE:
            flags.append(f"{where}: the rotation never moved (every |θ| < {STILL_ANGLE:g} rad): untrained, "
                         "or no gradient reached this layer")
    dev = row.get("orth dev")
    if dev is not None and dev > ORTH_DEV_THRESHOLD:
        flags.append(f"{where}: orthogonality deviation {dev:.3g} is above {ORTH_DEV_THRESHOLD:g} "
                     f"(||MᵀM − I||_F/√d): {ORTH_DEV_MEANING.get(method, 'no longer a rotation')}")
    if scales is not None and scales.size:
        median = float(np.median(scales))
        outside = (scales < SCALE_RANGE[0]) | (scales > SCALE_RANGE[1])
        if median > 0:
            outside |= (scales > SCALE_MEDIAN_FACTOR * median) | (scales < median / SCALE_MEDIAN_FACTOR)
        if outside.any():
            flags.append(f"{where}: {int(outside.sum())} of {scales.size} scales are outliers (outside "
                         f"[{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] or more than {SCALE_MEDIAN_FACTOR:g}x from "
                         f"the median {median:.3g}); range {scales.min():.3g} to {scales.max():.3g}")
    if row.get("reflections"):
        flags.append(f"{where}: {row['reflections']} blocks became reflections (det < 0), not rotations")


# ---------------------------------------------------------------------------
# Comparison with the base model
# ---------------------------------------------------------------------------
def _resolve_base(base_model: Any, recorded: Optional[str]):
    from qgoft_core.explore.models import BaseModel, ModelLoadError, load_base
    if isinstance(base_model, BaseModel):
        return base_model
    name = str(base_model).strip()
    if name.lower() == "auto":
        if not recorded:
            raise InspectionError("the adapter records no base model; name one (e.g. 'default')")
        name = recorded
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


def _tuned_weights(report: AdapterReport, host, folder: Path, weights: Path) -> dict[str, WeightPair]:
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


def _compare_with_base(report: AdapterReport, config: dict, tensors: dict, folder: Path, weights: Path,
                       base_model: Any) -> None:
    base = _resolve_base(base_model, report.base_model)
    report.base_used = base.model_id
    if report.base_model and report.base_model != base.model_id:
        report.notes.append(f"the adapter records base {report.base_model!r} but was compared with "
                            f"{base.model_id!r}")
    host = _host_module(base, [r["module"] for r in report.layers], tensors)
    model_order = [name for name, _ in host.named_modules()]  # before an adapter renames anything
    pairs = _tuned_weights(report, host, folder, weights)
    _sort_layers(report, model_order)
    report.spectra = LazySpectra(pairs)
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
        if row["n/r"] is None and report.method in ("goft", "qgoft", "boft"):
            row["n/r"] = int(w.shape[0])  # out features, now known
        if row["d"] is None:
            row["d"] = int(w.shape[1])
