"""Charts of the adapter's layers at one snapshot (or one layer over time).

Rotation-angle heatmap and histograms, per-neuron norm change, the per-layer
summary table and the singular-value spectrum. Angles arrive in radians (the
history keeps float32 arrays; lists work too); ``degrees=True`` only changes
what is displayed.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import plotly.graph_objects as go

from qgoft_core.explore.history import Snapshot, finite_or_none
from qgoft_core.viz.style import (COUNT_COLORSCALE, LOG_FLOOR, MAGNITUDE_COLORSCALE, MAX_HEATMAP_COLUMNS,
                                  MAX_OUTLIER_MARKERS, OUTLIER_COLOR, SIGNED_COLORSCALE, FloatSeq,
                                  apply_style, clip_for_log, empty_figure, require_unique, short_layer_name,
                                  values_array, with_note)

# Column names of :func:`layer_overview_table`, in display order: the short
# name first, the numbers next, the long module path last (at 1440 px it used
# to push the numbers off-screen from the second column).
TABLE_COLUMNS = [
    "layer",
    "pairs",
    "max |angle| (deg)",
    "mean |angle| (deg)",
    "orth dev",
    "HE drift",
    "norm ratio min",
    "norm ratio max",
    "module",
]

# What each column means, said where the table is shown (a line of notes under it).
TABLE_COLUMN_HELP: dict[str, str] = {
    "layer": "short name: L<block>.<role> (query, key, value, attn.out, mlp.in, mlp.out)",
    "pairs": "rotation angles of the layer (Givens pairs or qGOFT blocks; 0 for methods without rotations)",
    "max |angle| (deg)": "largest rotation angle, in degrees",
    "mean |angle| (deg)": "average rotation angle, in degrees",
    "orth dev": "‖MᵀM − I‖_F / √d of the input-side operator M: 0 = exactly orthogonal, "
                "below 1e-5 rounding",
    "HE drift": "relative change of the hyperspherical energy, (HE − HE₀) / HE₀: 0 = every angle between "
                "neurons kept, below ~5e-9 float32 rounding",
    "norm ratio min": "smallest per-neuron length ratio ‖w′ᵢ‖ / ‖wᵢ‖ (1 = unchanged)",
    "norm ratio max": "largest per-neuron length ratio ‖w′ᵢ‖ / ‖wᵢ‖ (1 = unchanged)",
    "module": "the full module path in the model (click a row to select that layer)",
}
# The number columns fit "-2.486e-11" and "-0.000005401" (the page writes 5.4e-6 out) on one line.
TABLE_COLUMN_WIDTHS = ["110px", "60px", "95px", "95px", "125px", "125px", "105px", "105px", "300px"]


def table_notes_markdown() -> str:
    """One compact paragraph explaining every column of :func:`layer_overview_table`."""
    # Escaped: "L<block>.<role>" is read as HTML tags by Markdown and hid every column after it.
    return "**Columns.** " + " · ".join(f"**{html.escape(name)}**: {html.escape(text)}"
                                         for name, text in TABLE_COLUMN_HELP.items())



def pad_ragged(rows: Sequence[FloatSeq | None]) -> np.ndarray:
    """Stack rows of different lengths into a 2-D float array, padding with NaN.

    ``None`` or empty rows (layers without rotation angles) become all-NaN rows.
    """
    arrays = [values_array(row) for row in rows]
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
    """Edges on the full [-180, 180] degrees (or [-pi, pi] radians).

    The histogram over time now follows the data (:func:`angle_half_range`);
    these full-turn edges remain for callers that compare very different runs.
    """
    half_turn = 180.0 if degrees else math.pi
    return np.linspace(-half_turn, half_turn, bins + 1)


HISTOGRAM_BINS = 48  # the angle histogram over time: this many bins over the data's own range
HISTOGRAM_MARGIN = 1.15  # its half-range is max|angle| over the run, widened by 15%
MIN_ANGLE_RANGE = 1e-3  # degrees: the narrowest half-range (all angles zero still draws)


def angle_half_range(angles_per_snapshot: Sequence[FloatSeq | None], degrees: bool = True) -> float:
    """Symmetric half-range that fits every angle of every snapshot: max|θ| (wrapped) + 15%, at most a half turn.

    Data-following, as in Inspect: a 60-step run's angles stay within a few
    degrees, and fixed bins over ±180° would draw them as one bar.  Taken over
    the whole run, so the histogram's spike widens step by step on fixed edges.
    """
    half_turn = 180.0 if degrees else math.pi
    largest = 0.0
    for angles in angles_per_snapshot:
        values = values_array(angles)
        values = values[np.isfinite(values)]
        if values.size:
            shown = np.degrees(values) if degrees else values
            largest = max(largest, float(np.abs(wrap_angles(shown, degrees)).max()))
    smallest = MIN_ANGLE_RANGE if degrees else math.radians(MIN_ANGLE_RANGE)
    return float(min(half_turn, max(smallest, HISTOGRAM_MARGIN * largest)))


def wrap_angles(angles: np.ndarray, degrees: bool = True) -> np.ndarray:
    """Map angles into [-half turn, half turn): a rotation by a + 360 deg is the same rotation."""
    half_turn = 180.0 if degrees else math.pi
    return np.mod(angles + half_turn, 2 * half_turn) - half_turn


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
    require_unique(layer_names)
    title = f"Rotation angles per layer ({'signed' if signed else '|angle|'}, {scale} colour scale)"

    angles = pad_ragged(angles_per_layer)
    if angles.size == 0 or np.isnan(angles).all():
        return empty_figure(title, "No rotation angles: this method has no Givens rotations.")
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
        title = with_note(
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
    return apply_style(fig, title, height)


def angle_histograms_over_time(
    snap_steps: Sequence[int],
    angles_per_snapshot: Sequence[FloatSeq | None],
    bins: int = HISTOGRAM_BINS,
    degrees: bool = True,
    layer_name: str | None = None,
    half_range: float | None = None,
) -> go.Figure:
    """Step x angle-bin heatmap of counts for one layer (input in radians).

    Bins follow the data: ``bins`` equal bins on ±``half_range`` (in the
    display unit; by default :func:`angle_half_range` of the snapshots given,
    pass the whole run's to keep the edges while scrubbing).  Every step uses
    the same edges, so the spike at 0 visibly widens; the subtitle says the
    range.  The heatmap's x holds the ``bins + 1`` edges.  Angles beyond a
    half turn are wrapped (the same rotation), and the subtitle says so.
    """
    title = "Rotation-angle histogram over time"
    if layer_name:
        title += f" ({short_layer_name(layer_name)})"
    if len(snap_steps) != len(angles_per_snapshot):
        raise ValueError("need one angle list per snapshot step")
    if len(snap_steps) == 0:
        return empty_figure(title, "No snapshots yet.")

    half_turn = 180.0 if degrees else math.pi
    limit = float(half_range) if half_range else angle_half_range(angles_per_snapshot, degrees)
    limit = min(limit, half_turn)
    edges = np.linspace(-limit, limit, bins + 1)
    counts = np.zeros((len(snap_steps), bins), dtype=np.int64)
    any_wrapped = False
    for row, angles in enumerate(angles_per_snapshot):
        values = values_array(angles)
        values = values[np.isfinite(values)]
        if degrees:
            values = np.degrees(values)
        any_wrapped |= bool((np.abs(values) > half_turn).any())
        # clip: a value on the last edge (or beyond a range given by the caller) lands in the end bins
        counts[row] = np.histogram(np.clip(wrap_angles(values, degrees), -limit, limit), bins=edges)[0]

    unit = "deg" if degrees else "rad"
    # Step 0 (every angle exactly 0) is one bin holding every pair; on a colour scale up to that
    # count the later, spread-out rows would be nearly white. Cap the scale at the busiest bin of
    # the spread rows, so the spike saturates and the widening stays visible.
    spread = (counts > 0).sum(axis=1) > 1
    zmax = int(counts[spread].max()) if spread.any() else None
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=edges,  # bins + 1 values: plotly reads them as cell edges
            y=np.asarray(snap_steps),
            colorscale=COUNT_COLORSCALE,
            zmin=0,
            zmax=zmax,
            colorbar=dict(title=dict(text="pairs", side="right")),
            hovertemplate=f"step %{{y}}<br>angle ≈ %{{x:.3g}} {unit}<br>%{{z}} pairs<extra></extra>",
        )
    )
    sign = "°" if degrees else " rad"
    note = (f"range ±{limit:.3g}{sign}, from the largest |angle| of the run (+15%); "
            f"{bins} bins of {2 * limit / bins:.2g}{sign}")
    if any_wrapped:
        note += f"; angles beyond ±{half_turn:g}{sign} wrapped (same rotation)"
    if zmax is not None and int(counts.max()) > zmax:
        note += (f"; colours capped at {zmax} pairs (the spike holds up to {int(counts.max())}) "
                 "so the spread stays visible")
    title = with_note(title, note)
    meta = {"angle_range": [-limit, limit]}
    if layer_name:
        meta["layer"] = layer_name  # full name kept for the app
    fig.update_layout(meta=meta)
    fig.update_xaxes(title_text=f"rotation angle ({unit})", range=[-limit, limit])
    fig.update_yaxes(title_text="optimizer step")
    return apply_style(fig, title, 420)


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
    counted: str = "neurons",
    base_title: str = "Per-neuron norm change",
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
    if values.size == 0:
        return empty_figure(base_title, "No norm ratios recorded.")

    outliers = norm_outlier_mask(values, outlier_factor, min_deviation)
    n_outliers = int(outliers.sum())
    counts, edges = np.histogram(values, bins=bins, range=_histogram_range(values))
    centres = (edges[:-1] + edges[1:]) / 2

    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=centres, y=counts, width=np.diff(edges), name=counted,
            marker_color="#4c78a8",
            hovertemplate=f"%{{x:.5g}}<br>%{{y}} {counted}<extra></extra>",
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
            hovertemplate=f"%{{customdata[0]}}{counted.rstrip('s')} %{{customdata[1]}}<br>%{{x:.5g}}"
                          "<extra>outlier</extra>",
        )
    )
    fig.add_vline(x=1.0, line=dict(color="black", dash="dash", width=1))
    fig.update_xaxes(title_text=f"{value_label} (1 = unchanged)")
    fig.update_yaxes(title_text=f"{counted} (count)")
    title = with_note(
        f"{base_title}: {n_outliers} outlier{'s' if n_outliers != 1 else ''} of {values.size} {counted}",
        f"outlier = outside quartiles ± {outlier_factor:g}×IQR and |ratio − 1| > {min_deviation:g}; "
        "dashed line = 1.0",
    )
    return apply_style(fig, title, 400)


def layer_overview_table(snapshot: Snapshot) -> list[dict]:
    """One row per layer with the keys in :data:`TABLE_COLUMNS`, in that order (JSON-friendly; missing -> None).

    "layer" is the short name (first), "module" the full path (last; for select
    events and for reading the whole name).  :data:`TABLE_COLUMN_HELP` says
    what each column means.
    """
    rows = []
    for name, layer in snapshot["layers"].items():
        angles = values_array(layer.get("angles"))
        abs_degrees = np.degrees(np.abs(angles[np.isfinite(angles)]))
        ratios = values_array(layer.get("norm_ratio"))
        ratios = ratios[np.isfinite(ratios)]
        rows.append(
            {
                "layer": short_layer_name(name),
                "pairs": int(angles.size),
                "max |angle| (deg)": finite_or_none(abs_degrees.max()) if abs_degrees.size else None,
                "mean |angle| (deg)": finite_or_none(abs_degrees.mean()) if abs_degrees.size else None,
                "orth dev": finite_or_none(layer.get("orth_dev")),
                "HE drift": finite_or_none(layer.get("he_drift")),
                "norm ratio min": finite_or_none(ratios.min()) if ratios.size else None,
                "norm ratio max": finite_or_none(ratios.max()) if ratios.size else None,
                "module": name,
            }
        )
    return rows


def spectrum_figure(sv_base: FloatSeq, sv_tuned: FloatSeq, layer_name: str,
                    display_name: str | None = None, note: str | None = None) -> go.Figure:
    """Singular values of W and W′ (descending, log y).

    An orthogonal update without scaling leaves them unchanged; the title
    reports the largest relative change so that is checkable at a glance.
    ``display_name``: the layer's name in the title (default its short name);
    hover shows the full ``layer_name``. ``note``: one more remark for the subtitle.
    """
    base = np.sort(np.asarray(sv_base, dtype=float).ravel())[::-1]
    tuned = np.sort(np.asarray(sv_tuned, dtype=float).ravel())[::-1]
    title = f"Singular values of W and W′: {display_name or short_layer_name(layer_name)}"
    if base.size == 0 and tuned.size == 0:
        return empty_figure(title, "No singular values given.")

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
    if note:
        notes.append(note)
    if notes:
        title = with_note(title, "; ".join(notes))
    fig.update_xaxes(title_text="singular value index (largest first)")
    fig.update_yaxes(title_text="singular value σ (log scale)", type="log", exponentformat="e")
    return apply_style(fig, title, 380)
