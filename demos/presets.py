"""Teaching presets: pairs of finished training runs that play back instantly.

Each preset compares two runs of the real engine (``qgoft_core.explore.training``) on
the offline MiniLM and the built-in "sentiment" task. The runs were made once
by ``demos/make_precomputed_lessons.py`` and ship in ``demos/precomputed_lessons/``:

* ``<run>.json``: the run's config, step records, eval records, retention
  probes, snapshot steps, layer names and how the file was made (command,
  library versions, SHA-256 of the array file);
* ``<run>.npz``: per snapshot, every layer's rotation angles and per-neuron
  norm ratios (float16, concatenated over layers, cut by ``*_offsets``), and
  the per-layer orthogonality deviation and energy drift (float64: strict GOFT
  sits at ~1e-16, which float16 would flush to 0).

Loading reads both into the engine's one history type
(``qgoft_core.explore.history.RunHistory``, through ``RunHistory.from_json``):
a lesson plays back exactly what a live run records. It never unpickles
(``allow_pickle=False``) and imports neither torch nor gradio, so the Lessons
tab starts without the model.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from qgoft_core.explore.history import (SCHEMA, SCHEMA_VERSION, HistoryFormatError, RunHistory, Snapshot,
                                        finite_or_none)

__all__ = ["PRECOMPUTED_DIR", "FORMAT_VERSION", "MAKE_COMMAND", "COMMON_CONFIG", "RUNS", "RUN_LABELS",
           "PresetError", "Preset", "PRESETS", "PrecomputedRun", "load_run", "load_preset", "file_sha256",
           "finite_or_none"]

PRECOMPUTED_DIR = Path(__file__).parent / "precomputed_lessons"
FORMAT_VERSION = 1
MAKE_COMMAND = "nice -n 10 python3 -m demos.make_precomputed_lessons"

# Settings shared by every precomputed run (the engine's defaults, spelled out
# so the files say exactly what produced them).
COMMON_CONFIG: dict[str, Any] = {"task": "sentiment", "steps": 60, "eval_every": 10,
                                 "batch_size": 16, "seed": 0}

# run id -> RunConfig fields that differ from COMMON_CONFIG.
RUNS: dict[str, dict[str, Any]] = {
    "goft": {"method": "goft"},
    "qgoft": {"method": "qgoft", "reg_lambda": 0.01},
    "qgoft_lambda_huge": {"method": "qgoft", "reg_lambda": 10.0},
    "goft_lr_high": {"method": "goft", "lr": 0.5},
    "lora": {"method": "lora"},
}

RUN_LABELS: dict[str, str] = {
    "goft": "GOFT (strict), lr 2e-3",
    "qgoft": "qGOFT, λ = 0.01",
    "qgoft_lambda_huge": "qGOFT, λ = 10",
    "goft_lr_high": "GOFT, lr 0.5 (plain angles: wrapped, not saturated)",
    "lora": "LoRA r = 8, lr 1e-3",
}


class PresetError(RuntimeError):
    """A precomputed run is missing or damaged; the message names the file."""


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    run_a: str
    run_b: str
    notice: str  # one sentence: what to look at
    chart: str  # the Train-tab chart that shows it best (a CHART_NOTES key)
    extra: str | None = None  # a lesson-only chart: "penalty" (Σ⟨α,β⟩²) or "angles" (max |angle|)


PRESETS: dict[str, Preset] = {p.key: p for p in (
    Preset(
        key="strict_vs_quasi",
        title="Strict vs quasi (GOFT vs qGOFT)",
        run_a="goft", run_b="qgoft",
        notice="Both learn the task, but only strict GOFT keeps the geometry: its energy drift and "
               "orthogonality deviation stay at rounding-error level (below 1e-7), while qGOFT's "
               "free blocks (a shear the penalty pushes back, column lengths it does not see) let "
               "both grow by orders of magnitude.",
        chart="energy-plot",
    ),
    Preset(
        key="lambda_too_large",
        title="What λ does and does not do (qGOFT, λ = 0.01 vs λ = 10)",
        run_a="qgoft", run_b="qgoft_lambda_huge",
        notice="With λ = 10 training pushes Σ⟨α, β⟩² thousands of times below the default run's "
               "and the task loss falls a little more slowly, yet ‖MᵀM − I‖ and the energy drift do "
               "not shrink; they end slightly higher. The penalty only makes each block's two "
               "columns perpendicular; their lengths stay free and compound through the tree into an "
               "uneven scale of the inputs (the Givens playground shows it with the penalty at 0).",
        chart="orth-plot",
        extra="penalty",
    ),
    Preset(
        key="lr_too_high",
        title="Learning rate too high: angles race past a half-turn (GOFT, lr 2e-3 vs 0.5)",
        run_a="goft", run_b="goft_lr_high",
        notice="At lr 0.5 the angles shoot past ±180° within ten steps and keep going. These are "
               "plain angles, so nothing saturates: ±180° is an ordinary half-turn and an angle past "
               "it is wrapped (θ and θ ± 360° are the same rotation). The loss jumps about and accuracy "
               "stays at chance, while the default run's angles stay within a few degrees; the "
               "energy drift is still zero, because a rotation keeps the geometry, but not what the "
               "model knew (see the retention probe).",
        chart="angle-heatmap",
        extra="angles",
    ),
    Preset(
        key="goft_vs_lora_forgetting",
        title="GOFT vs LoRA: what is forgotten",
        run_a="goft", run_b="lora",
        notice="Both reach about 90% on the new task, but watch the retention probe and the CKA "
               "line: under GOFT the base model's sentence-similarity skill stays at 100% and its "
               "representations stay closer to the base, while LoRA's additive update dips to about "
               "80% of that skill mid-run, drifts much further in CKA and also moves the energy.",
        chart="cka-plot",
    ),
)}


@dataclass
class PrecomputedRun:
    """One finished run: its recorded `history` plus what the files say about it.

    The other fields are views of the history, in the shapes the Lessons tab
    and the figure functions of ``qgoft_core.viz.figures`` take.
    """

    run_id: str
    config: dict[str, Any]
    history: RunHistory
    trainable_parameters: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def label(self) -> str:
        return RUN_LABELS.get(self.run_id, self.run_id)

    @property
    def steps(self) -> list[dict]:
        return self.history.steps

    @property
    def evals(self) -> list[dict]:
        return self.history.evals

    @property
    def retention(self) -> list[dict]:
        return self.history.retention

    @cached_property
    def snapshot_steps(self) -> list[int]:
        return self.history.snapshot_steps

    @cached_property
    def layer_names(self) -> list[str]:
        return self.history.layer_names()

    @cached_property
    def angles(self) -> list[dict[str, np.ndarray]]:
        """Per snapshot: layer -> radians (float32; empty without rotations)."""
        return [self.history.angles_at(i) for i in range(len(self.history.snapshots))]

    @cached_property
    def norm_ratio(self) -> list[dict[str, np.ndarray]]:
        """Per snapshot: layer -> per-neuron norm ratio (float32)."""
        return [{n: layer["norm_ratio"] for n, layer in s["layers"].items()} for s in self.history.snapshots]

    @cached_property
    def orth_dev(self) -> np.ndarray:
        """(snapshots, layers) float64; NaN for methods without rotations."""
        return self.history.layer_table("orth_dev")

    @cached_property
    def he_drift(self) -> np.ndarray:
        """(snapshots, layers) float64."""
        return self.history.layer_table("he_drift")

    def snapshot(self, index: int) -> Snapshot:
        """Snapshot ``index`` as the engine records it ({step, layers: {name: LayerSnapshot}})."""
        return self.history.snapshots[index]

    def penalty_sums(self) -> tuple[list[int], list[float]]:
        """(steps, Σ⟨α,β⟩² over all blocks) from the step records: reg_loss / λ (qGOFT only)."""
        lam = float(self.config.get("reg_lambda") or 0.0)
        if self.method != "qgoft" or lam <= 0:
            return [], []
        return [s["step"] for s in self.steps], [s["reg_loss"] / lam for s in self.steps]

    def max_abs_angle_deg(self) -> list[float]:
        """Largest |angle| over all layers at each snapshot, in degrees (NaN without rotations)."""
        out = []
        for snap in self.angles:
            sizes = [a for a in snap.values() if a.size]
            out.append(math.degrees(max(float(np.abs(a).max()) for a in sizes)) if sizes else math.nan)
        return out

    def series(self, key: str, upto: int | None = None) -> tuple[list[int], dict[str, list[float]]]:
        """(snapshot steps, {layer: values}) of "orth_dev" or "he_drift" for snapshots 0..upto."""
        if key not in ("orth_dev", "he_drift"):
            raise KeyError(key)
        return self.history.layer_series(key, upto)


def _history_data(record: dict, arrays: dict[str, np.ndarray], names: list[str], steps: list[int]) -> dict:
    """The shipped form (JSON records + packed npz arrays) as the history's JSON form (arrays, not lists)."""
    def cut(key: str, offsets: str, row: int) -> dict[str, np.ndarray]:
        off = arrays[offsets]
        return {name: arrays[key][row, off[k]:off[k + 1]] for k, name in enumerate(names)}

    snapshots = []
    for row, step in enumerate(steps):
        angles, norms = cut("angles", "angle_offsets", row), cut("norm_ratio", "norm_offsets", row)
        snapshots.append({"step": step, "layers": {
            name: {"angles": angles[name], "norm_ratio": norms[name], "orth_dev": arrays["orth_dev"][row, k],
                   "he_drift": arrays["he_drift"][row, k], "block": {}, "scales": None}
            for k, name in enumerate(names)}})
    return {"schema": SCHEMA, "version": SCHEMA_VERSION, "steps": record["steps"], "evals": record["evals"],
            "retention": record.get("retention", []), "snapshots": snapshots}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@lru_cache(maxsize=None)
