"""A method comparison as the app shows it: table, column help, bar charts, kept figure, summary.

Plain functions of a `qgoft_core.explore.compare.CompareResult` (the engine
half: running, measuring, JSON in and out). Labels and colours come from the
engine's comparison entries (`COMPARE_METHODS`, whose colours come from the
method registry); the generic charts from `compare_charts`.
"""
from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from qgoft_core.explore.compare import COMPARE_METHODS, ORTH_LEAST_SQUARES, ORTH_UNTOUCHED, CompareResult
from qgoft_core.viz.compare_charts import accuracy_vs_kept, method_compare_bars
from qgoft_core.viz.style import LOG_FLOOR

__all__ = ["BAR_METRICS", "COLUMNS", "COLUMN_HELP", "compare_bar_figures", "describe", "kept_figure",
           "method_choices", "summary_markdown", "table_rows"]

OTHER_COLOR = "#9467bd"  # a row whose key is not a comparison entry (an older file)

COLUMNS: list[tuple[str, str]] = [  # (CompareRow field, table header)
    ("label", "method"),
    ("trainable_params", "trainable params"),
    ("accuracy", "accuracy (%)"),
    ("sec_per_step", "s / step"),
    ("orth_dev", "orth. deviation"),
    ("he_drift", "energy drift"),
    ("cka", "CKA to base"),
    ("retention_tuned", "retention (Spearman)"),
    ("retention_kept", "skill kept (%)"),
    ("lr", "lr"),
    ("steps", "steps"),
]

COLUMN_HELP: dict[str, str] = {
    "method": "Fine-tuning method; all rows share the base model, task, seed (head initialisation and "
              "data order) and step budget.",
    "trainable params": "Parameters the optimiser updates, classifier head included.",
    "accuracy (%)": "Accuracy on the task's held-out texts after the last step.",
    "s / step": "Median wall-clock seconds of one training step (forward, backward, AdamW) on this "
                "machine; the methods ran one after another, so load from other work can shift them.",
    "orth. deviation": "||MᵀM − I||_F / √d, largest over adapted layers, for the input-side operator M "
                       "with tuned weight W' = W Mᵀ. Rotation methods (GOFT, qGOFT, OFT, BOFT): their own "
                       "M over every adapted layer; 0 means exactly orthogonal. LoRA and full fine-tuning "
                       "have no M, so the least-squares one, Mᵀ = pinv(W) W', is used on the layers where "
                       "it is unique and stable: at least as many outputs as inputs and cond(W) ≤ 100 "
                       "(in MiniLM the six MLP up-projections). Head only: the encoder is untouched, 0. "
                       "qGOFT's deviation includes its blocks' free column norms (its penalty only pushes "
                       "each block's two columns to be perpendicular), so a larger λ need not shrink it.",
    "energy drift": "Hyperspherical energy of each adapted weight's neurons, tuned vs base: mean over "
                    "layers of |HE(W') − HE(W)| / HE(W). An exact rotation keeps every angle between "
                    "neurons, so its drift is ~0 (rounding).",
    "CKA to base": "Linear CKA between the tuned and the base model's sentence embeddings of 64 "
                   "held-out texts: 1 = the same representation (up to rotation and scale).",
    "retention (Spearman)": "The base model's own skill after tuning: Spearman correlation between "
                            "embedding cosine similarity and graded similarity of the retention "
                            "sentence pairs.",
    "skill kept (%)": "Retention Spearman of the tuned model as a percentage of the base model's.",
    "lr": "Peak learning rate (linear warm-up over the first steps).",
    "steps": "Training steps done (fewer than asked only when a time limit or divergence stopped "
             "the run).",
}

BAR_METRICS: list[tuple[str, str, str, bool]] = [  # (field, title, y axis, log scale)
    ("accuracy", "Held-out accuracy", "accuracy (%)", False),
    ("cka", "Representation kept (linear CKA to base)", "CKA", False),
    ("retention_kept", "Original skill kept (retention probe)", "tuned / base Spearman (%)", False),
    ("he_drift", "Hyperspherical energy drift", "mean |relative drift| (log)", True),
    ("orth_dev", "Orthogonality deviation", "max ||MᵀM − I||_F / √d (log)", True),
    ("sec_per_step", "Seconds per training step", "s / step", False),
]


def _color(key: str) -> str | None:
    return COMPARE_METHODS[key].color if key in COMPARE_METHODS else None


