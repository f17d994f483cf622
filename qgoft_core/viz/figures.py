"""Figures for qGOFT Explorer: plain data in, ``plotly.graph_objects.Figure`` out.

Shared by the Gradio app and the self-contained HTML report, so this module
imports neither torch nor gradio: numpy and plotly only.  Every figure has an
explicit ``layout.height`` (Gradio's ``gr.Plot`` needs one), a title, axis
titles with units, a colour bar with numbers wherever colour encodes a value,
and the ``plotly_white`` template.  Only core trace types (scatter, heatmap,
bar) are used, because Gradio bundles an older plotly.js than plotly.py targets.

Input data (plain lists / numpy arrays / dicts, so everything is JSON-friendly)
-------------------------------------------------------------------------------
* step records (:class:`StepRecord`), one per optimizer step::

      {"step": int, "loss": float  # task loss
       "reg_loss": float, "lr": float, "sec_per_step": float,
       "examples_per_sec": float}

* eval records (:class:`EvalRecord`), one per held-out evaluation::

      {"step": int, "accuracy": float  # fraction 0..1, drawn as %
       "loss": float, "cka": float (optional), "retention": float (optional)}

* a snapshot (:class:`Snapshot`) of the adapter at one step::

      {"step": int,
       "layers": {full_module_name: {
           "angles": [float, ...],      # radians, one per rotation pair (d-1);
                                        # absent for non-rotation methods
           "norm_ratio": [float, ...],  # per neuron ||w'|| / ||w||
           "orth_dev": float,           # ||M^T M - I||_F / sqrt(d)
           "he_drift": float,           # relative hyperspherical-energy change
           "scales": [float, ...],      # optional learned scalers
       }}}

Layer names are long module paths ("backbone.encoder.layer.3.attention.self.query");
axes show :func:`short_layer_name` ("L3.query"), hover text shows the full name.
Angles arrive in radians; ``degrees=True`` only changes what is displayed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Literal, NotRequired, TypedDict

import numpy as np
import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

from qgoft_core.explore.registry import METHOD_SPECS

# --------------------------------------------------------------------------
# Data shapes
# --------------------------------------------------------------------------


class StepRecord(TypedDict):
    step: int
    loss: float
    reg_loss: float
    lr: float
    sec_per_step: float
    examples_per_sec: float


class EvalRecord(TypedDict):
    step: int
    accuracy: float
    loss: float
    cka: NotRequired[float]
    retention: NotRequired[float]


class LayerSnapshot(TypedDict):
    angles: NotRequired[list[float]]
    norm_ratio: list[float]
    orth_dev: float
    he_drift: float
    scales: NotRequired[list[float]]


class Snapshot(TypedDict):
    step: int
    layers: dict[str, LayerSnapshot]


class MethodCurve(TypedDict):
    kept: list[float]
    accuracy: list[float]
    step: list[int]


FloatSeq = Sequence[float] | np.ndarray

# --------------------------------------------------------------------------
# Shared visual vocabulary (feature 18: one documented colour language)
# --------------------------------------------------------------------------

TEMPLATE = "plotly_white"
SIGNED_COLORSCALE = "RdBu_r"  # signed angles: blue < 0 < red, white at exactly 0
MAGNITUDE_COLORSCALE = "Viridis"  # |angle| and other magnitudes: sequential
COUNT_COLORSCALE = "Blues"  # histogram counts: empty bins stay white
OUTLIER_COLOR = "#d62728"

LOG_FLOOR = 1e-16  # log axes cannot show 0; values below this are drawn here
ORTH_TOLERANCE = 1e-5  # orthogonality deviation regarded as "still orthogonal"
MAX_HEATMAP_COLUMNS = 512  # wider angle heatmaps are binned to stay fast
MAX_LEGEND_LAYERS = 6  # with many layers only these (and the highlight) get legend entries
MAX_OUTLIER_MARKERS = 500  # keeps the norm histogram payload small

# Column names of :func:`layer_overview_table`, in display order.
TABLE_COLUMNS = [
    "layer",
    "module",
    "pairs",
    "max |angle| (deg)",
    "mean |angle| (deg)",
    "orth dev",
    "HE drift",
    "norm ratio min",
    "norm ratio max",
]

# Sub-module path after the layer number -> short role name (BERT, DistilBERT).
_KNOWN_SUBMODULES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn.out",
    "intermediate.dense": "mlp.in",
    "output.dense": "mlp.out",
    "attention.q_lin": "query",
    "attention.k_lin": "key",
    "attention.v_lin": "value",
    "attention.out_lin": "attn.out",
    "ffn.lin1": "mlp.in",
    "ffn.lin2": "mlp.out",
}


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def short_layer_name(name: str) -> str:
    """Short axis label for a module path.

    BERT-style names map to their role: "...layer.3.attention.self.query" ->
    "L3.query", "...layer.3.attention.output.dense" -> "L3.attn.out",
    "...layer.3.intermediate.dense" -> "L3.mlp.in", "...layer.3.output.dense"
    -> "L3.mlp.out".  Anything else keeps the layer number (the last purely
    numeric path part) and the last two parts after it: "model.layers.5.
    self_attn.q_proj" -> "L5.self_attn.q_proj"; names without a number keep
    their last two parts: "backbone.pooler.dense" -> "pooler.dense".
    """
    parts = name.split(".")
    number_positions = [i for i, part in enumerate(parts) if part.isdigit()]
    if not number_positions:
        return ".".join(parts[-2:])
    i = number_positions[-1]
    layer_label = f"L{parts[i]}"
    tail = parts[i + 1 :]
    if not tail:
        return layer_label
    role = _KNOWN_SUBMODULES.get(".".join(tail), ".".join(tail[-2:]))
    return f"{layer_label}.{role}"


def method_color(method: str) -> str | None:
    """The fixed colour of an adapter method ("qGOFT", "LoRA", "full FT", ...), or None."""
    def plain(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    key = plain(method)
    for spec in METHOD_SPECS.values():
        if key in (spec.key, plain(spec.short), plain(spec.label)):
            return spec.color
    return None


def downsample_indices(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced indices into ``range(n)``.

    Always includes 0 and n-1: dropping the first steps hides the early
    dynamics learners most want to see (a known complaint about dashboards).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2 to keep first and last, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    positions = np.linspace(0, n - 1, max_points)  # exact endpoints 0 and n-1
    # floor(x + 0.5) rather than np.round: banker's rounding could merge neighbours
    return np.unique(np.floor(positions + 0.5).astype(np.int64))


def downsample(xs, max_points: int):
    """``xs`` at :func:`downsample_indices`; a numpy array stays an array, anything else becomes a list."""
    indices = downsample_indices(len(xs), max_points)
    if isinstance(xs, np.ndarray):
        return xs[indices]
    return [xs[i] for i in indices]


def pad_ragged(rows: Sequence[FloatSeq | None]) -> np.ndarray:
    """Stack rows of different lengths into a 2-D float array, padding with NaN.

    ``None`` or empty rows (layers without rotation angles) become all-NaN rows.
    """
    arrays = [np.asarray(row if row is not None else [], dtype=float).ravel() for row in rows]
    width = max((a.size for a in arrays), default=0)
    matrix = np.full((len(arrays), width), np.nan)
    for i, a in enumerate(arrays):
        matrix[i, : a.size] = a
    return matrix


def bin_columns_by_max_abs(matrix: np.ndarray, max_columns: int) -> tuple[np.ndarray, int]:
    """Merge neighbouring columns so at most ``max_columns`` remain.

    Each bin keeps its value of largest magnitude (sign preserved), so a single
    large rotation is never averaged away.  Returns (binned matrix, bin width).
    """
    n_rows, n_cols = matrix.shape
    if n_cols <= max_columns:
        return matrix, 1
    width = math.ceil(n_cols / max_columns)
    n_bins = math.ceil(n_cols / width)
    padded = np.full((n_rows, n_bins * width), np.nan)
    padded[:, :n_cols] = matrix
    blocks = padded.reshape(n_rows, n_bins, width)
    magnitude = np.where(np.isnan(blocks), -1.0, np.abs(blocks))  # NaN never wins
    pick = magnitude.argmax(axis=2)[..., np.newaxis]
    return np.take_along_axis(blocks, pick, axis=2)[..., 0], width


def normalise_rows_by_max_abs(matrix: np.ndarray) -> np.ndarray:
    """Divide each row by its own max |value| (NaN ignored), so rows lie in [-1, 1].

    All-zero or all-NaN rows are left as they are instead of becoming NaN.
    """
    magnitude = np.where(np.isnan(matrix), 0.0, np.abs(matrix))
    row_max = magnitude.max(axis=1, initial=0.0)
    row_max[row_max == 0] = 1.0
    return matrix / row_max[:, np.newaxis]


def angle_bin_edges(bins: int = 72, degrees: bool = True) -> np.ndarray:
    """Fixed histogram edges on [-180, 180] degrees (or [-pi, pi] radians).

    Fixed, not data-driven, so histograms from different steps and layers are
    directly comparable.
    """
    half_turn = 180.0 if degrees else math.pi
    return np.linspace(-half_turn, half_turn, bins + 1)


def wrap_angles(angles: np.ndarray, degrees: bool = True) -> np.ndarray:
    """Map angles into [-half turn, half turn): a rotation by a + 360 deg is the same rotation."""
    half_turn = 180.0 if degrees else math.pi
    return np.mod(angles + half_turn, 2 * half_turn) - half_turn


def clip_for_log(values: FloatSeq, floor: float = LOG_FLOOR) -> tuple[np.ndarray, bool]:
    """Values ready for a log axis: anything below ``floor`` (zeros too) is raised to it.

    Returns (clipped values, whether anything was clipped).  NaN stays NaN.
    """
    array = np.asarray(values, dtype=float)
    too_small = array < floor  # NaN compares False, so gaps stay gaps
    return np.where(too_small, floor, array), bool(too_small.any())


def norm_outlier_mask(
    values: FloatSeq, outlier_factor: float = 1.5, min_deviation: float = 1e-4
) -> np.ndarray:
    """Which norm ratios are outliers.

    A value is an outlier when it lies outside Tukey's fences
    [Q1 - f*IQR, Q3 + f*IQR] (f = ``outlier_factor``, quartiles of ``values``)
    AND it changes the norm by more than ``min_deviation`` (|ratio - 1|).  The
    second condition stops float noise (strict GOFT keeps every ratio at 1 up
    to ~1e-7) from being flagged.  Non-finite values are never outliers.
    """
    array = np.asarray(values, dtype=float)
    finite = np.isfinite(array)
    mask = np.zeros(array.shape, dtype=bool)
    if not finite.any():
        return mask
    q1, q3 = np.percentile(array[finite], [25, 75])
    spread = outlier_factor * (q3 - q1)
    with np.errstate(invalid="ignore"):
        outside_fences = (array < q1 - spread) | (array > q3 + spread)
        mask = outside_fences & (np.abs(array - 1.0) > min_deviation) & finite
    return mask


def layer_metric_series(snapshots: Sequence[Snapshot], key: str) -> tuple[list[int], dict[str, list[float]]]:
    """Pull one scalar per layer (e.g. "orth_dev", "he_drift") out of a list of snapshots.

    Returns (steps, {layer name: values}) ready for :func:`metric_over_steps`;
    a layer missing from a snapshot gets NaN there (drawn as a gap).
    """
    steps = [int(s["step"]) for s in snapshots]
    names: list[str] = []
    for snapshot in snapshots:
        names.extend(n for n in snapshot["layers"] if n not in names)
    series = {
        name: [_as_float(s["layers"].get(name, {}).get(key)) for s in snapshots] for name in names
    }
    return steps, series


def _as_float(value) -> float:
    return float("nan") if value is None else float(value)


def _json_float(value) -> float | None:
    """Python float for JSON tables; NaN / missing become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _column(records: Sequence[Mapping], key: str) -> np.ndarray:
    """One field of a list of records as floats; missing or None -> NaN."""
    return np.array([_as_float(r.get(key)) for r in records], dtype=float)


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        title=dict(text=title, x=0.01, xanchor="left"),
        margin=dict(l=70, r=30, t=80, b=60),
    )
    return fig


