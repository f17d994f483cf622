"""Charts over optimiser steps: training curves and per-layer scalars recorded at snapshots.

Input is what a run's history (``qgoft_core.explore.history``) records: step and
eval records for :func:`loss_curves`, (snapshot steps, {layer: values}) from
:func:`layer_metric_series` / ``RunHistory.layer_series`` for the per-layer charts.

Earlier runs (:class:`EarlierRun`, built by :func:`earlier_run`) can be drawn beside the
current one, in grey dotted lines named in the legend: "GOFT, then qGOFT" in front of a
class is then a comparison on the same axes, not a replacement.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qgoft_core.explore.history import EvalRecord, Snapshot, StepRecord, float_or_nan, layer_series
from qgoft_core.viz.style import (LOG_FLOOR, MAX_LEGEND_LAYERS, ORTH_TOLERANCE, FloatSeq, apply_style,
                                  clip_for_log, column, downsample, downsample_indices, energy_rounding_level,
                                  rounding_band, short_layer_name, with_note)


# Line styles of earlier runs, the newest first: grey (the current run keeps the colours), dotted,
# so they read as "for comparison" next to solid lines and the black dashed tolerance line.
EARLIER_STYLES: tuple[tuple[str, str], ...] = (("#555555", "dot"), ("#a0a0a0", "dashdot"))


@dataclass(frozen=True)
class EarlierRun:
    """What the charts need to draw an earlier run beside the current one (a few kB, no model).

    ``evals``: its held-out loss and accuracy records; ``snap_steps`` with ``orth_dev`` and
    ``he_drift``: the median over its layers at each snapshot (one line per run, not per layer).
    """

    label: str  # legend and hover: "run 1 · GOFT"
    evals: tuple[dict, ...] = ()
    snap_steps: tuple[int, ...] = ()
    orth_dev: tuple[float, ...] = ()
    he_drift: tuple[float, ...] = ()
    color: str = EARLIER_STYLES[0][0]
    dash: str = EARLIER_STYLES[0][1]


@dataclass(frozen=True)
class ReferenceLine:
    """Another run's scalar over steps, drawn as one thin line on a per-layer chart."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str = EARLIER_STYLES[0][0]
    dash: str = EARLIER_STYLES[0][1]


def _median_of_layers(per_layer: Mapping[str, FloatSeq], steps: int, absolute: bool = False) -> tuple[float, ...]:
    if not per_layer or not steps:
        return tuple(float("nan") for _ in range(steps))
    stack = np.vstack([np.asarray(v, dtype=float) for v in per_layer.values()])
    if absolute:
        stack = np.abs(stack)
    with warnings.catch_warnings():  # a snapshot where no layer has the metric: NaN, a gap
        warnings.simplefilter("ignore", RuntimeWarning)
        return tuple(float(v) for v in np.nanmedian(stack, axis=0))


def earlier_run(label: str, evals: Sequence[EvalRecord], snapshots: Sequence[Snapshot],
                color: str = EARLIER_STYLES[0][0], dash: str = EARLIER_STYLES[0][1],
                max_points: int = 400) -> EarlierRun:
    """Keep from a run's history only what its comparison lines need (at most ``max_points`` each)."""
    kept_evals = tuple({"step": int(e["step"]), "loss": float_or_nan(e.get("loss")),
                        "accuracy": float_or_nan(e.get("accuracy"))} for e in downsample(list(evals), max_points))
    snaps = downsample(list(snapshots), max_points)
    steps, orth = layer_series(snaps, "orth_dev")
    _, drift = layer_series(snaps, "he_drift")
    return EarlierRun(label=label, evals=kept_evals, snap_steps=tuple(int(s) for s in steps),
                      orth_dev=_median_of_layers(orth, len(steps)),
                      he_drift=_median_of_layers(drift, len(steps), absolute=True), color=color, dash=dash)


def layer_metric_series(snapshots: Sequence[Snapshot], key: str) -> tuple[list[int], dict[str, list[float]]]:
    """Pull one scalar per layer (e.g. "orth_dev", "he_drift") out of a list of snapshots.

    Returns (steps, {layer name: values}) ready for :func:`metric_over_steps`;
    a layer missing from a snapshot gets NaN there (drawn as a gap).
    """
    return layer_series(snapshots, key)


