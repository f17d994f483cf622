"""Figures and the HTML page of an adapter inspection (`qgoft_core.explore.analysis.AdapterReport`).

Plain functions of a report: they read its attributes (method_label,
signed_angles, angles, norm_ratios, scales, spectra, spectrum_layer(),
summary_rows(), shown_columns(), flags, notes, layers, source) and import
nothing from the engine; numbers the engine owns (the saturation threshold,
the threshold sentence, the column notes) come in as arguments.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import plotly.graph_objects as go

from qgoft_core.viz import figures as F
from qgoft_core.viz.style import apply_style, empty_figure, share_top_margin, share_y_range

DEFAULT_SATURATION = 0.95  # fraction of pi; callers pass the engine's SATURATION_FRACTION
FIGURE_KEYS = ("angle_heatmap", "angle_histogram", "norm_changes", "spectrum")
HISTOGRAM_BINS = 48  # the angle histogram: this many bins over the data's own range
HISTOGRAM_MARGIN = 1.15  # the range is +-max|angle| widened by 15%
MIN_ANGLE_RANGE = 1e-3  # degrees: the narrowest range (all angles zero still draws)
HEIGHTS = {"angle_histogram": 380, "norm_changes": 400, "spectrum": 380}


def message_figure(title: str, message: str, height: int = 300) -> go.Figure:
    """An empty figure that says why it is empty (the views' shared one)."""
    return empty_figure(title, message, height)


def layer_name(report: Any, module: str) -> str:
    """The layer's one displayed name (the report's, as in its table and flags)."""
    namer = getattr(report, "layer_name", None)
    return namer(module) if callable(namer) else F.short_layer_name(module)


def heatmap_height(report: Any) -> int:
    """The angle heatmap's height for this report (grows with its number of layers)."""
    return int(np.clip(160 + 16 * len(report.angles), 320, 1000)) if report.angles else 300


def angle_heatmap(report: Any, scale: str = "global", height: Optional[int] = None) -> go.Figure:
    """Rotation angles, one row per adapted layer, named as in the table (full path on hover)."""
    if not report.angles:
        return message_figure("Rotation angles per layer", f"{report.method_label} has no rotation angles.",
                              height or 300)
    names = list(report.angles)
    fig = F.angle_heatmap(names, [report.angles[n] for n in names], scale=scale, signed=report.signed_angles)
    fig.update_yaxes(ticktext=[layer_name(report, n) for n in names])
    if height:
        fig.update_layout(height=height)
    return fig


def _wrapped_degrees(report: Any) -> np.ndarray:
    values = np.degrees(np.concatenate([np.asarray(a, dtype=float).ravel() for a in report.angles.values()]))
    return F.wrap_angles(values[np.isfinite(values)])


def angle_limit(reports: Any) -> Optional[float]:
    """The histogram's half-range in degrees that fits every report's angles: max|θ| (wrapped) + 15%, at most 180.

    One report, or several shown side by side (they then share the x axis).
    """
    reports = [reports] if hasattr(reports, "angles") else [r for r in reports if r is not None]
    largest = [float(np.abs(v).max()) for r in reports if r.angles for v in [_wrapped_degrees(r)] if v.size]
    if not largest:
        return None
    return float(min(180.0, max(MIN_ANGLE_RANGE, HISTOGRAM_MARGIN * max(largest))))


def angle_histogram(report: Any, bins: int = HISTOGRAM_BINS, saturation_fraction: float = DEFAULT_SATURATION,
                    limit: Optional[float] = None, shared: bool = False) -> go.Figure:
    """All layers' angles pooled, in bins that follow the data: ±max|θ| (+15%), or ±`limit` degrees.

    A short run's angles stay within a few degrees: fixed bins over ±180° would
    draw one bar, so the range comes from the data (the subtitle says it) and
    widens as the angles do. Lines mark a half-turn when the range reaches it.
    """
    title = "Distribution of rotation angles, all layers"
    if not report.angles:
        return message_figure(title, f"{report.method_label} has no rotation angles.",
                              HEIGHTS["angle_histogram"])
    values = _wrapped_degrees(report)
    limit = float(limit) if limit else (angle_limit(report) or 180.0)
    lower = -limit if report.signed_angles else 0.0
    edges = np.linspace(lower, limit, bins + 1)
    counts, _ = np.histogram(np.clip(values, lower, limit), bins=edges)
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                           marker_color="#4c78a8", name="angles",
                           hovertemplate="angle ≈ %{x:.3g} deg<br>%{y} angles<extra></extra>"))
    half_turn = saturation_fraction * 180
    lines = [x for x in (-half_turn, half_turn) if lower <= x <= limit]
    for x in lines:
        fig.add_vline(x=x, line=dict(color=F.OUTLIER_COLOR, dash="dot", width=1))
    fig.update_xaxes(title_text="rotation angle (deg)", range=[lower, limit])
    fig.update_yaxes(title_text="angles (count)", rangemode="tozero")
    span = f"±{limit:.3g}°" if report.signed_angles else f"0 to {limit:.3g}°"
    source = "shared by both columns" if shared else "from the data"
    note = (f"{values.size} angles, {len(report.angles)} layers; range {span} {source} "
            f"({bins} bins of {(limit - lower) / bins:.3g}°)")
    flag = f"±{half_turn:g}°, where an angle is flagged as at a half-turn (±180°)"
    note += f"; dotted: {flag}" if lines else f"; the flag line ({flag}) is off this range"
    fig.update_layout(meta={"angle_range": [lower, limit]})
    return apply_style(fig, f"{title}<br><sup>{note}</sup>", HEIGHTS["angle_histogram"])


