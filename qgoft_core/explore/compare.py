"""Compare fine-tuning methods on one task: what each learns and what each keeps.

Every method in `COMPARE_METHODS` is trained one after another through the
same engine (`TrainingRun`) with the same base model, task, seed (so the same
head initialisation and data order) and step budget; only the method and its
learning rate differ. `compare_runs` streams events so a caller (the Compare
tab, the precompute script, a test) can show progress as it happens, and ends
with one `CompareRow` per method:

- trainable parameters, held-out accuracy, median seconds per step;
- orthogonality deviation ||M^T M - I||_F / sqrt(d), max over adapted layers
  (see `orth_dev_kind`, and the column help in `qgoft_core.viz.compare_views`, for what M
  is for each method);
- hyperspherical-energy drift, mean |relative drift| over adapted layers;
- linear CKA of the tuned sentence embeddings against the base's;
- the retention probe (Spearman of cosine similarity against graded sentence
  pairs) for the base and the tuned model, and their ratio.

Plus, per method, the eval records over training as an accuracy-vs-CKA curve.

One comparison is one seed. `aggregate_seeds` folds comparisons of the same
task, budget and methods made with different seeds into one result whose rows
hold the mean and the sample sd of each number (`n_seeds`, `<name>_sd`) and
whose `per_seed` keeps every run; a single run is the case `n_seeds` = 1.

This is the engine half (running, measuring, JSON and CSV in and out); the
table, the charts and the text the app shows are in `qgoft_core.viz.compare_views`.
No Gradio or plotly here. Files follow the one NaN policy of `explore.history`
(`json_safe`: NaN -> null).
"""
from __future__ import annotations

import csv
import io
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch

from qgoft_core import metrics as M
from qgoft_core.explore.history import json_safe
from qgoft_core.explore.registry import lighter, method_spec
from qgoft_core.explore.models import BaseModel, load_base
from qgoft_core.explore.training import RunConfig, TrainingConfigError, TrainingDiverged, TrainingRun

FORMAT = "qgoft-compare/2"  # /2 adds seeds, per_seed and the rows' n_seeds and sds
READABLE_FORMATS = ("qgoft-compare/1", FORMAT)  # a /1 file is one seed; every new field has a default


@dataclass(frozen=True)
class CompareMethod:
    """One entry of the comparison: an engine method plus its settings."""

    key: str
    label: str  # short, unique: bar labels and legend entries
    overrides: Mapping[str, Any]  # RunConfig fields (always "method" and "lr")
    note: str  # one line for the method picker's help
    variant: bool = False  # a variant of its method: drawn in a lighter shade of the method's colour

    @property
    def color(self) -> str:
        color = method_spec(self.method).color
        return lighter(color) if self.variant else color

    @property
    def method(self) -> str:
        return str(self.overrides["method"])

    @property
    def lr(self) -> float:
        return float(self.overrides["lr"])


def _entry(key: str, label: str, note: str, variant: bool = False, **overrides: Any) -> tuple[str, CompareMethod]:
    return key, CompareMethod(key, label, dict(overrides), note, variant)


