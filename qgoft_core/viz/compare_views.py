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
from qgoft_core.viz.style import ENERGY_ROUNDING, LOG_FLOOR, ORTH_TOLERANCE, rounding_band, set_title

SMALL_MULTIPLE = 300  # px: the narrowest bar chart of the grid (three in a row at 1024 px)

__all__ = ["BAR_METRICS", "COLUMNS", "COLUMN_HELP", "SPREAD_RULE", "cell", "compare_bar_figures", "describe",
           "format_spread", "format_value", "gap_supported",
           "kept_figure", "method_choices", "seed_noise_points", "summary_markdown", "table_rows", "wins_markdown"]

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
    "method": "Fine-tuning method; all rows share the base model, task, seed or seeds (head initialisation "
              "and data order) and step budget. With several seeds a cell reads mean ± sd: the sample "
              "standard deviation over the seeds.",
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
# One text per column, used by the table, the bars' labels and the summary alike, so a number
# reads the same wherever it is shown (``format_value``; with several seeds ``format_spread``).
_DIGITS = {"accuracy": 1, "retention_kept": 1, "cka": 4, "retention_tuned": 4,
           "sec_per_step": 3}  # decimals (accuracy and skill kept in %)
_PERCENT = ("accuracy", "retention_kept")
_SCIENTIFIC = ("orth_dev", "he_drift")  # spans decades: three significant digits, sd one


def _digits(name: str) -> int:
    return _DIGITS.get(name, 2)


def _scale(name: str) -> float:
    return 100.0 if name in _PERCENT else 1.0


def format_value(name: str, value: Any, digits: int | None = None) -> str:
    """Column `name`'s value as every view writes it (`digits`: more decimals, to tell two apart)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if name == "trainable_params":
        return f"{int(value):,}"
    if name in _SCIENTIFIC:
        return "0" if value == 0 else f"{value:.3g}"
    if name in _DIGITS:
        return f"{_scale(name) * value:.{_digits(name) if digits is None else digits}f}"
    if name == "lr":
        return f"{value:g}"
    return str(value)


def format_spread(name: str, value: float, sd: float, digits: int | None = None) -> str:
    """Mean ± sd of column `name` as every view writes it (the sd to the mean's decimals)."""
    if name in _SCIENTIFIC:
        return f"{format_value(name, value)} ± {sd:.1g}"
    d = _digits(name) if digits is None else digits
    return f"{format_value(name, value, d)} ± {_scale(name) * sd:.{d}f}"


SPREAD_COLUMNS = ("accuracy", "sec_per_step", "orth_dev", "he_drift", "cka",
                  "retention_kept")  # cells that read mean ± sd with several seeds


def cell(row: Any, name: str, digits: int | None = None) -> str:
    """Column `name` of `row`: mean ± sd when the row has several seeds and that column a spread."""
    value, sd = getattr(row, name), _sd(row, name)
    if (name in SPREAD_COLUMNS and _n_seeds(row) > 1 and math.isfinite(sd)
            and isinstance(value, (int, float)) and math.isfinite(value)):
        return format_spread(name, value, sd, digits)
    return format_value(name, value, digits)


LABEL_MIN_SIZE = 10  # px: smallest bar label drawn in the small multiples


def table_rows(result: CompareResult) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of display strings) for the comparison table."""
    headers = [header for _, header in COLUMNS] + ["note"]
    names = [name for name, _ in COLUMNS]
    body = []
    for row in result.rows:
        note = row.status if row.status != "ok" else ""
        if row.orth_dev_kind == ORTH_LEAST_SQUARES:
            note = "; ".join(filter(None, ["orth.: least-squares M", note]))
        elif row.orth_dev_kind == ORTH_UNTOUCHED:
            note = "; ".join(filter(None, ["orth.: encoder untouched", note]))
        cells = [cell(row, name) if name != "label" else row.label for name in names]
        seeds = _n_seeds(row)
        if seeds > 1:
            note = "; ".join(filter(None, [f"mean ± sd of {seeds} seeds", note]))
        body.append(cells + [note])
    return headers, body


def _n_seeds(row: Any) -> int:
    """Seeds behind a row: 1 for a single run (or a row from an older file)."""
    try:
        return int(getattr(row, "n_seeds", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _sd(row: Any, name: str) -> float:
    """Sample sd of column `name` over the row's seeds; NaN for one run or no such spread."""
    sd = getattr(row, f"{name}_sd", None)
    return float(sd) if isinstance(sd, (int, float)) and math.isfinite(sd) else math.nan