MIN_BAR_SHARE = 0.01  # narrowest bar drawn on shared axes, as a share of the axis
WIDENED_NOTE = "bar drawn 1% of the axis wide to be seen; hover for its values"


def _as_shares(figures: Sequence[go.Figure]) -> None:
    """Counts of histograms with different totals (36 layers' neurons beside 12 layers') as % of each one's
    total: on one count axis the smaller one was flattened to nothing."""
    totals = []
    for fig in figures:
        bars = [t for t in fig.data if t.type == "bar" and t.y is not None and len(t.y)]
        totals.append(float(np.nansum(np.asarray(bars[0].y, dtype=float))) if bars else 0.0)
    drawn = [t for t in totals if t > 0]
    if len(drawn) < 2 or max(drawn) <= 1.5 * min(drawn):
        return
    for fig, total in zip(figures, totals):
        if total <= 0:
            continue
        for trace in fig.data:
            if trace.type == "bar" and trace.y is not None:
                trace.customdata = np.asarray(trace.y)
                trace.y = 100.0 * np.asarray(trace.y, dtype=float) / total
                trace.hovertemplate = "%{x:.5g}<br>%{y:.2f}% (%{customdata})<extra></extra>"
        fig.update_yaxes(title_text=f"share of {int(total):,} (%)")