# Learning rates: each method's pick from the quality benchmark's grid
# (benchmarks/quality.py: x0.3 and x1 of a first guess, 640 movie reviews,
# 40 steps of 16, best accuracy on 200 validation reviews, ties to the smaller
# rate; see benchmarks/results_quality_reduced.json). The qGOFT lambda=1 variant uses
# qGOFT's rate and exact OFT uses Neumann OFT's, so only lambda / the Cayley
# transform differ between them.
COMPARE_METHODS: dict[str, CompareMethod] = dict([
    _entry("goft", "GOFT", "strict Givens rotations: d - 1 angles per layer, exactly orthogonal",
           method="goft", lr=5e-3),
    _entry("qgoft", "qGOFT", "quasi-Givens 2x2 blocks with a soft penalty on <alpha, beta> (lambda 0.01; column lengths free)",
           method="qgoft", lr=1.5e-3, reg_lambda=0.01),
    _entry("qgoft_big_lambda", "qGOFT λ=1", "qGOFT with a 100x stronger penalty (lambda 1.0): "
           "straighter blocks, not closer to strict GOFT (column lengths stay free)", variant=True, method="qgoft", lr=1.5e-3, reg_lambda=1.0),
    _entry("lora", "LoRA", "PEFT LoRA, rank 8, alpha 16: a low-rank additive update",
           method="lora", lr=9e-4, lora_r=8),
    _entry("oft_neumann", "OFT (Neumann)", "PEFT OFT, block 32, Cayley transform approximated by a "
           "Neumann series (PEFT's default): only approximately orthogonal",
           method="oft", lr=9e-4, oft_cayley_neumann=True),
    _entry("oft_exact", "OFT (exact)", "PEFT OFT, block 32, exact Cayley transform (matrix inverse): "
           "orthogonal up to rounding", variant=True, method="oft", lr=9e-4, oft_cayley_neumann=False),
    _entry("boft", "BOFT", "PEFT BOFT, block 4, 2 butterfly factors; on a machine without PEFT's CUDA "
           "extension PEFT itself drops to 1 factor (block-diagonal, like OFT with 4 x 4 blocks) and "
           "builds the rotation from hundreds of small blocks each step: several times slower",
           method="boft", lr=5e-3),
    _entry("full", "Full FT", "every weight of the encoder and the head trained",
           method="full", lr=1e-4),
    _entry("head", "Head only", "linear probe: the encoder stays frozen, only the classifier head learns",
           method="head", lr=6e-3),
])
DEFAULT_METHODS: tuple[str, ...] = tuple(COMPARE_METHODS)

# Orthogonality deviation needs an input-side operator M (y = base(x @ M)).
ORTH_ROTATION = "rotation"  # the method's own operator
ORTH_LEAST_SQUARES = "least squares"  # M^T = pinv(W) W' on well-conditioned layers with n >= d
ORTH_UNTOUCHED = "encoder untouched"  # head only: M = I, deviation 0