# -- the table -----------------------------------------------------------------
def _format(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if name == "trainable_params":
        return f"{int(value):,}"
    if name in ("accuracy", "retention_kept"):
        return f"{100 * value:.1f}"
    if name in ("cka", "retention_tuned"):
        return f"{value:.4f}"
    if name == "sec_per_step":
        return f"{value:.3f}"
    if name in ("orth_dev", "he_drift"):
        return "0" if value == 0 else f"{value:.2e}"
    if name == "lr":
        return f"{value:g}"
    return str(value)


def table_rows(result: CompareResult) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of display strings) for the comparison table."""
    headers = [header for _, header in COLUMNS] + ["note"]
    body = []
    for row in result.rows:
        note = row.status if row.status != "ok" else ""
        if row.orth_dev_kind == ORTH_LEAST_SQUARES:
            note = "; ".join(filter(None, ["orth.: least-squares M", note]))
        elif row.orth_dev_kind == ORTH_UNTOUCHED:
            note = "; ".join(filter(None, ["orth.: encoder untouched", note]))
        body.append([_format(name, getattr(row, name)) for name, _ in COLUMNS] + [note])
    return headers, body


# -- figures -------------------------------------------------------------------
def compare_bar_figures(result: CompareResult) -> dict[str, go.Figure]:
    """One bar chart per metric (small multiples), keyed by CompareRow field."""
    figures = {}
    rows = [r for r in result.rows if r.steps > 0]
    for name, title, y_title, log in BAR_METRICS:
        scale = 100.0 if name in ("accuracy", "retention_kept") else 1.0
        plain = [{"method": r.label, name: getattr(r, name) * scale} for r in rows]
        fig = method_compare_bars(plain, name, title, y_title)
        if fig.data:
            bar = fig.data[0]
            bar.marker.color = [_color(r.key) or OTHER_COLOR for r in rows]
            shown = [v for v in bar.y if v is not None and math.isfinite(v)]
            if log:
                # Log axes cannot show 0: draw zeros at the floor, keep the true value as text.
                values = [getattr(r, name) for r in rows]
                bar.y = [max(abs(v), LOG_FLOOR) if math.isfinite(v) else None for v in values]
                bar.text = [("0" if v == 0 else f"{v:.2g}") if math.isfinite(v) else "n/a" for v in values]
                top = max([abs(v) for v in values if math.isfinite(v)] + [LOG_FLOOR])
                bottom = min([abs(v) for v in values if math.isfinite(v) and v != 0] + [top])
                # Room above the tallest bar for its label; zeros drawn one decade below the rest.
                fig.update_yaxes(type="log", exponentformat="power",
                                 range=[math.log10(max(bottom, LOG_FLOOR)) - 2, math.log10(top) + 1])
                bar.y = [max(v, bottom / 10) if v is not None else None for v in bar.y]
                title = f"{title}<br><sup>log scale; a 0 is drawn as a stub below the smallest value</sup>"
                fig.update_layout(title_text=title)
            elif shown:
                fig.update_yaxes(range=[0, max(shown) * 1.18 if max(shown) > 0 else 1])
        fig.update_layout(height=320, margin=dict(l=60, r=15, t=60, b=70), showlegend=False)
        fig.update_xaxes(title_text=None, tickangle=-30)
        figures[name] = fig
    return figures


def kept_figure(result: CompareResult) -> go.Figure:
    """Accuracy against representation similarity to the base (CKA) over training."""
    labels = result.labels()
    curves = {labels.get(k, k): {"kept": c["kept"], "accuracy": c["accuracy"], "step": c["step"]}
              for k, c in result.curves.items() if c.get("step")}
    fig = accuracy_vs_kept(curves, "representation kept: linear CKA to the base model",
                           title="Accuracy vs knowledge kept over training<br><sup>each point an evaluation, "
                                 "starting at step 0 (CKA 1, left); up and to the left is better</sup>")
    colors = {labels.get(k, k): _color(k) for k in result.curves}
    for trace in fig.data:
        if colors.get(trace.name):
            trace.line.color = colors[trace.name]
            trace.marker.color = colors[trace.name]
    fig.update_xaxes(autorange="reversed")  # left to right: further from the base
    return fig


# -- text ----------------------------------------------------------------------
def summary_markdown(result: CompareResult) -> str:
    """A few sentences: who is most accurate, who keeps the most among the accurate ones."""
    rows = [r for r in result.rows if math.isfinite(r.accuracy)]
    if not rows:
        return "No finished methods yet."
    best = max(rows, key=lambda r: r.accuracy)
    close = [r for r in rows if r.accuracy >= best.accuracy - 0.01]
    keeper = max(close, key=lambda r: (r.retention_kept if math.isfinite(r.retention_kept) else -1))
    fastest = min(rows, key=lambda r: r.sec_per_step if math.isfinite(r.sec_per_step) else math.inf)
    lines = [f"Most accurate: **{best.label}** ({100 * best.accuracy:.1f}%).",
             f"Within 1 point of it, the most original skill kept: **{keeper.label}** "
             f"({100 * keeper.retention_kept:.1f}% of the base model's retention score, "
             f"CKA {keeper.cka:.3f}).",
             f"Fastest step: **{fastest.label}** ({fastest.sec_per_step:.3f} s)."]
    base = next((r.retention_base for r in rows if math.isfinite(r.retention_base)), math.nan)
    if math.isfinite(base):
        lines.append(f"(The untuned base model's retention Spearman is {base:.3f}.)")
    return " ".join(lines)


def describe(result: CompareResult) -> str:
    """One line (Markdown): what the comparison is (task, seed, budget, when and where it was made)."""
    meta = result.meta
    made = meta.get("created", "")
    where = meta.get("device", "")
    parts = [f"task **{result.task}**", f"seed {result.seed}", f"{result.steps} steps per method",
             f"batch {meta.get('batch_size', '?')}", f"model `{result.model}`"]
    if made:
        parts.append(f"made {made[:10]}")
    if where:
        parts.append(f"on {where}")
    return ", ".join(parts)


def method_choices() -> list[tuple[str, str]]:
    """(label, key) pairs for a method picker."""
    return [(f"{m.label}", k) for k, m in COMPARE_METHODS.items()]