def share_axes(*figures: go.Figure) -> None:
    """Give bar charts shown side by side the same x and y ranges (in place; figures without bars untouched).

    Histograms of different totals share their y axis as a percentage of each total; legends go, so
    that both plot areas are as wide (counts and outliers are in each title)."""
    _as_shares(figures)
    spans, tops = [], []
    for fig in figures:
        bars = [t for t in fig.data if t.type == "bar" and t.x is not None and len(t.x)]
        if not bars:
            continue
        x, width = np.asarray(bars[0].x, dtype=float), np.asarray(bars[0].width, dtype=float)
        fixed = fig.layout.xaxis.range
        lo, hi = tuple(fixed) if fixed else (float((x - width / 2).min()), float((x + width / 2).max()))
        for trace in fig.data:  # markers beside the bars (outliers) stay in view too
            if trace.type != "bar" and trace.x is not None and len(trace.x):
                xs = np.asarray(trace.x, dtype=float)
                xs = xs[np.isfinite(xs)]
                if xs.size:
                    lo, hi = min(lo, float(xs.min())), max(hi, float(xs.max()))
        spans.append((lo, hi, bool(fixed)))
        tops.append(max(float(np.max(t.y)) for t in bars))
    if len(spans) < 2:
        return
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    # A margin unless both ranges were chosen on purpose: a bar at the very edge (every norm exactly
    # 1.0, strict GOFT's) would otherwise sit on the axis line, under its reference line, unseen.
    pad = 0.0 if all(s[2] for s in spans) else 0.03 * (hi - lo) or 0.05
    x_range = [lo - pad, hi + pad]
    y_range = [0.0, 1.05 * max(tops) if max(tops) > 0 else 1.0]
    # A bin far narrower than the shared axis (strict GOFT: every ratio 1 within 1e-6) would be a
    # sub-pixel sliver beside the other column's spread: draw it MIN_BAR_SHARE of the axis wide.
    min_width = MIN_BAR_SHARE * (x_range[1] - x_range[0])
    for fig in figures:
        if any(t.type == "bar" for t in fig.data):
            fig.update_xaxes(range=x_range)
            fig.update_yaxes(range=y_range, rangemode=None)
            fig.update_layout(showlegend=False)
        widened = False
        for trace in fig.data:
            if trace.type == "bar" and trace.width is not None:
                width = np.asarray(trace.width, dtype=float)
                if width.size and float(width.max()) < min_width:
                    trace.width = np.full_like(width, min_width)
                    widened = True
        if widened:  # said inside the plot: a legend entry this long squeezed the plot area to a third
            fig.add_annotation(text=WIDENED_NOTE, xref="paper", yref="paper", x=0.99, y=0.98, xanchor="right",
                               yanchor="top", showarrow=False, font=dict(size=11, color="#555"),
                               bgcolor="rgba(255,255,255,0.8)")


def norm_change_figure(report: Any) -> go.Figure:
    """Per-neuron ||w'_i|| / ||w_i|| with the base model, else the learned scales."""
    if report.norm_ratios:
        return F.norm_change_histogram(report.norm_ratios)
    if report.scales:
        # Without the base there are no neurons to measure: these are the adapter's learned scales
        # (one per input index of each block), counted as scales, not as neurons.
        return F.norm_change_histogram(report.scales, value_label="learned scale", counted="scales",
                                       base_title="Learned scales")
    return message_figure("Per-neuron norm change",
                          "Norm changes need the base model: inspect again with a base model.",
                          HEIGHTS["norm_changes"])


def spectrum_figure(report: Any, layer: Optional[str] = None, note: Optional[str] = None) -> go.Figure:
    """Singular values of W and W' of `layer` (default: the one whose spectrum changed most)."""
    layer = layer or report.spectrum_layer()
    if layer is None or layer not in report.spectra:
        return message_figure("Singular values of W and W′",
                              "The spectrum needs the base model: inspect again with a base model.",
                              HEIGHTS["spectrum"])
    # titled with the report's name of the layer; hover: the full module path
    fig = F.spectrum_figure(*report.spectra[layer], layer_name=layer,
                            display_name=layer_name(report, layer), note=note)
    fig.update_layout(meta={"layer": layer})
    return fig


def corresponding_layer(report: Any, module: Optional[str]) -> Optional[str]:
    """The layer of `report` (with a spectrum) that is `module` of another adapter on the same model.

    The same module path, or one path the tail of the other: an engine run saves its layers
    under "backbone." ("backbone.encoder.layer.0...") and a stock PEFT adapter of the plain
    encoder without it ("encoder.layer.0...").
    """
    if not module or not report.spectra:
        return None
    if module in report.spectra:
        return module
    return next((name for name in report.spectra
                 if name.endswith("." + module) or module.endswith("." + name)), None)


def paired_spectrum_layers(reports: list, keep: Optional[tuple[int, str]] = None) -> list[Optional[str]]:
    """The layers the two columns' spectra open on: the same (corresponding) layer when both have it.

    keep: (column, layer) a column already shows (the other column was just loaded): the new
    column follows it when it has that layer. Otherwise both open on the layer they share
    whose spectrum changed most in either adapter (the first in model order on a tie). A
    column alone, or two adapters without a layer in common, open on their own layer that
    changed most (`spectrum_layer`).
    """
    own = [r.spectrum_layer() if r is not None and r.spectra else None for r in reports]
    if len(reports) != 2 or any(r is None or not r.spectra for r in reports):
        return own
    if keep is not None:
        side, layer = keep
        other = corresponding_layer(reports[1 - side], layer) if layer in reports[side].spectra else None
        if other is not None:
            return [layer, other] if side == 0 else [other, layer]
    a, b = reports
    pairs = [(name, corresponding_layer(b, name)) for name in a.spectra]
    pairs = [(x, y) for x, y in pairs if y is not None]
    if not pairs:
        return own
    best = max(pairs, key=lambda p: max(a.spectrum_change.get(p[0], 0.0), b.spectrum_change.get(p[1], 0.0)))
    return list(best)


