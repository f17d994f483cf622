"""The figures' shared vocabulary: template, colour scales, limits, layer names, small helpers.

One documented colour language for every chart (feature 18): signed angles
diverge blue < 0 < red around white, magnitudes are sequential, counts stay
white when empty; each method keeps its colour from the method registry.
Every figure goes through :func:`apply_style` (template, the page's font,
explicit height, a title wrapped to fit and the top margin it needs; a title
changed later goes through :func:`set_title`) and says why it is empty with
:func:`empty_figure`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from qgoft_core.explore.analysis.health import ORTH_TOLERANCE  # ‖MᵀM−I‖_F/√d: one tolerance, Train and Inspect
from qgoft_core.explore.history import float_or_nan
from qgoft_core.explore.registry import METHOD_SPECS

FloatSeq = Sequence[float] | np.ndarray

TEMPLATE = "plotly_white"
SIGNED_COLORSCALE = "RdBu_r"  # signed angles: blue < 0 < red, white at exactly 0
MAGNITUDE_COLORSCALE = "Viridis"  # |angle| and other magnitudes: sequential
COUNT_COLORSCALE = "Blues"  # histogram counts: empty bins stay white
OUTLIER_COLOR = "#d62728"

LOG_FLOOR = 1e-16  # log axes cannot show 0; values below this are drawn here
ROUNDING_FILL = "rgba(120, 120, 120, 0.18)"  # the grey band "rounding: no change in exact arithmetic"

# -- the rounding level of the energy drift ------------------------------------------
# How the drift is computed (qgoft_core.metrics): the tuned weight is merged in
# float32, both energies use a float32 Gram (SNAPSHOT_GRAM_DTYPE) of at most
# HE_MAX_NEURONS unit-normalised neurons, then sum 1/||w_i - w_j|| in float64.
# An exact rotation keeps every cos_ij, so its drift is rounding only: each
# cos_ij carries an independent error of about eps32 (normalisation + a blocked
# dot product), each term 1/sqrt(2 - 2 cos_ij) moves by about that over 2, and
# the N(N-1) terms' errors average out: |dHE|/HE ~ eps32 / N.  Measured: random
# exact rotations of 384- and 1536-wide weights give 0.3-1.6 eps32/N; the shipped
# strict-GOFT lessons (36 MiniLM layers, N = 256) reach at most 4.4e-10 = 0.9 eps32/N,
# the 60-step qGOFT lesson's smallest non-zero layer drift is 3.4e-8 = 73 eps32/N.
# The band reaches ENERGY_ROUNDING_FACTOR times the estimate: everything inside it
# is "no change up to rounding".
ENERGY_GRAM_EPS = float(np.finfo(np.float32).eps)  # metrics.SNAPSHOT_GRAM_DTYPE (a test keeps them equal)
ENERGY_NEURONS = 256  # metrics.HE_MAX_NEURONS: the energy samples at most this many neurons per layer
ENERGY_ROUNDING_FACTOR = 10.0  # margin over the estimate eps / N


def energy_rounding_level(neurons: int | None = None) -> float:
    """Top of the band where an energy drift is float32 rounding (10 eps32 / N).

    ``neurons``: the fewest neurons of the layers drawn (capped at the
    sampled :data:`ENERGY_NEURONS`); fewer neurons average less, so the band is higher.
    """
    count = ENERGY_NEURONS if neurons is None else max(2, min(int(neurons), ENERGY_NEURONS))
    return ENERGY_ROUNDING_FACTOR * ENERGY_GRAM_EPS / count


ENERGY_ROUNDING = energy_rounding_level()  # the band of a layer with at least 256 neurons (~4.7e-9)
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


# -- titles that fit: wrapped for the narrowest chart, a top margin for every line ------------------
# Plotly does not wrap text: a long title or note runs past the chart's right edge and is cut.  So
# titles are wrapped here, in characters, for the narrowest chart the app shows (half of a 1024 px
# page, ~460 px; a caller drawing a smaller chart passes ``width``), and the top margin is computed
# from the number of lines.  Charts use the page's font (Gradio's Source Sans Pro, ~0.41 em per
# character in a typical title); CHAR_EM leaves room for digits and capitals.  An exported HTML
# report falls back to the system's font (up to ~0.50 em, DejaVu Sans), but draws its charts far
# wider than the app's narrowest.
FONT_FAMILY = '"Source Sans Pro", ui-sans-serif, system-ui, sans-serif'  # Gradio's page font
FONT_SIZE = 13  # ticks, legends, axis titles (px)
TITLE_FONT_SIZE = 16  # the title's first line (px)
NOTE_SCALE = 0.7  # plotly draws <sup> at 70 % of the title's size
CAP_SHIFT = 0.7  # plotly's offset (em) from a top-anchored title's position to its first baseline
DESCENT = 0.3  # below a baseline (em)
LINE_SPACING = 1.3  # plotly's line height for multi-line text (every line, <sup> ones too), in font sizes
CHAR_EM = 0.46  # an average character width with room to spare, in em (Source Sans Pro: ~0.41)
MIN_FIGURE_WIDTH = 460  # px: the narrowest chart (half of a 1024 px page)
TITLE_X = 8  # px: the title's left edge inside the chart (and the room kept at its right)
TITLE_PAD_TOP = 6  # px above the first line
TITLE_GAP = 18  # px between the last line and the plot area
MIN_TOP_MARGIN = 50
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_NOTE = re.compile(r"^\s*<sup>(.*)</sup>\s*$", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&#?\w+;")


def visible_length(text: str) -> int:
    """Characters a reader sees: tags take no room, an entity (&amp;) is one character."""
    return len(_ENTITY.sub("x", _TAG.sub("", text)))


def wrap_text(text: str, max_chars: int) -> list[str]:
    """Greedy word wrap to ``max_chars`` visible characters (never inside a tag; a longer word stays whole).

    A clause ending in ";" closes its line once the line is at least 60 % full, so lines tend
    to end between clauses rather than inside one.
    """
    words = [w for w in re.split(r" (?![^<]*>)", text.strip()) if w]
    lines: list[str] = []
    line = ""
    for word in words:
        candidate = f"{line} {word}" if line else word
        if line and visible_length(candidate) > max_chars:
            lines.append(line)
            line = word
        else:
            line = candidate
        if visible_length(line) >= 0.6 * max_chars and _TAG.sub("", line).endswith(";"):
            lines.append(line)
            line = ""
    if line:
        lines.append(line)
    return lines or [""]


def title_chars(width: int | None = None, note: bool = False) -> int:
    """How many characters of a title line (or of a <sup> note line) fit a ``width`` px chart."""
    usable = (width or MIN_FIGURE_WIDTH) - 2 * TITLE_X
    size = TITLE_FONT_SIZE * (NOTE_SCALE if note else 1.0)
    return max(12, int(usable / (CHAR_EM * size)))


def wrap_title(title: str, width: int | None = None) -> str:
    """``title`` with line breaks so that every line fits a ``width`` px chart.

    Existing ``<br>`` breaks stay; a line that is a whole ``<sup>...</sup>`` note is wrapped
    at the note's smaller size and each of its lines stays a note.
    """
    lines = []
    for segment in _BREAK.split(title or ""):
        note = _NOTE.match(segment)
        if note:
            lines += [f"<sup>{line}</sup>" for line in wrap_text(note.group(1), title_chars(width, note=True))]
        else:
            lines += wrap_text(segment, title_chars(width))
    return "<br>".join(lines)


def title_lines(title: str | None) -> int:
    """The number of lines plotly draws for ``title`` (0 for none)."""
    return len(_BREAK.split(title)) if title else 0


def _first_baseline(lines: int) -> float:
    """Where plotly.js 3 draws a title's first baseline (px from the top), placed as :func:`set_title` does.

    A top-anchored title's position is its cap height ("top": dy = 0.7 em), but the lines of a
    multi-line title carry their own y, which drops that shift: their first baseline sits at the
    position itself.  set_title places every title 0.7 em lower than TITLE_PAD_TOP, so a
    multi-line title's first line starts at TITLE_PAD_TOP, and a title whose text is replaced
    later by more lines is never cut at the top.
    """
    position = TITLE_PAD_TOP + CAP_SHIFT * TITLE_FONT_SIZE
    return position + (CAP_SHIFT * TITLE_FONT_SIZE if lines == 1 else 0.0)


def top_margin(title: str | None) -> int:
    """The top margin (px) that holds every line of ``title`` above the plot area, and a gap."""
    lines = title_lines(title)
    if not lines:
        return MIN_TOP_MARGIN
    bottom = _first_baseline(lines) + (lines - 1) * LINE_SPACING * TITLE_FONT_SIZE + DESCENT * TITLE_FONT_SIZE
    return max(MIN_TOP_MARGIN, math.ceil(bottom + TITLE_GAP))


def plain_title(title: str | go.Figure | None) -> str:
    """A title as a reader reads it: tags dropped, wrapped lines joined (for tests and text searches)."""
    if isinstance(title, go.Figure):
        title = title.layout.title.text
    return " ".join(_TAG.sub(" ", title or "").split())


def set_title(fig: go.Figure, title: str, width: int | None = None) -> go.Figure:
    """Set (or replace) a figure's title, wrapped to fit a ``width`` px chart, and the top margin that holds it.

    Use this, not ``update_layout(title_text=...)``, whenever a title changes after
    :func:`apply_style`: an unwrapped note runs past the chart's edge.
    """
    text = wrap_title(title, width)
    pad = TITLE_PAD_TOP + CAP_SHIFT * TITLE_FONT_SIZE  # see _first_baseline
    fig.update_layout(
        title=dict(text=text, x=TITLE_X / (width or MIN_FIGURE_WIDTH), xanchor="left", xref="container",
                   y=1, yanchor="top", yref="container", pad=dict(t=pad), font=dict(size=TITLE_FONT_SIZE)),
        margin=dict(t=top_margin(text)),
    )
    return fig


def share_top_margin(figures: Sequence[go.Figure]) -> None:
    """Give figures shown side by side the largest of their top margins (in place).

    Their titles may wrap to different numbers of lines; with one top margin their plot
    areas still start at the same height, so paired axes line up.
    """
    tops = [fig.layout.margin.t for fig in figures if fig is not None and fig.layout.margin.t is not None]
    if tops:
        for fig in figures:
            if fig is not None:
                fig.update_layout(margin=dict(t=max(tops)))


def apply_style(fig: go.Figure, title: str, height: int, width: int | None = None) -> go.Figure:
    """Template, the page's font, explicit height (Gradio's gr.Plot needs one), a fitted title, margins.

    ``width``: the narrowest the chart is shown at (px; default :data:`MIN_FIGURE_WIDTH`), for
    wrapping the title (:func:`set_title`).
    """
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        font=dict(family=FONT_FAMILY, size=FONT_SIZE),
        margin=dict(l=70, r=30, b=60),
    )
    return set_title(fig, title, width)


def with_note(title: str, note: str) -> str:
    """A title with a smaller second line (how to read it, what was changed); :func:`set_title` wraps it."""
    return f"{title}<br><sup>{note}</sup>"


def empty_figure(title: str, message: str, height: int = 300) -> go.Figure:
    """A figure that says why there is nothing to draw, instead of blank axes."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return apply_style(fig, title, height)