def _with_note(title: str, note: str) -> str:
    """A title with a smaller second line (how to read it, what was changed)."""
    return f"{title}<br><sup>{note}</sup>"


def _empty_figure(title: str, message: str, height: int = 300) -> go.Figure:
    """A figure that says why there is nothing to draw, instead of blank axes."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _style(fig, title, height)


def _require_unique(names: Sequence[str]) -> None:
    # Full names are heatmap categories; duplicates would silently merge rows.
    if len(set(names)) != len(names):
        raise ValueError("layer names must be unique")


# --------------------------------------------------------------------------
# Training curves (feature 5)
# --------------------------------------------------------------------------


def loss_curves(
    steps: Sequence[StepRecord], evals: Sequence[EvalRecord], max_points: int = 400
) -> go.Figure:
    """Task loss (+ held-out loss), regulariser loss and held-out accuracy vs step.

    Three stacked panels sharing the step axis.  The regulariser gets its own
    panel and y scale so it stays visible when it is 1000x smaller than the
    task loss.  Always 4 traces (empty when there is no data yet), so a live
    chart keeps the same structure from step 0.
    """
    steps = downsample(list(steps), max_points)
    evals = downsample(list(evals), max_points)
    train_x, eval_x = _column(steps, "step"), _column(evals, "step")

    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=("Task loss", "Regulariser loss (own scale)", "Held-out accuracy"),
    )
    fig.add_trace(
        go.Scatter(
            x=train_x, y=_column(steps, "loss"), mode="lines", name="train task loss",
            hovertemplate="step %{x}<br>task loss %{y:.4g}<extra></extra>",
        ),
        row=1, col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=eval_x, y=_column(evals, "loss"), mode="lines+markers", name="held-out loss",
            hovertemplate="step %{x}<br>held-out loss %{y:.4g}<extra></extra>",
        ),
        row=1, col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=train_x, y=_column(steps, "reg_loss"), mode="lines", name="regulariser loss",
            hovertemplate="step %{x}<br>regulariser loss %{y:.3e}<extra></extra>",
        ),
        row=2, col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=eval_x, y=100 * _column(evals, "accuracy"), mode="lines+markers",
            name="held-out accuracy",
            hovertemplate="step %{x}<br>accuracy %{y:.1f}%<extra></extra>",
        ),
        row=3, col=1,
    )
    fig.update_yaxes(title_text="task loss", row=1, col=1)
    # "e" ticks: plotly's default SI prefixes ("2µ") are easy to misread
    fig.update_yaxes(title_text="regulariser loss", exponentformat="e", row=2, col=1)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100], row=3, col=1)
    fig.update_xaxes(title_text="optimizer step", row=3, col=1)
    return _style(fig, "Training curves", 620)


# --------------------------------------------------------------------------
# Rotation angles (features 6, 7)
# --------------------------------------------------------------------------


def angle_heatmap(
    layer_names: Sequence[str],
    angles_per_layer: Sequence[FloatSeq | None],
    scale: Literal["global", "layer"] = "global",
    signed: bool = True,
    degrees: bool = True,
    max_columns: int = MAX_HEATMAP_COLUMNS,
) -> go.Figure:
    """Layer x pair heatmap of rotation angles (input in radians).

    Rows are layers (top to bottom in the given order), columns are pair
    indices; layers with fewer pairs are padded with NaN (drawn empty).
    ``scale="global"`` shares one colour range across layers; ``"layer"``
    divides each row by its own max |angle| so small layers become visible
    (the colour bar then reads "fraction of row max").  Signed angles use a
    diverging colour scale symmetric around 0, |angle| a sequential one.
    More than ``max_columns`` pairs are binned, keeping the largest |angle|
    per bin, and the title says so.
    """
    if scale not in ("global", "layer"):
        raise ValueError(f"scale must be 'global' or 'layer', got {scale!r}")
    if len(layer_names) != len(angles_per_layer):
        raise ValueError("need one angle list per layer name")
    _require_unique(layer_names)
    title = f"Rotation angles per layer ({'signed' if signed else '|angle|'}, {scale} colour scale)"

    angles = pad_ragged(angles_per_layer)
    if angles.size == 0 or np.isnan(angles).all():
        return _empty_figure(title, "No rotation angles: this method has no Givens rotations.")
    n_pairs = angles.shape[1]
    unit = "deg" if degrees else "rad"
    values = np.degrees(angles) if degrees else angles
    if not signed:
        values = np.abs(values)
    values, bin_width = bin_columns_by_max_abs(values, max_columns)
    pair_starts = np.arange(values.shape[1]) * bin_width

    quantity = "angle" if signed else "|angle|"
    if scale == "layer":
        z = normalise_rows_by_max_abs(values)
        colour_max = 1.0
        colorbar_title = "fraction of row max"
        hover_value = f"{quantity} %{{customdata:.3g}} {unit}<br>%{{z:.2f}} of row max"
    else:
        z = values
        largest = float(np.abs(np.nan_to_num(values)).max(initial=0.0))
        colour_max = largest if largest > 0 else 1.0  # all-zero at init: keep a readable bar
        colorbar_title = f"{quantity} ({unit})"
        hover_value = f"{quantity} %{{z:.3g}} {unit}"
    pair_label = "pair %{x}" if bin_width == 1 else f"pairs %{{x}}+ (max |angle| of {bin_width})"

    heatmap = go.Heatmap(
        z=z,
        x=pair_starts,
        y=list(layer_names),  # full names: unique categories and shown on hover
        customdata=values if scale == "layer" else None,
        zmin=-colour_max if signed else 0.0,
        zmax=colour_max,
        colorscale=SIGNED_COLORSCALE if signed else MAGNITUDE_COLORSCALE,
        colorbar=dict(title=dict(text=colorbar_title, side="right")),
        hoverongaps=False,
        hovertemplate=f"%{{y}}<br>{pair_label}<br>{hover_value}<extra></extra>",
    )
    fig = go.Figure(heatmap)
    if bin_width > 1:
        title = _with_note(
            title,
            f"{n_pairs} pairs shown in {values.shape[1]} columns: each column is the "
            f"largest |angle| of {bin_width} neighbouring pairs",
        )
    fig.update_xaxes(title_text="rotation pair index")
    fig.update_yaxes(
        title_text="layer",
        tickmode="array",
        tickvals=list(layer_names),
        ticktext=[short_layer_name(n) for n in layer_names],
        autorange="reversed",  # first layer on top, like reading a table
    )
    height = int(np.clip(160 + 16 * len(layer_names), 320, 1000))
    return _style(fig, title, height)


def angle_histograms_over_time(
    snap_steps: Sequence[int],
    angles_per_snapshot: Sequence[FloatSeq | None],
    bins: int = 72,
    degrees: bool = True,
    layer_name: str | None = None,
) -> go.Figure:
    """Step x angle-bin heatmap of counts for one layer (input in radians).

    Bins are fixed on [-180, 180] degrees (or [-pi, pi] with ``degrees=False``)
    so every step uses the same edges; the heatmap's x holds the ``bins + 1``
    edges.  Angles beyond a half turn are wrapped (the same rotation), and the
    title says when that happened.
    """
    title = "Rotation-angle histogram over time"
    if layer_name:
        title += f" ({short_layer_name(layer_name)})"
    if len(snap_steps) != len(angles_per_snapshot):
        raise ValueError("need one angle list per snapshot step")
    if len(snap_steps) == 0:
        return _empty_figure(title, "No snapshots yet.")

    edges = angle_bin_edges(bins, degrees)
    half_turn = edges[-1]
    counts = np.zeros((len(snap_steps), bins), dtype=np.int64)
    any_wrapped = False
    for row, angles in enumerate(angles_per_snapshot):
        values = np.asarray(angles if angles is not None else [], dtype=float).ravel()
        values = values[np.isfinite(values)]
        if degrees:
            values = np.degrees(values)
        any_wrapped |= bool((np.abs(values) > half_turn).any())
        counts[row] = np.histogram(wrap_angles(values, degrees), bins=edges)[0]

    unit = "deg" if degrees else "rad"
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=edges,  # bins + 1 values: plotly reads them as cell edges
            y=np.asarray(snap_steps),
            colorscale=COUNT_COLORSCALE,
            zmin=0,
            colorbar=dict(title=dict(text="pairs", side="right")),
            hovertemplate=f"step %{{y}}<br>angle ≈ %{{x:.3g}} {unit}<br>%{{z}} pairs<extra></extra>",
        )
    )
    if any_wrapped:
        title = _with_note(title, f"angles beyond ±{half_turn:g} {unit} wrapped (same rotation)")
    if layer_name:
        fig.update_layout(meta={"layer": layer_name})  # full name kept for the app
    fig.update_xaxes(title_text=f"rotation angle ({unit}, fixed bins)", range=[-half_turn, half_turn])
    fig.update_yaxes(title_text="optimizer step")
    return _style(fig, title, 420)


# --------------------------------------------------------------------------
# Norm change (feature 9)
# --------------------------------------------------------------------------


def _flatten_per_neuron(
    per_layer: Mapping[str, FloatSeq] | FloatSeq,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(finite values, layer name of each, neuron index within its layer) from a list or a dict."""
    groups = per_layer if isinstance(per_layer, Mapping) else {"": per_layer}
    values, layers, neurons = [], [], []
    for name, group in groups.items():
        array = np.asarray(group, dtype=float).ravel()
        finite = np.flatnonzero(np.isfinite(array))
        values.append(array[finite])
        layers.append(np.full(finite.size, name, dtype=object))
        neurons.append(finite)
    if not values:
        return np.array([]), np.array([], dtype=object), np.array([], dtype=np.int64)
    return np.concatenate(values), np.concatenate(layers), np.concatenate(neurons)


