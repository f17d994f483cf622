"""Figures and the HTML page of an adapter inspection (`qgoft_core.explore.analysis.AdapterReport`).

Plain functions of a report: they read its attributes (method_label,
signed_angles, angles, norm_ratios, scales, spectra, spectrum_layer(),
summary_rows(), shown_columns(), flags, notes, layers, source) and import
nothing from the engine; numbers the engine owns (the saturation threshold,
the threshold sentence, the column notes) come in as arguments.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import plotly.graph_objects as go

from qgoft_core.viz import figures as F

DEFAULT_SATURATION = 0.95  # fraction of pi; callers pass the engine's SATURATION_FRACTION
FIGURE_KEYS = ("angle_heatmap", "angle_histogram", "norm_changes", "spectrum")


def _styled(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(template=F.TEMPLATE, height=height, title=dict(text=title, x=0.01, xanchor="left"),
                      margin=dict(l=70, r=30, t=80, b=60))
    return fig


def message_figure(title: str, message: str) -> go.Figure:
    """An empty figure that says why it is empty."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _styled(fig, title, 300)


def angle_heatmap(report: Any, scale: str = "global") -> go.Figure:
    """Rotation angles, one row per adapted layer."""
    if not report.angles:
        return message_figure("Rotation angles per layer", f"{report.method_label} has no rotation angles.")
    names = list(report.angles)
    return F.angle_heatmap(names, [report.angles[n] for n in names], scale=scale, signed=report.signed_angles)


def angle_histogram(report: Any, bins: int = 72, saturation_fraction: float = DEFAULT_SATURATION) -> go.Figure:
    """All layers' angles pooled, in fixed bins on [-180, 180] degrees, with lines near a half-turn."""
    title = "Distribution of rotation angles, all layers"
    if not report.angles:
        return message_figure(title, f"{report.method_label} has no rotation angles.")
    values = np.degrees(np.concatenate([np.asarray(a, dtype=float).ravel() for a in report.angles.values()]))
    values = F.wrap_angles(values[np.isfinite(values)])
    edges = F.angle_bin_edges(bins)
    counts, _ = np.histogram(values, bins=edges)
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                           marker_color="#4c78a8", name="angles",
                           hovertemplate="angle ≈ %{x:.3g} deg<br>%{y} angles<extra></extra>"))
    limit = saturation_fraction * 180
    for x in (-limit, limit):
        fig.add_vline(x=x, line=dict(color=F.OUTLIER_COLOR, dash="dot", width=1))
    fig.update_xaxes(title_text="rotation angle (deg, fixed bins)", range=[-180, 180])
    fig.update_yaxes(title_text="angles (count)")
    note = f"{values.size} angles in {len(report.angles)} layers; dotted lines: ±{limit:g} deg, near a half-turn (saturation only for the tanh form)"
    return _styled(fig, f"{title}<br><sup>{note}</sup>", 380)


def norm_change_figure(report: Any) -> go.Figure:
    """Per-neuron ||w'_i|| / ||w_i|| with the base model, else the learned scales."""
    if report.norm_ratios:
        return F.norm_change_histogram(report.norm_ratios)
    if report.scales:
        return F.norm_change_histogram(report.scales, value_label="learned scale (1 = unchanged)")
    return message_figure("Per-neuron norm change",
                          "Norm changes need the base model: inspect again with a base model.")


def spectrum_figure(report: Any, layer: Optional[str] = None) -> go.Figure:
    """Singular values of W and W' of `layer` (default: the one whose spectrum changed most)."""
    layer = layer or report.spectrum_layer()
    if layer is None or layer not in report.spectra:
        return message_figure("Singular values of W and W′",
                              "The spectrum needs the base model: inspect again with a base model.")
    return F.spectrum_figure(*report.spectra[layer], layer_name=layer)


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
    flags = ("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in report.flags) + "</ul>"
             if report.flags else "<p>No health flags.</p>")
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
        ("Angle distribution", "All layers pooled, in fixed bins on [-180, 180] degrees.",
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

    return report_html(report, title, thresholds=threshold_text(), column_notes=COLUMN_NOTES,
                       saturation_fraction=SATURATION_FRACTION)