SHARED_SPECTRUM_NOTE = "y axis shared with the other column"


def spectrum_figures(reports: list, layers: list[Optional[str]]) -> list[Optional[go.Figure]]:
    """Each column's spectrum (None where a column has no report); two drawn spectra share one y range
    (read against each other without comparing tick labels) and one top margin (plot areas level)."""
    both = sum(r is not None and bool(r.spectra) for r in reports) == 2
    figures = [None if r is None else spectrum_figure(r, layer or None, note=SHARED_SPECTRUM_NOTE if both else None)
               for r, layer in zip(reports, layers)]
    drawn = [f for f in figures if f is not None]
    if both:
        share_y_range(drawn)
    if len(drawn) == 2:
        share_top_margin(drawn)
    return figures


def report_figures(report: Any, saturation_fraction: float = DEFAULT_SATURATION) -> dict[str, go.Figure]:
    """angle_heatmap, angle_histogram, norm_changes, spectrum (each says why when empty)."""
    return {
        "angle_heatmap": angle_heatmap(report),
        "angle_histogram": angle_histogram(report, saturation_fraction=saturation_fraction),
        "norm_changes": norm_change_figure(report),
        "spectrum": spectrum_figure(report),
    }


def report_html(report: Any, title: Optional[str] = None, *, thresholds: str = "",
                column_notes: Optional[Mapping[str, str]] = None,
                saturation_fraction: float = DEFAULT_SATURATION) -> str:
    """A self-contained HTML page: summary, flags, heatmap, histogram, norms, spectrum, table."""
    title = title or f"Adapter inspection: {report.source or report.method_label}"
    checks = html.escape(getattr(report, "checks_text", ""))
    flags = ("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report.flags) + "</ul>"
             if report.flags else "<p>No health flag raised.</p>") + (f'<p class="explain">{checks}</p>' if checks else "")
    notes = "".join(f'<p class="explain">{html.escape(n)}</p>' for n in report.notes)
    layer = report.spectrum_layer()
    columns = report.shown_columns()
    definitions = "\n\n".join(f"{k}: {v}" for k, v in (column_notes or {}).items() if k in columns)
    sections = [
        ("Summary", "What the adapter is and what it was compared with.",
         F.rows_to_html_table(report.summary_rows(), ["item", "value"]) + notes),
        ("Health flags", "Thresholds: " + thresholds + ".", flags),
        ("Rotation angles per layer", "One row per adapted layer, one column per rotation.",
         angle_heatmap(report)),
        ("Angle distribution", "All layers pooled, in bins over the angles' own range (the subtitle says it).",
         angle_histogram(report, saturation_fraction=saturation_fraction)),
        ("Norm changes", "Per-neuron ||w'_i|| / ||w_i|| with the base model, else the learned scales.",
         norm_change_figure(report)),
        ("Spectrum" + (f" of {layer}" if layer else ""),
         "Singular values of the pretrained and the tuned weight of the layer whose spectrum changed "
         "most in size (Frobenius norm). A rotation without scaling leaves them unchanged.",
         spectrum_figure(report, layer)),
        ("Per-layer table", definitions, F.rows_to_html_table(report.layers, columns)),
    ]
    return F.html_report(title, sections)


def inspection_page(report: Any, title: Optional[str] = None) -> str:
    """The inspection report as one self-contained HTML page, with the engine's thresholds and notes."""
    from qgoft_core.explore.analysis.health import SATURATION_FRACTION, threshold_text
    from qgoft_core.explore.analysis.report import COLUMN_NOTES

    return report_html(report, title, thresholds=threshold_text(report.method), column_notes=COLUMN_NOTES,
                       saturation_fraction=SATURATION_FRACTION)
