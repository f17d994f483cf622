"""A method comparison as the app shows it: table, column help, bar charts, kept figure, summary.

Plain functions of a `qgoft_core.explore.compare.CompareResult` (the engine
half: running, measuring, JSON in and out). Labels and colours come from the
engine's comparison entries (`COMPARE_METHODS`, whose colours come from the
method registry); the generic charts from `compare_charts`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go

from qgoft_core.explore.compare import COMPARE_METHODS, ORTH_LEAST_SQUARES, ORTH_UNTOUCHED, CompareResult
from qgoft_core.viz.compare_charts import accuracy_vs_kept, method_compare_bars
from qgoft_core.viz.style import ENERGY_ROUNDING, LOG_FLOOR, rounding_band

__all__ = ["BAR_METRICS", "COLUMNS", "COLUMN_HELP", "compare_bar_figures", "describe", "kept_figure",
           "method_choices", "seed_noise_points", "summary_markdown", "table_rows"]

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
                    "neurons, so its drift is rounding only: float32 arithmetic leaves ~1e-10, and "
                    f"anything below {ENERGY_ROUNDING:.0e} (the grey band of the chart) means unchanged.",
    "CKA to base": "Linear CKA between the tuned and the base model's sentence embeddings of 64 "
                   "held-out texts: 1 = the same representation (up to rotation and scale).",
    "retention (Spearman)": "The base model's own skill after tuning: Spearman correlation between "
                            "embedding cosine similarity and graded similarity of the retention "
                            "sentence pairs.",
    "skill kept (%)": "Retention Spearman of the tuned model as a percentage of the base model's. "
                      "100% = as good as the base; a value a little above 100% is noise around the "
                      "base (the probe is a few hundred sentence pairs), not a gain from tuning.",
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
        cells = [_format(name, getattr(row, name)) for name, _ in COLUMNS]
        seeds, sd = _seeds(row)
        if seeds > 1 and math.isfinite(sd) and math.isfinite(row.accuracy):
            cells[[name for name, _ in COLUMNS].index("accuracy")] = f"{100 * row.accuracy:.1f} ± {100 * sd:.1f}"
            note = "; ".join(filter(None, [f"mean ± sd of {seeds} seeds", note]))
        body.append(cells + [note])
    return headers, body


def _seeds(row: Any) -> tuple[int, float]:
    """(seeds behind the row, sd of its accuracy): 1 and NaN for a single run.

    The engine's rows are one run each; a multi-seed result (rows carrying
    ``n_seeds`` and ``accuracy_sd``, their accuracy a mean) is read the same way.
    """
    try:
        seeds = int(getattr(row, "n_seeds", 1) or 1)
    except (TypeError, ValueError):
        seeds = 1
    sd = getattr(row, "accuracy_sd", None)
    sd = float(sd) if isinstance(sd, (int, float)) and math.isfinite(sd) else math.nan
    return seeds, sd


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
                note = "log scale; a 0 is drawn as a stub below the smallest value"
                if name == "he_drift":
                    # Rounding of float32 arithmetic (style.energy_rounding_level, MiniLM's layers all
                    # have >= 256 neurons): a bar inside the band is "unchanged", not a small drift.
                    fig.add_trace(rounding_band(ENERGY_ROUNDING, 0, 1, xaxis="x2"))
                    fig.update_layout(xaxis2=dict(overlaying="x", range=[0, 1], visible=False))
                    note = f"grey band: float32 rounding (≤ {ENERGY_ROUNDING:.0e}), no change"
                fig.update_layout(title_text=f"{title}<br><sup>{note}</sup>")
            elif shown:
                fig.update_yaxes(range=[0, max(shown) * 1.18 if max(shown) > 0 else 1])
            if name == "accuracy":
                sds = [_seeds(r) for r in rows]
                if any(n > 1 and math.isfinite(sd) for n, sd in sds):
                    bar.error_y = dict(type="data", array=[100 * sd if math.isfinite(sd) else 0 for _, sd in sds],
                                       visible=True)
            if name == "retention_kept" and shown:
                fig.add_trace(go.Scatter(x=[0, 1], y=[100, 100], xaxis="x2", mode="lines", hoverinfo="skip",
                                         name="base model (100%)", line=dict(color="black", dash="dash", width=1)))
                fig.update_layout(xaxis2=dict(overlaying="x", range=[0, 1], visible=False),
                                  title_text=f"{title}<br><sup>dashed: the base (100%); a little above "
                                             "is noise around the base</sup>")
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
DEFAULT_NOISE_POINTS = 3.0  # accuracy points, when the held-out set's size is unknown


def _heldout_size(result: CompareResult) -> int | None:
    size = result.meta.get("heldout_examples")
    if isinstance(size, int) and size > 0:
        return size
    try:
        from qgoft_core.explore.data.tasks import BUILTIN_TASKS, load_builtin_task
        if result.task in BUILTIN_TASKS:
            return len(load_builtin_task(result.task).test_texts)
    except (OSError, ValueError):
        pass
    return None


def seed_noise_points(result: CompareResult, accuracy: float) -> float:
    """How far two single-seed accuracies can differ by chance, in points (rounded up to a whole point).

    One standard deviation of the difference of two accuracies near
    ``accuracy`` on the task's n held-out texts, sqrt(2 p (1 - p) / n): two
    seeds of one method already differ by about this much (other data order,
    other head initialisation).  Without a known n: 3 points.
    """
    n = _heldout_size(result)
    if not n or not math.isfinite(accuracy):
        return DEFAULT_NOISE_POINTS
    p = min(max(accuracy, 0.0), 1.0)
    return float(max(1, math.ceil(100 * math.sqrt(2 * p * (1 - p) / n))))


def summary_markdown(result: CompareResult) -> str:
    """A few sentences that say what a comparison can and cannot tell.

    One seed per method: the leader is "highest in this run", with the size of
    a gap that seed noise alone produces, and no winner is crowned.  Rows that
    carry several seeds (``n_seeds`` > 1 and ``accuracy_sd``): mean ± sd and
    which gaps to the leader exceed the two spreads.
    """
    rows = [r for r in result.rows if math.isfinite(r.accuracy)]
    if not rows:
        return "No finished methods yet."
    best = max(rows, key=lambda r: r.accuracy)
    seeds = [_seeds(r) for r in rows]
    multi = all(n > 1 and math.isfinite(sd) for n, sd in seeds)
    lines: list[str] = []
    if multi:
        n_min = min(n for n, _ in seeds)
        sd_of = {id(r): sd for r, (_, sd) in zip(rows, seeds)}
        best_sd = sd_of[id(best)]
        lines.append(f"Accuracy is the mean ± sd over {n_min}+ seeds per method. Highest mean: "
                     f"**{best.label}** ({100 * best.accuracy:.1f} ± {100 * best_sd:.1f}%).")
        clear = [r for r in rows if r is not best and best.accuracy - r.accuracy > best_sd + sd_of[id(r)]]
        within = [r for r in rows if r is not best and r not in clear]
        if clear:
            lines.append("Its lead exceeds the spread (gap > the two sds together) over "
                         + ", ".join(f"{r.label} ({100 * r.accuracy:.1f} ± {100 * sd_of[id(r)]:.1f}%)"
                                     for r in clear) + ".")
        if within:
            lines.append("Within the spread of it (not separated by these seeds): "
                         + ", ".join(r.label for r in within) + ".")
        noise = 100 * best_sd
    else:
        noise = seed_noise_points(result, float(np.median([r.accuracy for r in rows])))
        close = [r for r in rows if r is not best and best.accuracy - r.accuracy < noise / 100]
        lines.append(f"**One seed per method** (seed {result.seed}): each number is a single run, so "
                     "a small gap ranks nothing.")
        lines.append(f"Highest in this run: **{best.label}** ({100 * best.accuracy:.1f}%; one seed: "
                     f"differences below ~{noise:.0f} points are within seed noise)"
                     + (f", with {', '.join(r.label for r in close)} within that." if close else "."))
    close = [r for r in rows if r.accuracy >= best.accuracy - noise / 100]
    keeper = max(close, key=lambda r: (r.retention_kept if math.isfinite(r.retention_kept) else -1))
    if math.isfinite(keeper.retention_kept):
        lines.append(f"Among those within ~{noise:.0f} points of it, the most original skill kept: "
                     f"**{keeper.label}** ({100 * keeper.retention_kept:.1f}% of the base model's retention "
                     f"score, CKA {keeper.cka:.3f}).")
    above = [r for r in rows if math.isfinite(r.retention_kept) and r.retention_kept > 1.0]
    if above:
        lines.append("Skill kept above 100% (" + ", ".join(f"{r.label} {100 * r.retention_kept:.1f}%"
                                                            for r in above)
                     + ") means the tuned model scored a little higher than the base on the retention probe: "
                       "noise around the base, not a gain.")
    timed = [r for r in rows if math.isfinite(r.sec_per_step)]
    if timed:
        fastest = min(timed, key=lambda r: r.sec_per_step)
        lines.append(f"Fastest step: **{fastest.label}** ({fastest.sec_per_step:.3f} s).")
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