def rounding_band(level: float, x0, x1, label: str | None = None, xaxis: str | None = None) -> go.Scatter:
    """A grey band from the log floor up to ``level`` (a filled trace named for rounding).

    A trace, not a layout shape, so it is placed in data units on a log axis
    and is listed in the legend.  ``xaxis`` ("x2") puts it on an overlaid axis
    (a bar chart's categories have no numeric span).
    """
    label = label or f"float32 rounding (≤ {level:.1g}): unchanged"
    return go.Scatter(
        x=[x0, x1, x1, x0, x0],
        y=[LOG_FLOOR, LOG_FLOOR, level, level, LOG_FLOOR],
        mode="lines",
        fill="toself",
        fillcolor=ROUNDING_FILL,
        line=dict(width=0),
        name=label,
        hoverinfo="skip",
        xaxis=xaxis,
        meta={"rounding_level": level},
    )


def log_range(values, floor: float = LOG_FLOOR, pad: float = 0.3) -> list[float] | None:
    """[log10 low, log10 high] covering the positive finite values (floored), padded by ``pad`` decades."""
    array = np.asarray(values, dtype=float).ravel()
    array = np.where(array < floor, floor, array)
    array = array[np.isfinite(array)]
    if not array.size:
        return None
    low, high = float(np.log10(array.min())), float(np.log10(array.max()))
    return [low - pad, high + pad]