def load_run(run_id: str, directory: str | None = None) -> PrecomputedRun:
    """Read one precomputed run (cached; the arrays are shared, treat them as read-only)."""
    folder = Path(directory) if directory else PRECOMPUTED_DIR
    json_path, npz_path = folder / f"{run_id}.json", folder / f"{run_id}.npz"
    for path in (json_path, npz_path):
        if not path.is_file():
            raise PresetError(f"precomputed run file {path.name} is missing; "
                              f"rebuild it with `{MAKE_COMMAND}`")
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PresetError(f"{json_path.name} is not valid JSON: {err}") from err
    if record.get("format_version") != FORMAT_VERSION:
        raise PresetError(f"{json_path.name} has format version {record.get('format_version')!r}, "
                          f"this app reads version {FORMAT_VERSION}")
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise PresetError(f"{npz_path.name} cannot be read as a numpy archive: {err}") from err
    names = list(record["layer_names"])
    steps = [int(s) for s in record["snapshot_steps"]]
    n_snap, n_layers = len(steps), len(names)
    for key, shape in (("orth_dev", (n_snap, n_layers)), ("he_drift", (n_snap, n_layers)),
                       ("angle_offsets", (n_layers + 1,)), ("norm_offsets", (n_layers + 1,))):
        if key not in arrays or arrays[key].shape != shape:
            raise PresetError(f"{npz_path.name}: array {key!r} is missing or has the wrong shape")
    for key, offsets in (("angles", "angle_offsets"), ("norm_ratio", "norm_offsets")):
        width = int(arrays[offsets][-1])
        if key not in arrays or arrays[key].shape != (n_snap, width):
            raise PresetError(f"{npz_path.name}: array {key!r} is missing or has the wrong shape")
    try:
        history = RunHistory.from_json(_history_data(record, arrays, names, steps))
    except (HistoryFormatError, KeyError, TypeError) as err:
        raise PresetError(f"{json_path.name}: the records cannot be read: {err}") from err
    return PrecomputedRun(run_id=run_id, config=record["config"], history=history,
                          trainable_parameters=record.get("trainable_parameters"),
                          meta=record.get("generated_by", {}))


def load_preset(key: str) -> tuple[Preset, PrecomputedRun, PrecomputedRun]:
    """The preset and its two runs; PresetError names what is missing."""
    if key not in PRESETS:
        raise PresetError(f"unknown preset {key!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[key]
    return preset, load_run(preset.run_a), load_run(preset.run_b)

