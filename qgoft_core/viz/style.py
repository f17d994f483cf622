"""The figures' shared vocabulary: template, colour scales, limits, layer names, small helpers.

One documented colour language for every chart (feature 18): signed angles
diverge blue < 0 < red around white, magnitudes are sequential, counts stay
white when empty; each method keeps its colour from the method registry.
Every figure goes through :func:`apply_style` (template, explicit height,
title) and says why it is empty with :func:`empty_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from qgoft_core.explore.history import float_or_nan
from qgoft_core.explore.registry import METHOD_SPECS

FloatSeq = Sequence[float] | np.ndarray

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
    def folded(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    key = folded(method)
    for spec in METHOD_SPECS.values():
        if key in (spec.key, folded(spec.short), folded(spec.label)):
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


def clip_for_log(values: FloatSeq, floor: float = LOG_FLOOR) -> tuple[np.ndarray, bool]:
    """Values ready for a log axis: anything below ``floor`` (zeros too) is raised to it.

    Returns (clipped values, whether anything was clipped).  NaN stays NaN.
    """
    array = np.asarray(values, dtype=float)
    too_small = array < floor  # NaN compares False, so gaps stay gaps
    return np.where(too_small, floor, array), bool(too_small.any())

def values_array(values) -> np.ndarray:
    """A flat float64 array of a record's array field (list, float32 array, None -> empty)."""
    return np.asarray(values if values is not None else [], dtype=float).ravel()


def column(records: Sequence[Mapping], key: str) -> np.ndarray:
    """One field of a list of records as floats; missing or None -> NaN."""
    return np.array([float_or_nan(r.get(key)) for r in records], dtype=float)


def apply_style(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Template, explicit height (Gradio's gr.Plot needs one), title and margins."""
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        title=dict(text=title, x=0.01, xanchor="left"),
        margin=dict(l=70, r=30, t=80, b=60),
    )
    return fig


def with_note(title: str, note: str) -> str:
    """A title with a smaller second line (how to read it, what was changed)."""
    return f"{title}<br><sup>{note}</sup>"


def empty_figure(title: str, message: str, height: int = 300) -> go.Figure:
    """A figure that says why there is nothing to draw, instead of blank axes."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return apply_style(fig, title, height)


def require_unique(names: Sequence[str]) -> None:
    # Full names are heatmap categories; duplicates would silently merge rows.
    if len(set(names)) != len(names):
        raise ValueError("layer names must be unique")
