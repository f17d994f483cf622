"""Figures for qGOFT Explorer: plain data in, ``plotly.graph_objects.Figure`` out.

Shared by the Gradio app and the self-contained HTML report, so no figure
module imports torch or gradio: numpy and plotly only. Every figure has an
explicit ``layout.height`` (Gradio's ``gr.Plot`` needs one), a title, axis
titles with units, a colour bar with numbers wherever colour encodes a value,
and the ``plotly_white`` template. Only core trace types (scatter, heatmap,
bar) are used, because Gradio bundles an older plotly.js than plotly.py targets.

This module gathers them under one name (``from qgoft_core.viz import figures as F``);
each lives in the module of its one idea:

* :mod:`qgoft_core.viz.style`: vocabulary (template, colour scales, limits,
  the float32 rounding band of the energy drift), short layer names, method
  colours, downsampling, log-axis clipping, one y range for paired charts;
* :mod:`qgoft_core.viz.training_charts`: loss/accuracy curves and per-layer
  scalars (orthogonality deviation, energy drift) over steps;
* :mod:`qgoft_core.viz.layer_charts`: angle heatmap and histograms, norm
  change, the per-layer table, the singular-value spectrum;
* :mod:`qgoft_core.viz.compare_charts`: one bar per method, accuracy vs kept;
* :mod:`qgoft_core.viz.html_pages`: figures and tables as HTML, the report page.

Input data is what a run records: the record types of
:mod:`qgoft_core.explore.history` (StepRecord, EvalRecord, Snapshot with
LayerSnapshot; angles are float32 radians, lists work as well). Undefined
numbers are NaN and drawn as gaps. Layer names are long module paths
("backbone.encoder.layer.3.attention.self.query"); axes show
:func:`short_layer_name` ("L3.query"), hover text shows the full name.
"""

from __future__ import annotations

from qgoft_core.explore.history import EvalRecord, LayerSnapshot, Snapshot, StepRecord
from qgoft_core.viz.compare_charts import MethodCurve, accuracy_vs_kept, method_compare_bars
from qgoft_core.viz.html_pages import figure_to_html_div, html_report, rows_to_html_table
from qgoft_core.viz.layer_charts import (HISTOGRAM_BINS, TABLE_COLUMN_HELP, TABLE_COLUMN_WIDTHS, TABLE_COLUMNS,
                                         angle_bin_edges, angle_half_range, angle_heatmap,
                                         angle_histograms_over_time, bin_columns_by_max_abs, layer_overview_table,
                                         norm_change_histogram, norm_outlier_mask, normalise_rows_by_max_abs,
                                         pad_ragged, spectrum_figure, table_notes_markdown, wrap_angles)
from qgoft_core.viz.style import (COUNT_COLORSCALE, ENERGY_ROUNDING, LOG_FLOOR, MAGNITUDE_COLORSCALE,
                                  MAX_HEATMAP_COLUMNS, MAX_LEGEND_LAYERS, MAX_OUTLIER_MARKERS, ORTH_TOLERANCE,
                                  OUTLIER_COLOR, SIGNED_COLORSCALE, TEMPLATE, FloatSeq, clip_for_log, downsample,
                                  downsample_indices, energy_rounding_level, log_range, method_color,
                                  rounding_band, share_y_range, short_layer_name)
from qgoft_core.viz.training_charts import (energy_drift_over_steps, layer_metric_series, loss_curves,
                                            metric_over_steps, orthogonality_over_steps)

__all__ = [
    # record types (owned by the engine)
    "StepRecord", "EvalRecord", "LayerSnapshot", "Snapshot", "MethodCurve", "FloatSeq",
    # vocabulary
    "TEMPLATE", "SIGNED_COLORSCALE", "MAGNITUDE_COLORSCALE", "COUNT_COLORSCALE", "OUTLIER_COLOR", "LOG_FLOOR",
    "ORTH_TOLERANCE", "MAX_HEATMAP_COLUMNS", "MAX_LEGEND_LAYERS", "MAX_OUTLIER_MARKERS", "TABLE_COLUMNS",
    "TABLE_COLUMN_HELP", "TABLE_COLUMN_WIDTHS", "HISTOGRAM_BINS", "ENERGY_ROUNDING",
    # helpers
    "short_layer_name", "method_color", "downsample_indices", "downsample", "pad_ragged",
    "bin_columns_by_max_abs", "normalise_rows_by_max_abs", "angle_bin_edges", "wrap_angles", "clip_for_log",
    "norm_outlier_mask", "layer_metric_series", "energy_rounding_level", "rounding_band", "share_y_range",
    "log_range", "angle_half_range", "table_notes_markdown",
    # figures
    "loss_curves", "metric_over_steps", "orthogonality_over_steps", "energy_drift_over_steps",
    "angle_heatmap", "angle_histograms_over_time", "norm_change_histogram", "layer_overview_table",
    "spectrum_figure", "method_compare_bars", "accuracy_vs_kept",
    # HTML
    "rows_to_html_table", "figure_to_html_div", "html_report",
]