def _histogram_range(values: np.ndarray) -> tuple[float, float]:
    """Data range widened to at least 1e-6: strict GOFT ratios differ from 1
    by a few ulps, and numpy refuses more bins than a range that narrow holds."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-6:
        mid = (lo + hi) / 2
        lo, hi = mid - 5e-7, mid + 5e-7
    return lo, hi


def norm_change_histogram(
    norm_ratios: Mapping[str, FloatSeq] | FloatSeq,
    outlier_factor: float = 1.5,
    min_deviation: float = 1e-4,
    bins: int = 60,
    value_label: str = "norm ratio ‖w′ᵢ‖ / ‖wᵢ‖",
) -> go.Figure:
    """Distribution of per-neuron norm ratios, with 1.0 (norm unchanged) marked.

    Accepts one list or {layer name: list} (pooled into one histogram).
    Outliers are defined by :func:`norm_outlier_mask` (outside Tukey's fences
    with factor ``outlier_factor`` and more than ``min_deviation`` away from
    1); their count is in the title and the most extreme ones are marked with
    their layer and neuron in the hover.  Two traces: counts (bars) and
    outliers (markers, possibly empty).  Also usable for learned scalers via
    ``value_label``.
    """
    values, layers, neurons = _flatten_per_neuron(norm_ratios)
    base_title = "Per-neuron norm change"
    if values.size == 0:
        return _empty_figure(base_title, "No norm ratios recorded.")

    outliers = norm_outlier_mask(values, outlier_factor, min_deviation)
    n_outliers = int(outliers.sum())
    counts, edges = np.histogram(values, bins=bins, range=_histogram_range(values))
    centres = (edges[:-1] + edges[1:]) / 2

    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=centres, y=counts, width=np.diff(edges), name="neurons",
            marker_color="#4c78a8",
            hovertemplate="ratio %{x:.5g}<br>%{y} neurons<extra></extra>",
        )
    )
    # Mark only the most extreme outliers: thousands of markers would bloat every update.
    outlier_idx = np.flatnonzero(outliers)
    outlier_idx = outlier_idx[np.argsort(-np.abs(values[outlier_idx] - 1.0))][:MAX_OUTLIER_MARKERS]
    hover_names = [f"{name}<br>" if name else "" for name in layers[outlier_idx]]
    fig.add_trace(
        go.Scatter(
            x=values[outlier_idx],
            y=np.zeros(outlier_idx.size),
            customdata=np.column_stack([hover_names, neurons[outlier_idx]]) if outlier_idx.size else None,
            mode="markers",
            marker=dict(symbol="x", size=9, color=OUTLIER_COLOR),
            name=f"outliers ({n_outliers})",
            hovertemplate="%{customdata[0]}neuron %{customdata[1]}<br>ratio %{x:.5g}<extra>outlier</extra>",
        )
    )
    fig.add_vline(x=1.0, line=dict(color="black", dash="dash", width=1))
    fig.update_xaxes(title_text=f"{value_label} (1 = unchanged)")
    fig.update_yaxes(title_text="neurons (count)")
    title = _with_note(
        f"{base_title}: {n_outliers} outlier{'s' if n_outliers != 1 else ''} of {values.size} neurons",
        f"outlier = outside quartiles ± {outlier_factor:g}×IQR and |ratio − 1| > {min_deviation:g}; "
        "dashed line = 1.0",
    )
    return _style(fig, title, 400)


# --------------------------------------------------------------------------
# Per-layer scalars over steps (features 10, 11)
# --------------------------------------------------------------------------


def metric_over_steps(
    snap_steps: Sequence[int],
    per_layer_values: Mapping[str, FloatSeq],
    title: str,
    y_title: str,
    log_y: bool = False,
    tolerance: float | None = None,
    highlight: str | None = None,
    max_points: int = 400,
) -> go.Figure:
    """One line per layer of a scalar recorded at each snapshot.

    ``highlight`` (a full layer name) is drawn thick and on top, the others
    faded.  With many layers only the first few and the highlight get legend
    entries; hover always names the full layer.  ``log_y`` raises values
    below 1e-16 (exact zeros too) to 1e-16 and says so in the title; hover
    shows the unclipped value.  ``tolerance`` adds a dashed reference line
    (a trace, so it stays correct on log axes and appears in the legend).
    """
    steps = np.asarray(snap_steps)
    keep = downsample_indices(len(steps), max_points)
    steps = steps[keep]
    names = list(per_layer_values)
    if highlight not in per_layer_values:
        highlight = None  # an unknown name must not fade every line
    many_layers = len(names) > MAX_LEGEND_LAYERS
    # the highlighted layer last, so it is drawn on top of the faded ones
    draw_order = [n for n in names if n != highlight] + [n for n in names if n == highlight]

    fig = go.Figure()
    any_clipped = False
    for name in draw_order:
        raw = np.asarray(per_layer_values[name], dtype=float)
        if raw.size != len(snap_steps):
            raise ValueError(f"{name}: {raw.size} values for {len(snap_steps)} steps")
        raw = raw[keep]
        shown = raw
        if log_y:
            shown, clipped = clip_for_log(raw)
            any_clipped |= clipped
        short = short_layer_name(name)
        is_highlight = name == highlight
        faded = highlight is not None and not is_highlight
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=shown,
                customdata=raw,
                mode="lines+markers" if steps.size <= 50 else "lines",
                name=short,
                legendgroup=short,
                showlegend=is_highlight or not many_layers or names.index(name) < MAX_LEGEND_LAYERS,
                opacity=0.25 if faded else 1.0,
                line=dict(width=3.5 if is_highlight else 1.5),
                marker=dict(size=4),
                hovertemplate=f"{name}<br>step %{{x}}<br>{y_title} %{{customdata:.3g}}<extra>{short}</extra>",
            )
        )
    if tolerance is not None and steps.size:
        fig.add_trace(
            go.Scatter(
                x=[steps[0], steps[-1]],
                y=[tolerance, tolerance],
                mode="lines",
                name=f"tolerance {tolerance:g}",
                line=dict(color="black", dash="dash", width=1.5),
                hovertemplate=f"tolerance {tolerance:g}<extra></extra>",
            )
        )
    notes = []
    if any_clipped:
        notes.append(f"values below {LOG_FLOOR:g} (including exact zeros) drawn at {LOG_FLOOR:g}")
    if many_layers:
        notes.append(f"{len(names)} layers; legend lists the first {MAX_LEGEND_LAYERS}, hover names any line")
    if notes:
        title = _with_note(title, "; ".join(notes))
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear", exponentformat="e")
    return _style(fig, title, 420)


def orthogonality_over_steps(
    snap_steps: Sequence[int],
    per_layer_orth_dev: Mapping[str, FloatSeq],
    highlight: str | None = None,
    tolerance: float = ORTH_TOLERANCE,
) -> go.Figure:
    """Orthogonality deviation ‖MᵀM − I‖_F/√d per layer vs step (log y, tolerance line at 1e-5)."""
    return metric_over_steps(
        snap_steps,
        per_layer_orth_dev,
        title="Orthogonality deviation per layer",
        y_title="‖MᵀM − I‖_F / √d",
        log_y=True,
        tolerance=tolerance,
        highlight=highlight,
    )


def energy_drift_over_steps(
    snap_steps: Sequence[int],
    per_layer_drift: Mapping[str, FloatSeq],
    highlight: str | None = None,
) -> go.Figure:
    """|relative hyperspherical-energy change| per layer vs step on a log axis.

    Strict GOFT keeps it at float error (often exactly 0, drawn at 1e-16).
    """
    magnitudes = {name: np.abs(np.asarray(v, dtype=float)) for name, v in per_layer_drift.items()}
    return metric_over_steps(
        snap_steps,
        magnitudes,
        title="Hyperspherical-energy drift per layer",
        y_title="|ΔHE| / HE₀",
        log_y=True,
        highlight=highlight,
    )


# --------------------------------------------------------------------------
# Overview table (feature 23)
# --------------------------------------------------------------------------


def layer_overview_table(snapshot: Snapshot) -> list[dict]:
    """One row per layer with the keys in :data:`TABLE_COLUMNS` (JSON-friendly; missing -> None).

    "layer" is the short name, "module" the full path (for select events).
    """
    rows = []
    for name, layer in snapshot["layers"].items():
        angles = np.asarray(layer.get("angles") or [], dtype=float)
        abs_degrees = np.degrees(np.abs(angles[np.isfinite(angles)]))
        ratios = np.asarray(layer.get("norm_ratio") or [], dtype=float)
        ratios = ratios[np.isfinite(ratios)]
        rows.append(
            {
                "layer": short_layer_name(name),
                "module": name,
                "pairs": int(angles.size),
                "max |angle| (deg)": _json_float(abs_degrees.max()) if abs_degrees.size else None,
                "mean |angle| (deg)": _json_float(abs_degrees.mean()) if abs_degrees.size else None,
                "orth dev": _json_float(layer.get("orth_dev")),
                "HE drift": _json_float(layer.get("he_drift")),
                "norm ratio min": _json_float(ratios.min()) if ratios.size else None,
                "norm ratio max": _json_float(ratios.max()) if ratios.size else None,
            }
        )
    return rows


def rows_to_html_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """A plain HTML table (escaped; floats to 4 significant digits, None as "–") for the report."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])

    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.4g}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------