def _seeds(row: Any) -> tuple[int, float]:
    """(seeds behind the row, sd of its accuracy): 1 and NaN for a single run."""
    return _n_seeds(row), _sd(row, "accuracy")


# -- figures -------------------------------------------------------------------
def compare_bar_figures(result: CompareResult) -> dict[str, go.Figure]:
    """One bar chart per metric (small multiples), keyed by CompareRow field."""
    figures = {}
    rows = [r for r in result.rows if r.steps > 0]
    for name, title, y_title, log in BAR_METRICS:
        scale = _scale(name)
        plain = [{"method": r.label, name: getattr(r, name) * scale} for r in rows]
        # Labels as the table writes the column (format_value), not a chart's own precision.
        fig = method_compare_bars(plain, name, title, y_title, fmt=lambda v, n=name, k=scale: format_value(n, v / k))
        if fig.data:
            bar = fig.data[0]
            bar.marker.color = [_color(r.key) or OTHER_COLOR for r in rows]
            shown = [v for v in bar.y if v is not None and math.isfinite(v)]
            if log:
                # Log axes cannot show 0: draw zeros at the floor, keep the true value as text.
                values = [getattr(r, name) for r in rows]
                bar.y = [max(abs(v), LOG_FLOOR) if math.isfinite(v) else None for v in values]
                bar.text = [format_value(name, v) for v in values]
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
                set_title(fig, f"{title}<br><sup>{note}</sup>", width=SMALL_MULTIPLE)
            elif shown:
                fig.update_yaxes(range=[0, max(shown) * 1.18 if max(shown) > 0 else 1])
            sds = [_sd(r, name) * scale for r in rows]
            if not log and any(math.isfinite(sd) for sd in sds):
                # Error bars: ± one sample sd over the seeds (a single run has none).
                bar.error_y = dict(type="data", array=[sd if math.isfinite(sd) else 0 for sd in sds],
                                   visible=True, color="#444", thickness=1.2, width=4)
                # The value at the foot of the bar, level: above it the label would sit on the error bar.
                bar.text = [format_value(name, getattr(r, name)) for r in rows]  # the mean, as in the table
                bar.update(textposition="inside", insidetextanchor="start", textangle=0)
                if name == "sec_per_step":  # a wide spread here is the machines', not the method's
                    set_title(fig, f"{title}<br><sup>bars: ± sd over the seeds' runs, which follows each "
                                   "machine's load and thread count</sup>", width=SMALL_MULTIPLE)
                tops = [v + (sd if math.isfinite(sd) else 0) for v, sd in zip(bar.y, sds)
                        if v is not None and math.isfinite(v)]
                if tops:
                    fig.update_yaxes(range=[0, max(tops) * 1.12 if max(tops) > 0 else 1])
            if name == "retention_kept" and shown:
                fig.add_trace(go.Scatter(x=[0, 1], y=[100, 100], xaxis="x2", mode="lines", hoverinfo="skip",
                                         name="base model (100%)", line=dict(color="black", dash="dash", width=1)))
                fig.update_layout(xaxis2=dict(overlaying="x", range=[0, 1], visible=False))
                set_title(fig, f"{title}<br><sup>dashed: the base (100%); a little above is noise around "
                               "the base</sup>", width=SMALL_MULTIPLE)
        if fig.layout.title.text and "<br>" not in fig.layout.title.text:  # a plain title, wrapped for the grid
            set_title(fig, fig.layout.title.text, width=SMALL_MULTIPLE)
        # Nine bars in a small multiple: a label that does not fit its bar at a readable size is left
        # to the hover and the table (plotly shrank them to 1-8 px, unreadable).
        fig.update_layout(height=320, margin=dict(l=60, r=15, b=70), showlegend=False,
                          uniformtext=dict(minsize=LABEL_MIN_SIZE, mode="hide"))
        fig.update_xaxes(title_text=None, tickangle=-30)
        figures[name] = fig
    return figures


# Two curves closer than this at every evaluation after step 0 read as one at the chart's size
# (about 1% of the CKA axis, half an accuracy point): the later one is drawn over the earlier
# with open markers and a dashed line, the subtitle says so and each hover gives both values.
COINCIDE_KEPT, COINCIDE_POINTS = 0.01, 0.5
OVER_STYLES = (("diamond-open", 13, "dash", "open diamonds, dashed"),
               ("square-open", 15, "dot", "open squares, dotted"),
               ("circle-open", 17, "dashdot", "open circles, dash-dot"))


