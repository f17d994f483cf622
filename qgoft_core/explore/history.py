"""What a training run records, owned by the engine: one typed history, one NaN policy.

`TrainingRun` appends to a `RunHistory`; the live views, the exports, the HTML
report, the ZeroGPU chunks and the precomputed lessons all read that one type.

Records (TypedDicts: exactly what `TrainingRun` records; still plain dicts)::

    StepRecord      {"step", "loss", "reg_loss", "lr", "sec_per_step", "examples_per_sec"}
    EvalRecord      {"step", "accuracy" (0..1), "loss", "cka"}
    RetentionRecord {"step", "base", "tuned", "kept"}
    Snapshot        {"step", "layers": {module name: LayerSnapshot}}
    LayerSnapshot   {"angles": float32 array (radians; empty without rotations),
                     "norm_ratio": float32 array (per neuron), "orth_dev": float (NaN: undefined),
                     "he_drift": float, "block": {qGOFT block terms} or {},
                     "scales": float32 array or None}

In memory angles, norm ratios and scales are always float32 numpy arrays; in
JSON (`RunHistory.to_json`, schema `SCHEMA` version `SCHEMA_VERSION`) they are
lists of floats rounded to float32 precision and read back as float32 arrays.

The NaN policy (the only one in the project):
  * in memory an undefined number is NaN (figures draw a gap, tables show "–");
  * in JSON it is null (JSON has no NaN);
  * reading JSON back, null in a number slot is NaN again.

`json_safe` and `finite_or_none` are that policy; every file writer uses them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, TypedDict

import numpy as np

FLOAT32_DIGITS = 7  # float32 precision: more digits in JSON/CSV would be noise


def finite_or_none(x: Any) -> Optional[float]:
    """A plain float, or None when `x` is None, NaN, inf or not a number."""
    if x is None or isinstance(x, (str, bytes)):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def round_float(x: Any, digits: int = FLOAT32_DIGITS) -> Optional[float]:
    """`finite_or_none`, rounded to `digits` significant digits."""
    value = finite_or_none(x)
    return None if value is None else float(f"{value:.{digits}g}")


def json_safe(value: Any, digits: Optional[int] = None) -> Any:
    """A JSON-ready copy: NaN/inf -> None, numpy/torch -> plain Python, recursively.

    Dicts (keys -> str), lists, tuples, numpy arrays and scalars, torch tensors.
    With `digits`, floats are rounded to that many significant digits.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, digits) for v in value]
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [json_safe(v, digits) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value) if digits is None else round_float(value, digits)
    return value


def float_or_nan(x: Any) -> float:
    """The in-memory side of the policy: None (JSON null) or a non-number -> NaN, else float."""
    if x is None or isinstance(x, (str, bytes)):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


# -- the records -----------------------------------------------------------------------
class StepRecord(TypedDict):
    step: int
    loss: float  # task loss
    reg_loss: float
    lr: float
    sec_per_step: float
    examples_per_sec: float  # absent in the precomputed lessons' files


class EvalRecord(TypedDict):
    step: int
    accuracy: float  # fraction 0..1
    loss: float
    cka: float  # linear CKA of probe embeddings to the base's


class RetentionRecord(TypedDict):
    step: int
    base: float  # Spearman of the untuned base on the retention pairs
    tuned: float
    kept: float  # tuned / base (NaN when base is 0)


class LayerSnapshot(TypedDict):
    angles: np.ndarray  # float32 radians, one per rotation pair; empty without rotations
    norm_ratio: np.ndarray  # float32, per neuron ||w'|| / ||w||
    orth_dev: float  # ||M^T M - I||_F / sqrt(d); NaN without a rotation operator
    he_drift: float  # relative hyperspherical-energy change
    block: dict  # qGOFT block-level terms (penalty, reflections, scale_min, ...); {} otherwise
    scales: Optional[np.ndarray]  # float32 learned scales, or None


class Snapshot(TypedDict):
    step: int
    layers: dict[str, LayerSnapshot]


SCHEMA = "qgoft-run-history"
SCHEMA_VERSION = 1
KINDS = ("step", "eval", "snapshot", "retention")  # also the order of events within one step
_LISTS = {"step": "steps", "eval": "evals", "snapshot": "snapshots", "retention": "retention"}
_ARRAY_KEYS = ("angles", "norm_ratio", "scales")


class HistoryFormatError(ValueError):
    """A history file that is not this schema (or not this version of it)."""


def float32_array(values: Any) -> np.ndarray:
    """Angles, norm ratios, scales as the history keeps them: a flat float32 array (None -> empty)."""
    if values is None:
        return np.zeros(0, dtype=np.float32)
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (list, tuple)):
        values = [float_or_nan(v) for v in values]
    return np.asarray(values, dtype=np.float32).ravel()


