"""Charts that compare methods: one bar per method, accuracy against what the model kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypedDict

import numpy as np
import plotly.graph_objects as go

from qgoft_core.explore.history import finite_or_none
from qgoft_core.viz.style import apply_style, method_color


class MethodCurve(TypedDict):
    kept: list[float]
    accuracy: list[float]
    step: list[int]


def _four_digits(value: float) -> str:
    return f"{value:.4g}"


def method_compare_bars(
    rows: Sequence[Mapping], metric: str, title: str, y_title: str | None = None,
    fmt: Callable[[float], str] | None = None,
) -> go.Figure:
    """One bar per method (``row["method"]``) for ``row[metric]``; missing values leave a gap.

    ``y_title`` defaults to the metric name; pass one with its unit. ``fmt`` writes a value for
    the bar's label and hover (default: four significant digits); pass the one a table beside
    the chart uses, so both read the same.
    """
    fmt = fmt or _four_digits
    methods = [str(r.get("method", "?")) for r in rows]
    values = [finite_or_none(r.get(metric)) for r in rows]
    fig = go.Figure(
        go.Bar(
            x=methods,
            y=values,
            marker_color=[method_color(m) or "#9467bd" for m in methods],
            text=[fmt(v) if v is not None else "n/a" for v in values],
            textposition="outside",
            hovertemplate=f"%{{x}}<br>{metric} %{{text}}<extra></extra>",
            name=metric,
        )
    )
    fig.update_xaxes(title_text="method")
    fig.update_yaxes(title_text=y_title or metric)
    return apply_style(fig, title, 380)


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
    return apply_style(fig, title, 420)