def _points(trace: Any) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(trace.x if trace.x is not None else (),
                                                 trace.y if trace.y is not None else ())]


def _coincide(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Whether curves a and b lie on each other at every evaluation after step 0 (where all start)."""
    if len(a) != len(b) or len(a) < 2:
        return False
    return all(abs(xa - xb) <= COINCIDE_KEPT and abs(ya - yb) <= COINCIDE_POINTS
               for (xa, ya), (xb, yb) in list(zip(a, b))[1:]
               if all(math.isfinite(v) for v in (xa, ya, xb, yb)))


def _show_coinciding(fig: go.Figure) -> list[str]:
    """Give a curve that would hide under an earlier one its own open markers and dashes (the values
    stay exact: nothing is moved), add the other's true values to each hover; what the subtitle says."""
    notes, drawn, over_count = [], [], {}
    for trace in fig.data:
        points = _points(trace)
        under = next((t for t in drawn if _coincide(_points(t), points)), None)
        drawn.append(trace)
        if under is None:
            continue
        n = over_count.get(under.name, 0)
        over_count[under.name] = n + 1
        symbol, size, dash, words = OVER_STYLES[min(n, len(OVER_STYLES) - 1)]
        trace.marker.update(symbol=symbol, size=size, line=dict(width=2, color=trace.marker.color))
        trace.line.dash = dash
        for here, there in ((trace, under), (under, trace)):
            extra = [f"{there.name} here: CKA {x:.4g}, accuracy {y:.1f}%" for x, y in _points(there)]
            here.text = ([f"{t}<br>{e}" for t, e in zip(here.text, extra)] if here.text is not None else extra)
            if "%{text}" not in (here.hovertemplate or ""):
                here.hovertemplate = (here.hovertemplate or "").replace("<extra>", "<br>%{text}<extra>")
        notes.append(f"{trace.name}, {words}, lies on {under.name}")
    return notes


def kept_figure(result: CompareResult) -> go.Figure:
    """Accuracy against representation similarity to the base (CKA) over training.

    Curves that coincide stay at their true values; the later one is drawn over the earlier with
    open markers and a dashed line, named in the subtitle (``_show_coinciding``)."""
    labels = result.labels()
    curves = {labels.get(k, k): {"kept": c["kept"], "accuracy": c["accuracy"], "step": c["step"]}
              for k, c in result.curves.items() if c.get("step")}
    fig = accuracy_vs_kept(curves, "representation kept: linear CKA to the base model",
                           title="Accuracy vs representation kept (CKA) over training<br><sup>each point an evaluation, "
                                 "starting at step 0 (CKA 1, left); up and to the left is better</sup>")
    colors = {labels.get(k, k): _color(k) for k in result.curves}
    spreads = {labels.get(k, k): c.get("accuracy_sd") for k, c in result.curves.items()}
    for trace in fig.data:
        if colors.get(trace.name):
            trace.line.color = colors[trace.name]
            trace.marker.color = colors[trace.name]
        sd = spreads.get(trace.name)
        if sd and any(math.isfinite(v) for v in sd):
            trace.error_y = dict(type="data", array=[100 * v if math.isfinite(v) else 0 for v in sd],
                                 visible=True, thickness=1, width=3)
    if len(result.seeds) > 1:
        set_title(fig, "Accuracy vs representation kept (CKA) over training<br><sup>mean over seeds "
                       f"{_seed_list(result)} at each evaluation (bars: ± sd of accuracy)</sup><br><sup>"
                       "starting at step 0 (CKA 1, left); up and to the left is better</sup>")
    notes = _show_coinciding(fig)
    if notes:
        set_title(fig, fig.layout.title.text + "<br><sup>" + "; ".join(notes) + " (hover for both)</sup>")
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


SPREAD_RULE = ("a gap counts as supported by the spread when it is larger than the two methods' sds "
               "added together (an accuracy's sd counted as at least one held-out example, so that "
               "seeds that all score the same do not make every gap look real); a smaller one is not "
               "separated by these seeds")


def gap_supported(a: float, sd_a: float, b: float, sd_b: float, floor: float = 0.0) -> bool | None:
    """Whether |a − b| exceeds sd_a + sd_b, each sd at least `floor` (SPREAD_RULE); None when a
    spread is unknown (one run)."""
    if not all(math.isfinite(v) for v in (a, sd_a, b, sd_b)):
        return None
    return abs(a - b) > max(sd_a, floor) + max(sd_b, floor)


def _floor(result: CompareResult, name: str) -> float:
    """The smallest sd an accuracy is judged with: one held-out example (0 for other columns)."""
    size = _heldout_size(result) if name == "accuracy" else None
    return 1.0 / size if size else 0.0


def _pct(row: Any, name: str) -> str:
    """A percentage column as text: mean ± sd with several seeds, the value for one run (as the table)."""
    return cell(row, name) + "%"


def _count(n: int) -> str:
    """21470 -> 21K, 22713986 -> 22.7M: parameter counts at a glance."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.0f}K" if n >= 10_000 else f"{n:,}"


def _seed_list(result: CompareResult) -> str:
    return ", ".join(str(s) for s in result.seeds)


def _changes_encoder(row: Any) -> bool:
    return row.orth_dev_kind != ORTH_UNTOUCHED and row.method != "head"


def summary_markdown(result: CompareResult) -> str:
    """What a comparison can and cannot tell, in a few short paragraphs.

    One seed per method: the leader is "highest in this run", with the size of
    a gap that seed noise alone produces, and no winner is crowned.  Rows that
    carry several seeds (``n_seeds`` > 1 and ``accuracy_sd``): mean ± sd, the
    rule a gap must pass (SPREAD_RULE) and which gaps to the leader pass it.
    Then what each method wins (`wins_markdown`), why qGOFT can be less
    orthogonal than LoRA by this measure, and skill kept above 100%.
    """
    rows = [r for r in result.rows if math.isfinite(r.accuracy)]
    if not rows:
        return "No finished methods yet."
    best = max(rows, key=lambda r: r.accuracy)
    multi = all(_n_seeds(r) > 1 and math.isfinite(_sd(r, "accuracy")) for r in rows)
    floor = _floor(result, "accuracy")
    # Rows level with the best at the precision shown (and no gap the spread supports) lead with it.
    top = [best] + [r for r in rows if r is not best and _level(best, r, "accuracy", floor)]
    lines: list[str] = []
    if multi:
        counts = sorted({_n_seeds(r) for r in rows})
        runs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        seeds = f"seeds {_seed_list(result)}" if len(result.seeds) > 1 else f"{runs} seeds"
        leaders = (f"Highest mean accuracy: **{best.label}** ({_pct(best, 'accuracy')})" if len(top) == 1 else
                   "Highest mean accuracy, tied at the precision shown: "
                   + " and ".join(f"**{r.label}** ({_pct(r, 'accuracy')})" for r in top))
        lines.append(f"Every number is the **mean ± sd over {seeds}** ({runs} runs per method; sd: the "
                     f"sample standard deviation). {leaders}; {SPREAD_RULE}.")
        clear = [r for r in rows if r not in top and gap_supported(best.accuracy, _sd(best, "accuracy"),
                                                                  r.accuracy, _sd(r, "accuracy"), floor)]
        within = [r for r in rows if r not in top and r not in clear]
        if clear:
            lines.append(("Its" if len(top) == 1 else "Their") + " lead is supported over " + ", ".join(f"{r.label} ({_pct(r, 'accuracy')})"
                                                                   for r in clear) + ".")
        if within:
            lines.append(f"Within the spread of {'it' if len(top) == 1 else 'them'} (not separated by these seeds): "
                         + ", ".join(f"{r.label} ({_pct(r, 'accuracy')})" for r in within) + ".")
    else:
        noise = 100 * _noise(result, rows)
        close = [r for r in rows if r is not best and best.accuracy - r.accuracy < noise / 100]
        lines.append(f"**One seed per method** (seed {result.seed}): each number is a single run, so "
                     "a small gap ranks nothing.")
        close = [r for r in close if r not in top]
        leaders = (f"**{best.label}**" if len(top) == 1 else
                   " and ".join(f"**{r.label}**" for r in top) + " (tied at the precision shown)")
        lines.append(f"Highest in this run: {leaders} ({100 * best.accuracy:.1f}%; one seed: "
                     f"differences below ~{noise:.0f} points are within seed noise)"
                     + (f", with {', '.join(r.label for r in close)} within that." if close else "."))
    paragraphs = [" ".join(lines), wins_markdown(result), _orthogonality_note(rows)]
    notes = []
    above = [r for r in rows if math.isfinite(r.retention_kept) and round(100 * r.retention_kept, 1) > 100.0]
    if above:
        notes.append("Skill kept above 100% (" + ", ".join(f"{r.label} {_pct(r, 'retention_kept')}" for r in above)
                     + ") means the tuned model scored a little higher than the base on the retention probe: "
                       "noise around the base's own score (the probe is a few hundred sentence pairs), not a "
                       "gain.")
    base = next((r.retention_base for r in rows if math.isfinite(r.retention_base)), math.nan)
    if math.isfinite(base):
        notes.append(f"(The untuned base model's retention Spearman is {base:.3f}.)")
    paragraphs.append(" ".join(notes))
    return "\n\n".join(p for p in paragraphs if p)


# (column, what winning it means, higher is better)
_CONTESTS: list[tuple[str, str, bool]] = [
    ("accuracy", "highest accuracy", True),
    ("retention_kept", "most of the base's skill kept", True),
    ("cka", "representation closest to the base", True),
    ("trainable_params", "fewest trainable parameters", False),
]  # not speed: seconds per step follow the machine's load and threads, not the method alone


_MORE_DIGITS = 4  # at most this many more, to tell apart two numbers whose gap the spread supports


def _shown_mean(row: Any, name: str, digits: int | None = None) -> str:
    """Column `name` of `row` as the summary writes its mean (exact for parameter counts)."""
    value = getattr(row, name)
    if name == "trainable_params":
        return str(int(value))
    return format_value(name, value, digits)


def _level(a: Any, b: Any, name: str, floor: float = 0.0) -> bool:
    """Whether rows a and b cannot be ranked on `name`: equal, or the same at the precision the
    summary shows with no gap that the spread supports (SPREAD_RULE; one run each has none)."""
    if getattr(a, name) == getattr(b, name):
        return True
    return _shown_mean(a, name) == _shown_mean(b, name) and _verdict(name, a, b, floor) is not True


def _digits_apart(a: Any, b: Any, name: str) -> int | None:
    """Decimals that make a and b read differently: None when the summary's own do; more (up to
    _MORE_DIGITS) for a gap the spread supports that the usual precision would round away."""
    if name == "trainable_params" or _shown_mean(a, name) != _shown_mean(b, name):
        return None
    for digits in range(_digits(name) + 1, _digits(name) + _MORE_DIGITS + 1):
        if _shown_mean(a, name, digits) != _shown_mean(b, name, digits):
            return digits
    return _digits(name) + _MORE_DIGITS


def _value_text(row: Any, name: str, digits: int | None = None) -> str:
    """The table's cell (`cell`) with its unit: the summary writes every number as the table does."""
    if name == "trainable_params":
        return _count(row.trainable_params)
    text = cell(row, name, digits)
    if name in _PERCENT:
        return text + "%"
    return text + (" s" if name == "sec_per_step" else "")