@dataclass
class CompareRow:
    """One method's results; every number finite unless `status` says why not."""

    key: str
    label: str
    method: str
    trainable_params: int = 0
    total_params: int = 0
    accuracy: float = math.nan
    sec_per_step: float = math.nan
    orth_dev: float = math.nan
    orth_dev_kind: str = ""
    he_drift: float = math.nan
    cka: float = math.nan
    retention_base: float = math.nan
    retention_tuned: float = math.nan
    retention_kept: float = math.nan
    lr: float = math.nan
    steps: int = 0
    seconds: float = 0.0  # wall-clock of the whole method (training + measuring)
    status: str = "ok"  # "ok", or why the row is incomplete / stopped early
    # Several seeds (aggregate_seeds): the numbers above are means, these their sample sds.
    # One run: n_seeds 1 and every sd NaN (a spread of one value is not 0, it is unknown).
    n_seeds: int = 1
    accuracy_sd: float = math.nan
    sec_per_step_sd: float = math.nan
    orth_dev_sd: float = math.nan
    he_drift_sd: float = math.nan
    cka_sd: float = math.nan
    retention_tuned_sd: float = math.nan
    retention_kept_sd: float = math.nan

    def numbers(self) -> dict[str, float]:
        """The measured columns (what a test checks for finiteness); not the sds, NaN for one seed."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)
                if f.type in ("int", "float") and f.name not in ("seconds", "n_seeds")
                and not f.name.endswith("_sd")}

    def sd(self, name: str) -> float:
        """The sample sd of column `name` over the row's seeds; NaN for one seed or a column without one."""
        return float(getattr(self, f"{name}_sd", math.nan))

    def to_dict(self) -> dict[str, Any]:
        return {k: json_safe(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CompareRow":
        known = {f.name: f for f in fields(cls)}
        values = {}
        for name, value in data.items():
            if name in known:
                values[name] = math.nan if value is None and known[name].type == "float" else value
        return cls(**values)


@dataclass
class CompareResult:
    """A whole comparison: rows, accuracy-vs-kept curves and how it was made.

    One seed (`seeds` == [seed]) or several (see `aggregate_seeds`): then
    `seed` is the first of `seeds`, rows and curves are means and `per_seed`
    holds each seed's own comparison.
    """

    task: str
    seed: int
    steps: int
    model: str
    rows: list[CompareRow] = field(default_factory=list)
    # key -> {"step": [...], "accuracy": [...], "kept": [... CKA], "loss": [...]}
    # (means over seeds, plus "accuracy_sd" and "kept_sd", in a multi-seed result)
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    per_seed: list["CompareResult"] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.seeds:
            self.seeds = [self.seed]

    def row(self, key: str) -> Optional[CompareRow]:
        return next((r for r in self.rows if r.key == key), None)

    def labels(self) -> dict[str, str]:
        return {r.key: r.label for r in self.rows} | {
            k: COMPARE_METHODS[k].label for k in self.curves if k in COMPARE_METHODS}

    def to_dict(self) -> dict[str, Any]:
        data = {"format": FORMAT, "task": self.task, "seed": self.seed, "seeds": list(self.seeds),
                "steps": self.steps, "model": self.model, "meta": json_safe(self.meta),
                "rows": [r.to_dict() for r in self.rows], "curves": json_safe(self.curves)}
        if self.per_seed:
            data["per_seed"] = [r.to_dict() for r in self.per_seed]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CompareResult":
        if data.get("format") not in READABLE_FORMATS:
            raise ValueError(f"not a method comparison (format {data.get('format')!r}, expected one of "
                             f"{', '.join(READABLE_FORMATS)})")
        return cls(task=str(data["task"]), seed=int(data["seed"]), steps=int(data["steps"]),
                   model=str(data["model"]), rows=[CompareRow.from_dict(r) for r in data["rows"]],
                   curves={k: {n: [math.nan if x is None else x for x in xs] for n, xs in c.items()}
                           for k, c in data.get("curves", {}).items()},
                   meta=dict(data.get("meta", {})), seeds=[int(s) for s in data.get("seeds", [])],
                   per_seed=[cls.from_dict(r) for r in data.get("per_seed", [])])


@dataclass
class CompareEvent:
    """What `compare_runs` streams. kind: "start" | "step" | "eval" | "row" | "error" | "done".

    `result` is the comparison so far (the same object every time, growing).
    """

    kind: str
    key: str
    record: dict
    result: CompareResult
    index: int  # position of `key` among the methods run (0-based)
    total: int


# -- running -----------------------------------------------------------------
def method_config(key: str, task: str, seed: int, steps: int, **overrides: Any) -> RunConfig:
    """The RunConfig of one comparison entry (its overrides, then the caller's)."""
    if key not in COMPARE_METHODS:
        raise TrainingConfigError(f"unknown comparison method {key!r}; choose from {', '.join(COMPARE_METHODS)}")
    values = {"task": task, "seed": seed, "steps": steps, **COMPARE_METHODS[key].overrides, **overrides}
    return RunConfig(**values)


def compare_runs(methods: Sequence[str] = DEFAULT_METHODS, task: Any = "sentiment", seed: int = 0,
                 steps: int = 60, *, base: Optional[BaseModel] = None, eval_every: Optional[int] = None,
                 batch_size: int = 16, max_length: int = 64, max_seconds: Optional[float] = None,
                 should_stop: Optional[Callable[[], bool]] = None, config_overrides: Optional[dict] = None,
                 meta: Optional[dict] = None) -> Iterator[CompareEvent]:
    """Train each method in turn and stream CompareEvents; the last one is "done".

    `task`: a built-in task name or a TextTask. `eval_every` None: about 8
    evaluations per method (the curve points). `max_seconds` bounds the whole
    comparison: each method gets an equal share of the time left, and a
    method that reaches its share stops early (its row says so) so every
    method still gets a row. `should_stop()` True ends the comparison after
    the current step. A method that cannot be built or diverges gets a row
    whose status says why; the others still run.
    """
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise TrainingConfigError("pick at least one method to compare")
    unknown = [m for m in methods if m not in COMPARE_METHODS]
    if unknown:
        raise TrainingConfigError(f"unknown comparison method(s) {', '.join(unknown)}; "
                                  f"choose from {', '.join(COMPARE_METHODS)}")
    base = base or load_base(None)
    task_name = task if isinstance(task, str) else task.name
    task_obj = None if isinstance(task, str) else task
    eval_every = eval_every or max(1, steps // 8)
    result = CompareResult(task=task_name, seed=seed, steps=steps, model=base.model_id,
                           meta={"methods": {}, "eval_every": eval_every, "batch_size": batch_size,
                                 "max_length": max_length, **(meta or {})})
    deadline = time.monotonic() + max_seconds if max_seconds else None
    base_retention: Optional[float] = None
    total = len(methods)
    for index, key in enumerate(methods):
        if should_stop and should_stop():
            break
        spec = COMPARE_METHODS[key]
        share = None
        if deadline is not None:
            share = max(0.0, (deadline - time.monotonic()) / (total - index))
        started = time.monotonic()
        yield CompareEvent("start", key, {"label": spec.label}, result, index, total)
        row = CompareRow(key=key, label=spec.label, method=spec.method, lr=spec.lr)
        curve: dict[str, list] = {"step": [], "accuracy": [], "kept": [], "loss": []}
        try:
            config = method_config(key, task_name, seed, steps,
                                   batch_size=batch_size, max_length=max_length, eval_every=eval_every,
                                   **(config_overrides or {}))
            run = TrainingRun(config, task=task_obj, base=base)
        except (TrainingConfigError, ValueError, RuntimeError) as exc:
            row.status = f"could not start: {exc}"
            result.rows.append(row)
            yield CompareEvent("error", key, {"message": row.status}, result, index, total)
            continue
        result.meta["methods"][key] = {k: v for k, v in config.to_dict().items()
                                       if k not in ("task", "model", "max_steps")}
        result.curves[key] = curve
        stopped = ""
        try:
            for kind, record in run.run():
                if kind == "step":
                    yield CompareEvent("step", key, record, result, index, total)
                    if should_stop and should_stop():
                        stopped = "stopped by request"
                    elif share is not None and time.monotonic() - started > share:
                        stopped = "time limit"
                elif kind == "eval":
                    _add_curve_point(curve, record)
                    yield CompareEvent("eval", key, record, result, index, total)
                if stopped:
                    break
        except TrainingDiverged as exc:
            stopped = str(exc)
        if stopped:
            if not run.history.evals or run.history.evals[-1]["step"] != run.step_count:
                _add_curve_point(curve, run.evaluate())
            row.status = f"stopped at step {run.step_count} of {steps}: {stopped}"
        reuse_base_retention(run, base_retention)
        measure_row(row, run)
        base_retention = row.retention_base
        row.seconds = time.monotonic() - started
        result.rows.append(row)
        yield CompareEvent("row", key, row.to_dict(), result, index, total)
        if should_stop and should_stop():
            break
    yield CompareEvent("done", "", {}, result, total - 1, total)


def run_comparison(*args: Any, **kwargs: Any) -> CompareResult:
    """compare_runs to the end; returns the finished comparison."""
    result = None
    for event in compare_runs(*args, **kwargs):
        result = event.result
    assert result is not None
    return result


def _add_curve_point(curve: dict[str, list], record: Mapping[str, Any]) -> None:
    curve["step"].append(int(record["step"]))
    curve["accuracy"].append(float(record["accuracy"]))
    curve["kept"].append(float(record["cka"]))
    curve["loss"].append(float(record["loss"]))


def reuse_base_retention(run: TrainingRun, value: Optional[float]) -> None:
    """Give `run` the base model's retention score measured by an earlier run.

    The probe score of the untuned base is the same for every method on one
    base model and max length; measuring it once saves ~800 forward passes
    per method. (TrainingRun caches it in `_base_retention`.)
    """
    if value is not None and math.isfinite(value):
        run._base_retention = float(value)


def measure_row(row: CompareRow, run: TrainingRun) -> CompareRow:
    """Measure the trained model: every column of the row (from its last evaluation)."""
    row.trainable_params, row.total_params = run.trainable_parameters()
    row.steps = run.step_count
    row.lr = run.config.resolved_lr()
    last_eval = run.history.evals[-1] if run.history.evals else run.evaluate()
    row.accuracy = float(last_eval["accuracy"])
    row.cka = float(last_eval["cka"])
    step_times = [s["sec_per_step"] for s in run.history.steps]
    row.sec_per_step = float(statistics.median(step_times)) if step_times else 0.0
    snap = run.history.snapshots[-1] if run.history.snapshots and \
        run.history.snapshots[-1]["step"] == run.step_count else run.snapshot()
    layers = snap["layers"].values()
    row.he_drift = float(np.mean([abs(layer["he_drift"]) for layer in layers])) if layers else 0.0
    row.orth_dev, row.orth_dev_kind = orthogonality_of_run(run, snap)
    retention = run.retention()
    row.retention_base = float(retention["base"])
    row.retention_tuned = float(retention["tuned"])
    row.retention_kept = float(retention["kept"])
    return row


def orthogonality_of_run(run: TrainingRun, snapshot: Optional[dict] = None) -> tuple[float, str]:
    """(max over layers of ||M^T M - I||_F / sqrt(d), how M was obtained).

    See the module docstring and `orth_dev_kind` (ORTH_ROTATION, ORTH_LEAST_SQUARES, ORTH_UNTOUCHED).
    """
    method = run.config.method
    if method == "head":
        return 0.0, ORTH_UNTOUCHED
    snapshot = snapshot or run.snapshot()
    own = [layer["orth_dev"] for layer in snapshot["layers"].values() if math.isfinite(layer["orth_dev"])]
    if own:
        return float(max(own)), ORTH_ROTATION
    return least_squares_orth_dev(run), ORTH_LEAST_SQUARES


MAX_CONDITION = 100.0  # least-squares operators only where W is well conditioned (see below)


@torch.no_grad()
def least_squares_orth_devs(run: TrainingRun) -> dict[str, float]:
    """Per layer: deviation of the least-squares input operator, M^T = pinv(W) W'.

    Only layers where that operator is well determined: n >= d (W has full
    column rank, so M is unique) and cond(W) <= MAX_CONDITION. Otherwise
    pinv(W) multiplies the update's component along W's smallest singular
    directions by up to cond(W) (MiniLM's attention weights: 10^3..10^5), and
    the number would describe W's conditioning, not the update. In MiniLM
    this keeps the six MLP up-projections (1536 x 384, cond ~15). For a
    rotation method the result equals its own operator's deviation.
    """
    devs = {}
    for name, base_layer in run.tuned.base_layers.items():
        w = M.torch_weight(base_layer).double().cpu()
        n, d = w.shape
        if n < d:
            continue
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        if s[-1] <= 0 or s[0] / s[-1] > MAX_CONDITION:
            continue
        tuned = run.tuned.tuned_weight(name).double().cpu()
        pinv = vh.T @ torch.diag(1.0 / s) @ u.T
        devs[name] = M.orthogonality_deviation((pinv @ tuned).T)[1]
    return devs


def least_squares_orth_dev(run: TrainingRun) -> float:
    """Max of `least_squares_orth_devs` (NaN when no layer qualifies)."""
    devs = least_squares_orth_devs(run)
    return max(devs.values()) if devs else math.nan


# -- files -------------------------------------------------------------------
def result_to_json(result: CompareResult, indent: Optional[int] = 1) -> str:
    """Strict JSON (NaN written as null, see `explore.history.json_safe`)."""
    return json.dumps(result.to_dict(), indent=indent, allow_nan=False)


def result_from_json(text: str) -> CompareResult:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("a comparison file holds one JSON object")
    return CompareResult.from_dict(data)


def rows_to_csv(rows: Sequence[CompareRow]) -> str:
    """Every field of every row as CSV (empty cell for a missing number)."""
    out = io.StringIO()
    names = [f.name for f in fields(CompareRow)]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.to_dict().items()})
    return out.getvalue()


def select_methods(result: CompareResult, keys: Sequence[str]) -> CompareResult:
    """A copy of `result` with only the rows and curves of `keys` (in the result's order)."""
    wanted = set(keys)
    return replace(result, rows=[r for r in result.rows if r.key in wanted],
                   curves={k: c for k, c in result.curves.items() if k in wanted},
                   per_seed=[select_methods(r, keys) for r in result.per_seed])


# -- several seeds -------------------------------------------------------------
# Columns averaged over seeds (each with a `<name>_sd` field on CompareRow).
SEED_AVERAGED = ("accuracy", "sec_per_step", "orth_dev", "he_drift", "cka", "retention_tuned", "retention_kept")
# Meta entries that describe one run, not the comparison: kept per seed in meta["runs"].
RUN_META = ("created", "command", "versions", "device", "total_seconds", "note")
RUN_DEFAULTS = {f.name: f.default for f in fields(RunConfig)}


def single_seed_results(result: CompareResult) -> list[CompareResult]:
    """The one-seed comparisons behind `result`: its `per_seed`, or itself when it is one run."""
    return list(result.per_seed) if result.per_seed else [result]


def aggregate_seeds(results: Sequence[CompareResult]) -> CompareResult:
    """One comparison from runs of the same comparison with different seeds: mean and sample sd.

    Inputs may be single- or multi-seed results (a multi-seed one contributes its
    `per_seed` runs). They must share task, steps, model, the set of methods and
    each method's settings apart from the seed; seeds must be distinct.
    ValueError says which of these fails. A number missing in a seed (NaN: the
    method could not start) is left out of that column's mean; `n_seeds` counts
    the seeds with an accuracy, and a row's status names every seed that did not
    finish cleanly. Curves are averaged at the eval steps every seed has.
    """
    runs = [run for result in results for run in single_seed_results(result)]
    if not runs:
        raise ValueError("no comparisons to aggregate")
    first = runs[0]
    for run in runs[1:]:
        for name in ("task", "steps", "model"):
            if getattr(run, name) != getattr(first, name):
                raise ValueError(f"cannot aggregate comparisons with different {name}: "
                                 f"{getattr(first, name)!r} (seed {first.seed}) vs {getattr(run, name)!r} "
                                 f"(seed {run.seed})")
        if {r.key for r in run.rows} != {r.key for r in first.rows}:
            raise ValueError(f"cannot aggregate comparisons of different methods: seed {first.seed} has "
                             f"{', '.join(r.key for r in first.rows)}; seed {run.seed} has "
                             f"{', '.join(r.key for r in run.rows)}")
        for key, settings in _settings(first).items():
            other = _settings(run).get(key)
            if other is None:
                continue  # that method could not start in this seed: its row says so
            # A field missing from an older file did not exist yet: the run had its default.
            changed = sorted(k for k in settings.keys() | other.keys()
                             if settings.get(k, RUN_DEFAULTS.get(k)) != other.get(k, RUN_DEFAULTS.get(k)))
            if changed:
                raise ValueError(f"cannot aggregate: {key} was run with different settings in seeds "
                                 f"{first.seed} and {run.seed} ({', '.join(changed)})")
    seeds = [run.seed for run in runs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seed {', '.join(map(str, repeated))} given more than once; each seed may count once")
    runs = sorted(runs, key=lambda run: run.seed)
    seeds = [run.seed for run in runs]
    rows = [_mean_row([run.row(r.key) for run in runs], seeds) for r in first.rows]
    curves = {r.key: _mean_curve([run.curves[r.key] for run in runs if r.key in run.curves])
              for r in first.rows if any(r.key in run.curves for run in runs)}
    return CompareResult(task=first.task, seed=seeds[0], steps=first.steps, model=first.model, rows=rows,
                         curves=curves, meta=_merged_meta(runs), seeds=seeds, per_seed=runs)


def _settings(result: CompareResult) -> dict[str, dict]:
    """Each method's RunConfig fields as the file recorded them, without the seed."""
    methods = result.meta.get("methods", {})
    return {key: {k: v for k, v in config.items() if k != "seed"} for key, config in methods.items()}


def _spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample sd) of the finite values; sd NaN below two values, both NaN for none."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else math.nan


def _mean_row(rows: Sequence[CompareRow], seeds: Sequence[int]) -> CompareRow:
    first = rows[0]
    for row, seed in zip(rows, seeds):
        if row.lr != first.lr and not (math.isnan(row.lr) and math.isnan(first.lr)):
            raise ValueError(f"cannot aggregate: {first.key} has learning rate {first.lr:g} in seed "
                             f"{seeds[0]} and {row.lr:g} in seed {seed}")
    mean = replace(first)
    for name in SEED_AVERAGED:
        value, sd = _spread([float(getattr(r, name)) for r in rows])
        setattr(mean, name, value)
        setattr(mean, f"{name}_sd", sd)
    mean.retention_base = _spread([r.retention_base for r in rows])[0]
    mean.seconds = _spread([r.seconds for r in rows])[0]
    mean.steps = min(r.steps for r in rows)  # the budget every seed reached
    mean.trainable_params = max(r.trainable_params for r in rows)  # 0 where a seed could not start
    mean.total_params = max(r.total_params for r in rows)
    mean.n_seeds = sum(math.isfinite(r.accuracy) for r in rows)
    failed = [f"seed {seed}: {r.status}" for r, seed in zip(rows, seeds) if r.status != "ok"]
    mean.status = "; ".join(failed) if failed else "ok"
    return mean


def _mean_curve(curves: Sequence[Mapping[str, list]]) -> dict[str, list]:
    """Point-by-point mean (and sd of accuracy and CKA) at the eval steps every seed has."""
    steps = [s for s in curves[0]["step"] if all(s in c["step"] for c in curves)]
    out: dict[str, list] = {"step": steps}
    for name in ("accuracy", "kept", "loss"):
        points = [[c[name][c["step"].index(s)] for c in curves] for s in steps]
        out[name] = [_spread(p)[0] for p in points]
        if name != "loss":
            out[f"{name}_sd"] = [_spread(p)[1] for p in points]
    return out


def _merged_meta(runs: Sequence[CompareResult]) -> dict[str, Any]:
    """The settings every run shares, plus one entry per run (seed, command, date, machine) in "runs"."""
    first = runs[0].meta
    shared = {k: v for k, v in first.items() if k not in RUN_META and k != "methods"
              and all(r.meta.get(k) == v for r in runs)}
    shared["methods"] = _settings(runs[0])
    shared["runs"] = [{"seed": r.seed, **{k: r.meta[k] for k in RUN_META if k in r.meta}} for r in runs]
    created = sorted(str(r.meta["created"]) for r in runs if r.meta.get("created"))
    if created:
        shared["created"] = created[-1]  # when the last of its runs was made
    devices = list(dict.fromkeys(str(r.meta["device"]) for r in runs if r.meta.get("device")))
    if devices:
        shared["device"] = "; ".join(devices)
    return shared
