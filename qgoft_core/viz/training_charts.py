"""Charts over optimiser steps: training curves and per-layer scalars recorded at snapshots.

Input is what a run's history (``qgoft_core.explore.history``) records: step and
eval records for :func:`loss_curves`, (snapshot steps, {layer: values}) from
:func:`layer_metric_series` / ``RunHistory.layer_series`` for the per-layer charts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qgoft_core.explore.history import EvalRecord, Snapshot, StepRecord, layer_series
from qgoft_core.viz.style import (LOG_FLOOR, MAX_LEGEND_LAYERS, ORTH_TOLERANCE, FloatSeq, apply_style,
                                  clip_for_log, column, downsample, downsample_indices, short_layer_name,
                                  with_note)


def layer_metric_series(snapshots: Sequence[Snapshot], key: str) -> tuple[list[int], dict[str, list[float]]]:
    """Pull one scalar per layer (e.g. "orth_dev", "he_drift") out of a list of snapshots.

    Returns (steps, {layer name: values}) ready for :func:`metric_over_steps`;
    a layer missing from a snapshot gets NaN there (drawn as a gap).
    """
    return layer_series(snapshots, key)


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
    train_x, eval_x = column(steps, "step"), column(evals, "step")

    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=("Task loss", "Regulariser loss (own scale)", "Held-out accuracy"),
    )
    fig.add_trace(
        go.Scatter(
            x=train_x, y=column(steps, "loss"), mode="lines", name="train task loss",
            hovertemplate="step %{x}<br>task loss %{y:.4g}<extra></extra>",
        ),
        row=1, col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=eval_x, y=column(evals, "loss"), mode="lines+markers", name="held-out loss",
            hovertemplate="step %{x}<br>held-out loss %{y:.4g}<extra></extra>",
        ),
        row=1, col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=train_x, y=column(steps, "reg_loss"), mode="lines", name="regulariser loss",
            hovertemplate="step %{x}<br>regulariser loss %{y:.3e}<extra></extra>",
        ),
        row=2, col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=eval_x, y=100 * column(evals, "accuracy"), mode="lines+markers",
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
    return apply_style(fig, "Training curves", 620)


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
        title = with_note(title, "; ".join(notes))
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear", exponentformat="e")
    return apply_style(fig, title, 420)


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