_VERDICTS = {True: "a gap the spread supports", False: "not separated by the spread", None: "one run each"}


def _verdict(name: str, a: Any, b: Any, floor: float = 0.0) -> bool | None:
    """SPREAD_RULE on column `name` of rows a and b."""
    return gap_supported(getattr(a, name), _sd(a, name), getattr(b, name), _sd(b, name), floor)


def _separated(name: str, a: Any, b: Any, floor: float = 0.0, noise: float | None = None) -> bool:
    """Whether rows a and b are told apart on column `name`, so that one can be named ahead.

    Parameter counts are exact: any difference. Measured columns with a spread for both rows:
    SPREAD_RULE (`gap_supported`). One run each: an accuracy gap of at least the seed noise
    (`noise`, a fraction; the summary's "differences below ~N points are within seed noise");
    the other measures have no spread from one run, so nothing separates them."""
    va, vb = getattr(a, name), getattr(b, name)
    if va == vb:
        return False
    if name == "trainable_params":
        return True
    verdict = _verdict(name, a, b, floor)
    if verdict is not None:
        return verdict
    return name == "accuracy" and noise is not None and abs(va - vb) >= noise


def _gap_words(name: str, a: Any, b: Any, floor: float = 0.0, noise: float | None = None) -> str:
    """How the gap between rows a and b was judged, in words."""
    verdict = _verdict(name, a, b, floor)
    if verdict is not None:
        return _VERDICTS[verdict]
    if name == "accuracy" and noise is not None:
        where = "beyond" if _separated(name, a, b, floor, noise) else "within"
        return f"one run each, {where} the ~{100 * noise:.0f}-point seed noise"
    return "one run each: no spread to rank them by"