def layer_snapshot(angles: Any = None, norm_ratio: Any = None, orth_dev: Any = None, he_drift: Any = None,
                   block: Optional[Mapping] = None, scales: Any = None) -> LayerSnapshot:
    """One layer's snapshot in the canonical in-memory types."""
    return {"angles": float32_array(angles), "norm_ratio": float32_array(norm_ratio),
            "orth_dev": float_or_nan(orth_dev), "he_drift": float_or_nan(he_drift),
            "block": {str(k): _block_value(v) for k, v in (block or {}).items()},
            "scales": None if scales is None else float32_array(scales)}


def _block_value(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float_or_nan(value)


def _scalar_record(record: Mapping) -> dict:
    """A step/eval/retention record read back: "step" an int, every other number a float (null -> NaN)."""
    return {str(k): int(v) if k == "step" else float_or_nan(v) for k, v in record.items()}


def _layer_to_json(layer: Mapping, digits: Optional[int]) -> dict:
    scales = layer.get("scales")
    return {"angles": float32_to_json(layer.get("angles")),
            "norm_ratio": float32_to_json(layer.get("norm_ratio")),
            "orth_dev": json_safe(float_or_nan(layer.get("orth_dev")), digits),
            "he_drift": json_safe(float_or_nan(layer.get("he_drift")), digits),
            "block": json_safe(dict(layer.get("block") or {}), digits),
            "scales": None if scales is None else float32_to_json(scales)}


def float32_to_json(values: Any) -> list:
    """float32 values as JSON floats: each the shortest decimal (6 to 9 significant digits)
    that reads back as the same float32, so a round trip keeps every bit; NaN/inf -> None."""
    x = float32_array(values)
    exact = x.astype(np.float64)
    out = exact.copy()
    todo = np.isfinite(x) & (x != 0)
    exponent = np.zeros(x.shape, dtype=np.int64)
    exponent[todo] = np.floor(np.log10(np.abs(exact[todo])))
    for digits in (6, 7, 8, 9):
        if not todo.any():
            break
        power = (digits - 1 - exponent[todo]).astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            scale = np.power(10.0, np.abs(power))
            up = power >= 0
            shorter = np.where(up, np.round(exact[todo] * scale) / scale, np.round(exact[todo] / scale) * scale)
        ok = np.isfinite(shorter) & (shorter.astype(np.float32) == x[todo])
        index = np.flatnonzero(todo)[ok]
        out[index] = shorter[ok]
        todo[index] = False
    # whatever is left keeps its exact float64 value (also reads back as the same float32)
    return [v if math.isfinite(v) else None for v in out.tolist()]


def snapshot_from_json(data: Mapping) -> Snapshot:
    """A snapshot from its JSON form (lists or arrays; nulls -> NaN) in the in-memory types."""
    layers = {str(name): layer_snapshot(layer.get("angles"), layer.get("norm_ratio"), layer.get("orth_dev"),
                                        layer.get("he_drift"), layer.get("block"), layer.get("scales"))
              for name, layer in data["layers"].items()}
    return {"step": int(data["step"]), "layers": layers}


def layer_series(snapshots: Sequence[Mapping], key: str) -> tuple[list[int], dict[str, list[float]]]:
    """(steps, {layer: values}) of one per-layer scalar ("orth_dev", "he_drift") over snapshots.

    A layer missing from a snapshot (or a null value) gets NaN there, drawn as a gap.
    """
    steps = [int(s["step"]) for s in snapshots]
    names: list[str] = []
    for snapshot in snapshots:
        names.extend(n for n in snapshot["layers"] if n not in names)
    series = {name: [float_or_nan(s["layers"].get(name, {}).get(key)) for s in snapshots] for name in names}
    return steps, series


def events_of(lists: Mapping[str, Sequence[Mapping]]) -> list[tuple[str, Mapping]]:
    """(kind, record) of every record in `lists` ("steps", "evals", "snapshots", "retention":
    a RunHistory's lists or its `to_dict` form) in the order a run records them: by step,
    then in the order of KINDS (a run evaluates, then snapshots, after its step)."""
    order = {kind: i for i, kind in enumerate(KINDS)}
    events = [(kind, r) for kind in KINDS for r in lists.get(_LISTS[kind], ())]
    return sorted(events, key=lambda e: (e[1]["step"], order[e[0]]))  # stable: keeps record order


def upto(records: Iterable[Mapping], step: Optional[int]) -> list:
    """The records at or before `step` (all of them for None)."""
    return [r for r in records if step is None or r["step"] <= step]


# -- the history ---------------------------------------------------------------------------
@dataclass
class RunHistory:
    """Everything a run recorded, in order: steps, evaluations, snapshots, retention probes."""

    steps: list[StepRecord] = field(default_factory=list)
    evals: list[EvalRecord] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    retention: list[RetentionRecord] = field(default_factory=list)

    # -- recording ---------------------------------------------------------------
    def add(self, kind: str, record: Mapping) -> None:
        """Append one record of `kind` ("step", "eval", "snapshot" or "retention")."""
        if kind not in _LISTS:
            raise ValueError(f"unknown record kind {kind!r}; one of {', '.join(KINDS)}")
        getattr(self, _LISTS[kind]).append(record)

    def extend(self, other: "RunHistory") -> None:
        for name in _LISTS.values():
            getattr(self, name).extend(getattr(other, name))

    def events(self) -> list[tuple[str, Mapping]]:
        """Every record as (kind, record) in the order a run records them (by step, then KINDS)."""
        return events_of({name: getattr(self, name) for name in _LISTS.values()})

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in _LISTS.values())

    # -- what the views need -----------------------------------------------------------
    @property
    def snapshot_steps(self) -> list[int]:
        return [int(s["step"]) for s in self.snapshots]

    def layer_names(self) -> list[str]:
        """Layer names of the newest snapshot (all snapshots of a run have the same layers)."""
        return list(self.snapshots[-1]["layers"]) if self.snapshots else []

    def snapshot_index(self, step: Optional[int]) -> int:
        """Index of the newest snapshot at or before `step` (None: the newest; -1: none yet)."""
        if step is None:
            return len(self.snapshots) - 1
        index = 0
        for i, snap in enumerate(self.snapshots):
            if snap["step"] <= step:
                index = i
        return index

    def layer_series(self, key: str, upto_index: Optional[int] = None) -> tuple[list[int], dict[str, list[float]]]:
        """(snapshot steps, {layer: values}) of "orth_dev" or "he_drift" for snapshots 0..upto_index."""
        shown = self.snapshots if upto_index is None else self.snapshots[: upto_index + 1]
        return layer_series(shown, key)

    def layer_table(self, key: str) -> np.ndarray:
        """(snapshots, layers) float64 array of a per-layer scalar (NaN where undefined)."""
        names = self.layer_names()
        return np.array([[float_or_nan(s["layers"].get(n, {}).get(key)) for n in names]
                         for s in self.snapshots], dtype=np.float64).reshape(len(self.snapshots), len(names))

    def angles_at(self, index: int) -> dict[str, np.ndarray]:
        """Snapshot `index`'s angles per layer (float32 radians; empty arrays without rotations)."""
        return {name: layer["angles"] for name, layer in self.snapshots[index]["layers"].items()}

    def upto(self, step: Optional[int]) -> "RunHistory":
        """The history as it was at `step` (records at or before it)."""
        return RunHistory(*(upto(getattr(self, name), step) for name in _LISTS.values()))

    # -- files ---------------------------------------------------------------------------
    def to_dict(self, digits: Optional[int] = FLOAT32_DIGITS) -> dict:
        """The JSON-ready form (schema `SCHEMA`, version `SCHEMA_VERSION`): NaN -> null.

        Angles, norm ratios and scales (float32) are written as the shortest
        decimals that read back as the same float32 (`float32_to_json`); the
        scalars are rounded to `digits` significant digits (float32 precision by
        default), digits=None keeps every bit (for shipping between processes).
        """
        return {"schema": SCHEMA, "version": SCHEMA_VERSION,
                "steps": [json_safe(r, digits) for r in self.steps],
                "evals": [json_safe(r, digits) for r in self.evals],
                "retention": [json_safe(r, digits) for r in self.retention],
                "snapshots": [{"step": int(s["step"]),
                               "layers": {str(n): _layer_to_json(layer, digits) for n, layer in s["layers"].items()}}
                              for s in self.snapshots]}

    def to_json(self, indent: Optional[int] = None, digits: Optional[int] = FLOAT32_DIGITS) -> str:
        """`to_dict` as JSON text (strict JSON: never NaN)."""
        return json.dumps(self.to_dict(digits), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, data: str | bytes | Mapping) -> "RunHistory":
        """Read `to_json` text or `to_dict` data back (null -> NaN, arrays -> float32).

        Raises HistoryFormatError for another schema or version.
        """
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except ValueError as err:
                raise HistoryFormatError(f"not JSON: {err}") from err
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise HistoryFormatError(f"not a run history (schema {SCHEMA!r} expected)")
        if data.get("version") != SCHEMA_VERSION:
            raise HistoryFormatError(f"run history version {data.get('version')!r}; "
                                     f"this code reads version {SCHEMA_VERSION}")
        try:
            return cls(steps=[_scalar_record(r) for r in data.get("steps", [])],
                       evals=[_scalar_record(r) for r in data.get("evals", [])],
                       snapshots=[snapshot_from_json(s) for s in data.get("snapshots", [])],
                       retention=[_scalar_record(r) for r in data.get("retention", [])])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise HistoryFormatError(f"damaged run history: {err!r}") from err