# Inspector and method comparison (features 12, 13)
# --------------------------------------------------------------------------


def spectrum_figure(sv_base: FloatSeq, sv_tuned: FloatSeq, layer_name: str) -> go.Figure:
    """Singular values of W and W′ (descending, log y).

    An orthogonal update without scaling leaves them unchanged; the title
    reports the largest relative change so that is checkable at a glance.
    """
    base = np.sort(np.asarray(sv_base, dtype=float).ravel())[::-1]
    tuned = np.sort(np.asarray(sv_tuned, dtype=float).ravel())[::-1]
    title = f"Singular values of W and W′: {short_layer_name(layer_name)}"
    if base.size == 0 and tuned.size == 0:
        return _empty_figure(title, "No singular values given.")

    fig = go.Figure()
    any_clipped = False
    for label, values, dash in (("W (pretrained)", base, "solid"), ("W′ (fine-tuned)", tuned, "dash")):
        shown, clipped = clip_for_log(values)
        any_clipped |= clipped
        fig.add_trace(
            go.Scatter(
                x=np.arange(values.size),
                y=shown,
                customdata=values,
                mode="lines",
                name=label,
                line=dict(dash=dash, width=2),
                hovertemplate=f"{layer_name}<br>index %{{x}}<br>σ = %{{customdata:.4g}}<extra>{label}</extra>",
            )
        )
    n = min(base.size, tuned.size)
    notes = []
    if n:
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.abs(tuned[:n] - base[:n]) / np.where(base[:n] > 0, base[:n], np.nan)
        if np.isfinite(relative).any():
            notes.append(f"largest relative change {np.nanmax(relative):.2e}")
    if any_clipped:
        notes.append(f"values below {LOG_FLOOR:g} drawn at {LOG_FLOOR:g}")
    if notes:
        title = _with_note(title, "; ".join(notes))
    fig.update_xaxes(title_text="singular value index (largest first)")
    fig.update_yaxes(title_text="singular value σ (log scale)", type="log", exponentformat="e")
    return _style(fig, title, 380)