def share_y_range(figures: Sequence[go.Figure], row: int | None = None, col: int | None = None) -> None:
    """Give figures shown side by side one y range (in place): the union of what each draws.

    Works on linear and log axes (a log axis range is in decades).  ``row``
    and ``col`` pick one panel of subplot figures.  Traces named for rounding
    or tolerance count too, so their line stays in view.
    """
    lows, highs, log = [], [], False
    selector = dict(row=row, col=col) if row is not None else {}
    for fig in figures:
        axes = []
        fig.for_each_yaxis(lambda axis: axes.append(axis), **selector)
        if not axes:
            continue
        axis = axes[0]
        log = log or axis.type == "log"
        fixed = axis.range
        if fixed is not None:
            lows.append(float(fixed[0]))
            highs.append(float(fixed[1]))
            continue
        ys = []
        ref = axis.plotly_name.replace("axis", "")  # "yaxis2" -> "y2"
        for trace in fig.data:
            if (getattr(trace, "yaxis", None) or "y") != ref or trace.y is None:
                continue
            ys.extend(float(v) for v in np.asarray(trace.y, dtype=float).ravel() if np.isfinite(v))
        if not ys:
            continue
        if axis.type == "log":
            span = log_range(ys)
            lows.append(span[0])
            highs.append(span[1])
        else:
            low, high = min(ys), max(ys)
            pad = 0.05 * (high - low) or 0.5 * abs(high) or 1.0
            lows.append(min(low, 0.0) if low >= 0 else low - pad)
            highs.append(high + pad)
    if not lows:
        return
    shared = [min(lows), max(highs)]
    for fig in figures:
        fig.update_yaxes(range=shared, autorange=False, **selector)


def require_unique(names: Sequence[str]) -> None:
    # Full names are heatmap categories; duplicates would silently merge rows.
    if len(set(names)) != len(names):
        raise ValueError("layer names must be unique")