def _win_clause(name: str, what: str, winner: Any, ranked: list, lora: Any, floor: float = 0.0,
                noise: float | None = None) -> str:
    """"most of the base's skill kept, 99.4 ± 0.2% with 21K trainable parameters, against LoRA's …".

    Only for a winner told apart from every other row (`_separated`) or exactly equal to those it
    is not (they share the win); a runner-up whose gap the usual precision would hide is shown with
    more decimals. LoRA is named once: as "next" when it is the runner-up, else "against"."""
    shared = [r for r in ranked if r is not winner and getattr(r, name) == getattr(winner, name)]
    runner = next((r for r in ranked if r is not winner and r not in shared), None)
    digits = _digits_apart(winner, runner, name) if runner is not None and not shared else None
    text = f"{what}, {_value_text(winner, name, digits)}"
    if name == "retention_kept":
        text += f" with {_count(winner.trainable_params)} trainable parameters"
    said_next = runner is not None and name != "trainable_params" and not shared
    lora_words = None
    if (lora is not None and lora is not winner and lora not in shared and name != "cka"
            and not (said_next and lora is runner)):
        text += f", against LoRA's {_value_text(lora, name)}"
        if name == "retention_kept":
            text += f" with {_count(lora.trainable_params)}"
        if name != "trainable_params":
            lora_words = _gap_words(name, winner, lora, floor, noise)
            text += f" ({lora_words})"
    if shared:
        text += f" (shared with {', '.join(r.label for r in shared)})"
    elif said_next:
        words = _gap_words(name, winner, runner, floor, noise)
        text += f" (next: {runner.label}, {_value_text(runner, name, digits)}: " \
                f"{'likewise' if words == lora_words and words.startswith('one run') else words})"
        # (one seed: the same long noise phrase twice in one clause read as a slip)
    return text