def method_compare_bars(
    rows: Sequence[Mapping], metric: str, title: str, y_title: str | None = None
) -> go.Figure:
    """One bar per method (``row["method"]``) for ``row[metric]``; missing values leave a gap.

    ``y_title`` defaults to the metric name; pass one with its unit.
    """
    methods = [str(r.get("method", "?")) for r in rows]
    values = [_json_float(r.get(metric)) for r in rows]
    fig = go.Figure(
        go.Bar(
            x=methods,
            y=values,
            marker_color=[method_color(m) or "#9467bd" for m in methods],
            text=[f"{v:.4g}" if v is not None else "n/a" for v in values],
            textposition="outside",
            hovertemplate=f"%{{x}}<br>{metric} %{{y:.4g}}<extra></extra>",
            name=metric,
        )
    )
    fig.update_xaxes(title_text="method")
    fig.update_yaxes(title_text=y_title or metric)
    return _style(fig, title, 380)


def accuracy_vs_kept(
    curves: Mapping[str, MethodCurve],
    kept_label: str,
    title: str = "New-task accuracy vs what the model kept",
) -> go.Figure:
    """One line per method through (kept, accuracy) points; hover shows the step.

    ``accuracy`` is a fraction 0..1 drawn as %; ``kept`` is drawn as given and
    ``kept_label`` is its axis title (include the unit, e.g. "retention (%)").
    """
    fig = go.Figure()
    for method, curve in curves.items():
        kept = np.asarray(curve.get("kept", []), dtype=float)
        accuracy = 100 * np.asarray(curve.get("accuracy", []), dtype=float)
        steps = np.asarray(curve.get("step", [np.nan] * kept.size))
        fig.add_trace(
            go.Scatter(
                x=kept,
                y=accuracy,
                customdata=steps,
                mode="lines+markers",
                name=method,
                line=dict(color=method_color(method)),
                hovertemplate=(
                    f"{method}<br>step %{{customdata}}<br>{kept_label} %{{x:.4g}}"
                    "<br>accuracy %{y:.1f}%<extra></extra>"
                ),
            )
        )
    fig.update_xaxes(title_text=kept_label)
    fig.update_yaxes(title_text="held-out accuracy (%)")
    return _style(fig, title, 420)