def loss_curves(
    steps: Sequence[StepRecord], evals: Sequence[EvalRecord], max_points: int = 400,
    regulariser: bool = True, regulariser_note: str | None = None, earlier: Sequence[EarlierRun] = (),
) -> go.Figure:
    """Task loss (+ held-out loss), regulariser loss and held-out accuracy vs step.

    Stacked panels sharing the step axis.  The regulariser gets its own
    panel and y scale so it stays visible when it is 1000x smaller than the
    task loss; ``regulariser=False`` (a method without a penalty: only qGOFT
    has one) leaves that panel out.  ``regulariser_note`` replaces the panel's
    curve with a sentence (a lesson pairs a method without a penalty with one
    that has it, and keeps the panels aligned).  The number of traces depends
    only on those two arguments (empty traces before any data), so a live
    chart keeps the same structure from step 0: 4 with the regulariser
    panel, 3 without.  ``earlier`` runs follow them, two traces each (held-out
    loss, held-out accuracy) in the run's grey dotted style, one legend entry
    per run: the current run's traces stay first, whatever is compared.
    """
    steps = downsample(list(steps), max_points)
    evals = downsample(list(evals), max_points)
    train_x, eval_x = column(steps, "step"), column(evals, "step")

    titles = ["Task loss", "Regulariser loss λ·Σ⟨α, β⟩² (own scale)", "Held-out accuracy"]
    if not regulariser:
        titles.pop(1)
    rows = len(titles)
    acc_row = rows
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.07 if rows == 3 else 0.1,
                        subplot_titles=titles)
    # A lone point in a lines-only trace draws nothing (after one Step +1 the chart looked empty).
    step_mode = "lines+markers" if len(train_x) < 3 else "lines"
    fig.add_trace(
        go.Scatter(
            x=train_x, y=column(steps, "loss"), mode=step_mode, name="train task loss",
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
    if regulariser:
        no_penalty = regulariser_note is not None
        fig.add_trace(
            go.Scatter(
                x=[] if no_penalty else train_x, y=[] if no_penalty else column(steps, "reg_loss"),
                mode=step_mode, name="regulariser loss",
                hovertemplate="step %{x}<br>regulariser loss %{y:.3e}<extra></extra>",
            ),
            row=2, col=1,
        )
        if no_penalty:
            fig.add_annotation(text=regulariser_note, x=0.5, y=0.5, xref="x2 domain", yref="y2 domain",
                               showarrow=False)
        # "e" ticks: plotly's default SI prefixes ("2µ") are easy to misread
        fig.update_yaxes(title_text="regulariser loss", exponentformat="e", row=2, col=1)
    fig.add_trace(
        go.Scatter(
            x=eval_x, y=100 * column(evals, "accuracy"), mode="lines+markers",
            name="held-out accuracy",
            hovertemplate="step %{x}<br>accuracy %{y:.1f}%<extra></extra>",
        ),
        row=acc_row, col=1,
    )
    for run in earlier:
        _add_earlier_curves(fig, run, acc_row)
    fig.update_yaxes(title_text="task loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100], row=acc_row, col=1)
    fig.update_xaxes(title_text="optimizer step", row=acc_row, col=1)
    notes = [] if regulariser else ["this method has no regulariser (only qGOFT adds a penalty): task loss only"]
    if earlier:
        notes.append("grey dotted: your earlier runs")
    title = with_note("Training curves", "; ".join(notes)) if notes else "Training curves"
    return apply_style(fig, title, 620 if rows == 3 else 460)


def _add_earlier_curves(fig: go.Figure, run: EarlierRun, acc_row: int) -> None:
    """An earlier run's held-out loss (top panel) and accuracy (bottom), one legend entry for both."""
    x = column(run.evals, "step")
    line = dict(color=run.color, dash=run.dash, width=2.5)
    fig.add_trace(go.Scatter(x=x, y=column(run.evals, "loss"), mode="lines", name=run.label,
                             legendgroup=f"earlier:{run.label}", line=line,
                             hovertemplate=f"{run.label}<br>step %{{x}}<br>held-out loss %{{y:.4g}}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=100 * column(run.evals, "accuracy"), mode="lines", name=run.label,
                             legendgroup=f"earlier:{run.label}", showlegend=False, line=line,
                             hovertemplate=f"{run.label}<br>step %{{x}}<br>accuracy %{{y:.1f}}%<extra></extra>"),
                  row=acc_row, col=1)


def metric_over_steps(
    snap_steps: Sequence[int],
    per_layer_values: Mapping[str, FloatSeq],
    title: str,
    y_title: str,
    log_y: bool = False,
    tolerance: float | None = None,
    highlight: str | None = None,
    max_points: int = 400,
    band: float | None = None,
    band_label: str | None = None,
    references: Sequence[ReferenceLine] = (),
    note: str | None = None,
) -> go.Figure:
    """One line per layer of a scalar recorded at each snapshot.

    ``highlight`` (a full layer name) is drawn thick and on top, the others
    faded.  With many layers only the first few and the highlight get legend
    entries; hover always names the full layer.  ``log_y`` raises values
    below 1e-16 (exact zeros too) to 1e-16 and says so in the title; hover
    shows the unclipped value.  ``tolerance`` adds a dashed reference line
    (a trace, so it stays correct on log axes and appears in the legend).
    ``band`` draws a grey band from the log floor up to that value, first so
    the lines lie on top (:func:`~qgoft_core.viz.style.rounding_band`; its
    name is ``band_label``): values inside it are rounding.  ``references``
    (other runs, :class:`ReferenceLine`) are drawn last, thin, grey and dotted,
    each named in the legend.  ``note`` opens the title's second line.
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
    if band is not None and steps.size:
        fig.add_trace(rounding_band(band, steps[0], steps[-1], band_label))
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
    for ref in references:
        raw = np.asarray(ref.y, dtype=float)
        shown = raw
        if log_y:
            shown, clipped = clip_for_log(raw)
            any_clipped |= clipped
        fig.add_trace(
            go.Scatter(
                x=list(ref.x), y=shown, customdata=raw, mode="lines", name=ref.label,
                line=dict(color=ref.color, dash=ref.dash, width=2.5),
                hovertemplate=f"{ref.label}<br>step %{{x}}<br>{y_title} %{{customdata:.3g}}<extra></extra>",
            )
        )
    notes = [note] if note else []  # the caller's note first, then how the lines are drawn
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
    earlier: Sequence[EarlierRun] = (),
) -> go.Figure:
    """Orthogonality deviation ‖MᵀM − I‖_F/√d per layer vs step (log y, tolerance line at 1e-5).

    ``earlier`` runs add one grey dotted line each: the median over their layers."""
    return metric_over_steps(
        snap_steps,
        per_layer_orth_dev,
        title="Orthogonality deviation per layer",
        y_title="‖MᵀM − I‖_F / √d",
        log_y=True,
        tolerance=tolerance,
        highlight=highlight,
        references=_references(earlier, "orth_dev"),
    )


def _references(earlier: Sequence[EarlierRun], key: str) -> list[ReferenceLine]:
    """One line per earlier run that recorded the metric (a run where it is undefined everywhere draws none)."""
    lines = []
    for run in earlier:
        values = getattr(run, key)
        if run.snap_steps and np.isfinite(np.asarray(values, dtype=float)).any():
            lines.append(ReferenceLine(f"{run.label} (median layer)", run.snap_steps, values, run.color, run.dash))
    return lines


def energy_drift_over_steps(
    snap_steps: Sequence[int],
    per_layer_drift: Mapping[str, FloatSeq],
    highlight: str | None = None,
    neurons: int | None = None,
    rounding: float | None = None,
    earlier: Sequence[EarlierRun] = (),
) -> go.Figure:
    """|relative hyperspherical-energy change| per layer vs step on a log axis, with the rounding band.

    An exact rotation (strict GOFT) keeps the energy: its drift is float32
    rounding, ~1e-10 on MiniLM (exactly 0 at step 0, drawn at 1e-16).  On a
    log axis that step from 1e-16 to 1e-10 looks like a real change, so a grey
    band marks the rounding level (:func:`~qgoft_core.viz.style.energy_rounding_level`
    for the fewest ``neurons`` of the layers drawn, or ``rounding`` given):
    values inside it mean "unchanged".  The first trace is the band; ``earlier``
    runs add one grey dotted line each (the median over their layers) at the end.
    """
    magnitudes = {name: np.abs(np.asarray(v, dtype=float)) for name, v in per_layer_drift.items()}
    level = rounding if rounding is not None else energy_rounding_level(neurons)
    fig = metric_over_steps(
        snap_steps,
        magnitudes,
        title="Hyperspherical-energy drift per layer",
        y_title="|ΔHE| / HE₀",
        log_y=True,
        highlight=highlight,
        band=level,
        band_label=f"float32 rounding (≤ {level:.1g}): unchanged",
        references=_references(earlier, "he_drift"),
        note=f"grey band: float32 rounding (≤ {level:.1g}), no change",
    )
    return fig