def _undecided_clause(name: str, what: str, group: list, floor: float = 0.0, noise: float | None = None) -> str:
    """"highest accuracy: GOFT 81.2%, qGOFT 80.4% (one run each, within the ~4-point seed noise)"."""
    values = ", ".join(f"{r.label} {_value_text(r, name)}" for r in group)
    return f"{what}: {values} ({_gap_words(name, group[0], group[-1], floor, noise)})"


def _noise(result: CompareResult, rows: list) -> float:
    """The seed noise of one run's accuracy as a fraction (`seed_noise_points` at the median)."""
    return seed_noise_points(result, float(np.median([r.accuracy for r in rows]))) / 100


def wins_markdown(result: CompareResult) -> str:
    """A bullet per method: what it is best at among the methods, with numbers from the rows.

    Accuracy is contested by every method; skill kept, CKA, parameters and
    speed only by the methods that change the encoder (head only keeps it by
    construction and gets its own line). Orthogonality is a shared win: every
    method whose deviation is within the app's tolerance and whose energy
    drift is inside the float32 rounding band is orthogonal up to rounding.
    """
    rows = [r for r in result.rows if math.isfinite(r.accuracy)]
    if not rows:
        return ""
    adapters = [r for r in rows if _changes_encoder(r)]
    lora = next((r for r in adapters if r.key == "lora" or (r.method == "lora" and r.key not in COMPARE_METHODS)), None)
    wins: dict[str, list[str]] = {r.key: [] for r in rows}
    multi = len(result.seeds) > 1 or any(_n_seeds(r) > 1 for r in rows)
    noise = _noise(result, rows)
    undecided: list[str] = []
    for name, what, higher in _CONTESTS:
        pool = [r for r in (rows if name == "accuracy" else adapters) if math.isfinite(getattr(r, name))]
        if len(pool) < 2:
            continue
        ranked = sorted(pool, key=lambda r: getattr(r, name), reverse=higher)
        floor = _floor(result, name)
        leader = ranked[0]
        # The leader and every row it is not told apart from (SPREAD_RULE, or one run's seed noise).
        group = [leader] + [r for r in ranked[1:] if not _separated(name, leader, r, floor, noise)]
        if any(getattr(r, name) != getattr(leader, name) for r in group):
            undecided.append(_undecided_clause(name, what, group, floor, noise))  # no winner named
            continue
        for winner in group:  # the leader, and any exactly equal to it: a shared win
            wins[winner.key].append(_win_clause(name, what, winner, ranked, lora, floor, noise))
    exact = [r for r in adapters if r.orth_dev_kind != ORTH_LEAST_SQUARES and math.isfinite(r.orth_dev)
             and r.orth_dev <= ORTH_TOLERANCE and math.isfinite(r.he_drift) and abs(r.he_drift) <= ENERGY_ROUNDING]
    for row in exact:
        wins[row.key].append(f"orthogonal up to rounding (deviation {cell(row, 'orth_dev')})")
    head = ("**What each method wins** (best mean, told apart from every other by the rule above)"
            if multi else f"**What each method wins in this run** (one seed: an accuracy gap below the "
                          f"~{100 * noise:.0f}-point seed noise ranks nothing, and skill kept and CKA, which "
                          "one run gives no spread for, are not ranked)")
    if exact:
        head += (f"; orthogonal up to rounding: deviation ≤ {ORTH_TOLERANCE:g} and energy drift inside the "
                 "float32 rounding band")
    head += ":"
    bullets = [f"- **{r.label}**: " + "; ".join(wins[r.key]) + "." for r in rows if wins[r.key] and _changes_encoder(r)]
    for r in rows:
        if not _changes_encoder(r):
            extra = "; ".join(wins[r.key])
            bullets.append(f"- **{r.label}** leaves the encoder untouched, so it keeps all of the base's skill and "
                           f"its representation by construction, with {_count(r.trainable_params)} trainable "
                           f"parameters and {_value_text(r, 'accuracy')} accuracy" + (f" ({extra})" if extra else "")
                           + ".")
    if undecided:
        bullets.append("- **No winner** (not told apart): " + "; ".join(undecided) + ".")
    losers = [r.label for r in rows if not wins[r.key] and _changes_encoder(r)]
    if losers:
        bullets.append(f"- First on none of these: {', '.join(losers)}.")
    return head + "\n" + "\n".join(bullets)


def _orthogonality_note(rows: list) -> str:
    """Why a qGOFT row's deviation can exceed LoRA's (said only where the rows show it)."""
    lora = next((r for r in rows if r.key == "lora" and math.isfinite(r.orth_dev)), None)
    if lora is None:
        return ""
    higher = [r for r in rows if r.method == "qgoft" and math.isfinite(r.orth_dev) and r.orth_dev > lora.orth_dev]
    if not higher:
        return ""

    def dev(row: Any) -> str:
        return cell(row, "orth_dev")  # as the table writes it

    supported = [gap_supported(r.orth_dev, _sd(r, "orth_dev"), lora.orth_dev, _sd(lora, "orth_dev")) for r in higher]
    verdict = (" (gaps the spread supports)" if all(supported) else "") if None not in supported else ""
    names = " and ".join(f"{r.label}'s ({dev(r)})" for r in higher)
    deviation = "orthogonality deviations are" if len(higher) > 1 else "orthogonality deviation is"
    return (f"**Less orthogonal than LoRA by this measure:** {names} {deviation} larger than "
            f"LoRA's ({dev(lora)}){verdict}. qGOFT's penalty only keeps each block's two columns perpendicular; "
            "their lengths are free and compound through the levels of the tree, so its input operator scales "
            "the inputs unevenly, and the deviation counts that scale (a larger λ does not shrink it). LoRA's "
            "number is its least-squares input operator's, on the layers where that is well determined (the "
            "MLP up-projections), where its small low-rank update stays close to the identity.")


def describe(result: CompareResult) -> str:
    """One line (Markdown): what the comparison is (task, seeds, budget, when and where it was made)."""
    meta = result.meta
    made = meta.get("created", "")
    where = meta.get("device", "")
    seeds = (f"seeds {_seed_list(result)} (mean ± sd)" if len(result.seeds) > 1 else f"seed {result.seed}")
    parts = [f"task **{result.task}**", seeds, f"{result.steps} steps per method",
             f"batch {meta.get('batch_size', '?')}", f"model `{result.model}`"]
    if made:
        parts.append(f"made {made[:10]}")
    if where:
        parts.append(f"on {where}")
    return ", ".join(parts)


def method_choices() -> list[tuple[str, str]]:
    """(label, key) pairs for a method picker."""
    return [(f"{m.label}", k) for k, m in COMPARE_METHODS.items()]