# --------------------------------------------------------------------------
# HTML output
# --------------------------------------------------------------------------


def figure_to_html_div(fig: go.Figure) -> str:
    """The figure as an HTML ``<div>`` + script, without plotly.js (the page supplies it once)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})


_REPORT_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
section { margin-bottom: 3em; }
p.explain { color: #444; line-height: 1.45; }
table.data { border-collapse: collapse; font-size: 0.85em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
table.data th { background: #f4f4f4; }
"""


def _paragraphs(text: str) -> str:
    """Plain explanatory text -> escaped HTML paragraphs (blank lines separate paragraphs)."""
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    return "\n".join(f'<p class="explain">{html.escape(b)}</p>' for b in blocks)


def html_report(title: str, sections: Sequence[tuple[str, str, go.Figure | str]]) -> str:
    """A self-contained HTML page: plotly.js inlined once, so it opens offline.

    Each section is (heading, explanatory plain text, figure or an HTML string
    such as :func:`rows_to_html_table`).  Heading and text are escaped; an
    HTML string is inserted as is.
    """
    parts = []
    for heading, text, content in sections:
        body = figure_to_html_div(content) if isinstance(content, go.Figure) else content
        parts.append(f"<section>\n<h2>{html.escape(heading)}</h2>\n{_paragraphs(text)}\n{body}\n</section>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{_REPORT_CSS}</style>\n"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n'
        "</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )
