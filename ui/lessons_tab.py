"""Lessons tab: teaching presets that play back finished runs instantly.

A preset (``demos.presets``) is two real training runs made once by
``demos/make_precomputed_lessons.py``. The tab shows them side by side with
the Train tab's charts (loss, angle heatmap, energy drift, orthogonality) at
one point of a timeline, plus a shared "what was kept" chart, and a sentence
on what to notice. "Play" walks the timeline; the slider scrubs it.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator
from functools import lru_cache

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from demos.presets import PRESETS, PrecomputedRun, PresetError, load_preset
from qgoft_core.viz import figures as F
from qgoft_core.viz.style import apply_style, empty_figure, set_title, share_top_margin
from demos.learn_texts import CHART_NOTES
from ui.context import AppContext

FRAME_PAUSE_S = 1.2  # nine charts per frame: slower than this and the browser cannot keep up
RUN_COLORS = ("#4C78A8", "#F58518")  # run A blue, run B orange, in every shared chart
WIDE_FIGURE = 600  # px: the narrowest the shared charts are drawn (beside the notes, at 1024 px)
CHARTS = ("loss", "heatmap", "energy", "orth")
CHART_NOTE_KEYS = {"loss": "loss-plot", "heatmap": "angle-heatmap", "energy": "energy-plot",
                   "orth": "orth-plot"}
DEFAULT_PRESET = "strict_vs_quasi"


def _message_figure(title: str, message: str, height: int = 320) -> go.Figure:
    return empty_figure(title, message, height)


def _upto(records: list[dict], step: int) -> list[dict]:
    return [r for r in records if r["step"] <= step]


def _fix_step_axis(fig: go.Figure, last_step: int) -> go.Figure:
    # A fixed step axis: while the timeline plays, curves grow instead of the axis rescaling.
    fig.update_xaxes(range=[-0.02 * last_step, 1.02 * last_step])
    return fig


def _angle_range(run: PrecomputedRun) -> float:
    """Largest |angle| (degrees) the run ever reaches: one colour scale for its whole timeline."""
    peak = max((float(np.nanmax(np.abs(a))) for snap in run.angles for a in snap.values() if a.size),
               default=0.0)
    return math.degrees(peak) or 1.0


def _has_regulariser(run: PrecomputedRun) -> bool:
    return run.method == "qgoft"  # only qGOFT adds a penalty to the loss


def _min_neurons(run: PrecomputedRun) -> int | None:
    counts = [a.size for snap in run.norm_ratio for a in snap.values() if a.size]
    return min(counts) if counts else None


def _finite(values) -> list[float]:
    array = np.asarray([np.nan if v is None else v for v in values], dtype=float).ravel()
    return [float(v) for v in array[np.isfinite(array)]]


def _top(values, margin: float = 1.05) -> float | None:
    finite = _finite(values)
    return margin * max(finite) if finite and max(finite) > 0 else None


def pair_ranges(run_a: PrecomputedRun, run_b: PrecomputedRun) -> dict:
    """One range per quantity for both runs over their whole timelines.

    Paired charts then share their y axes (and the heatmaps their colour
    scale): the lesson reads from the picture, without comparing tick labels,
    and the axes stay put while the timeline plays.
    """
    runs = (run_a, run_b)
    band = F.energy_rounding_level(min(filter(None, (_min_neurons(r) for r in runs)), default=None))
    drift = [abs(v) for r in runs for v in np.asarray(r.he_drift, dtype=float).ravel()]
    orth = [v for r in runs for v in np.asarray(r.orth_dev, dtype=float).ravel()]
    loss = [r_.get(k) for r in runs for records in (r.steps, r.evals) for r_ in records for k in ("loss",)]
    reg = [s.get("reg_loss") for r in runs if _has_regulariser(r) for s in r.steps]
    return {
        "band": band,
        "energy": F.log_range(drift + [band, F.LOG_FLOOR]),
        "orth": F.log_range(orth + [F.ORTH_TOLERANCE]) if _finite(orth) else None,
        "loss": [0.0, _top(loss) or 1.0],
        "reg": [0.0, _top(reg) or 1.0],
        "angle": max(_angle_range(r) for r in runs),
        "regulariser": any(_has_regulariser(r) for r in runs),
    }


@lru_cache(maxsize=16)
def _preset_ranges(key: str) -> dict:
    _, run_a, run_b = load_preset(key)
    return pair_ranges(run_a, run_b)


def run_figures(run: PrecomputedRun, index: int, ranges: dict | None = None) -> dict[str, go.Figure]:
    """The four Train-tab charts of ``run`` at snapshot ``index``.

    ``ranges`` (:func:`pair_ranges` of the two runs shown) gives both columns
    the same y ranges, colour scale and panels; without it the run's own.
    """
    ranges = ranges or pair_ranges(run, run)
    step = run.snapshot_steps[index]
    last = run.snapshot_steps[-1]
    own_reg = _has_regulariser(run)
    loss = _fix_step_axis(F.loss_curves(
        _upto(run.steps, step), _upto(run.evals, step), regulariser=ranges["regulariser"],
        regulariser_note=None if own_reg else f"{run.label}: no regulariser (only qGOFT has a penalty)"), last)
    loss.update_yaxes(range=ranges["loss"], autorange=False, row=1, col=1)
    if ranges["regulariser"]:
        loss.update_yaxes(range=ranges["reg"], autorange=False, row=2, col=1)
    names = run.layer_names
    angles = [run.angles[index][n] for n in names]
    if any(a.size for a in angles):
        heatmap = F.angle_heatmap(names, angles)
        peak = ranges["angle"]
        heatmap.update_traces(zmin=-peak, zmax=peak)
        set_title(heatmap, f"Rotation angles per layer at step {step}<br><sup>colour scale fixed over the run "
                           f"and shared by both columns: ±{_degrees(peak)}</sup>")
    else:
        heatmap = _message_figure("Rotation angles per layer",
                                  f"{run.label}: this method has no Givens rotations, so no angles.")
    energy = _fix_step_axis(F.energy_drift_over_steps(*run.series("he_drift", index),
                                                      rounding=ranges["band"]), last)
    energy.update_yaxes(range=ranges["energy"], autorange=False)
    if np.isfinite(run.orth_dev).any():
        orth = _fix_step_axis(F.orthogonality_over_steps(*run.series("orth_dev", index)), last)
        if ranges["orth"]:
            orth.update_yaxes(range=ranges["orth"], autorange=False)
    else:
        orth = _message_figure("Orthogonality deviation per layer",
                               f"{run.label}: an additive update has no rotation operator M, "
                               "so ‖MᵀM − I‖ is not defined.")
    return {"loss": loss, "heatmap": heatmap, "energy": energy, "orth": orth}


def _padded(values: list[float], pad: float = 0.08) -> list[float]:
    """[lo, hi] around ``values`` and 1 (the base), with a margin of ``pad`` of the span."""
    finite = _finite(values) + [1.0]
    lo, hi = min(finite), max(finite)
    margin = pad * (hi - lo) or 0.01
    return [lo - margin, hi + margin]


def kept_ranges(runs: tuple[PrecomputedRun, PrecomputedRun]) -> dict[str, list[float]]:
    """One y range per panel of :func:`kept_figure`, from both runs' whole timelines.

    Fixed for the lesson: while it plays the curves grow inside the axes instead of the
    axes rescaling with each frame (as the step axis, the other lesson charts).
    """
    return {"kept": _padded([r.get("kept") for run in runs for r in run.retention]),
            "cka": _padded([e.get("cka") for run in runs for e in run.evals])}


def kept_figure(runs: tuple[PrecomputedRun, PrecomputedRun], step: int) -> go.Figure:
    """What each run kept of the base model: retention probe and CKA vs step, both runs."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "Retention probe: base skill kept", "Linear CKA to the base"))
    for run, color in zip(runs, RUN_COLORS):
        ret = _upto(run.retention, step)
        evals = _upto(run.evals, step)
        fig.add_trace(go.Scatter(
            x=[r["step"] for r in ret], y=[r["kept"] for r in ret], mode="lines+markers",
            name=run.label, legendgroup=run.run_id, line=dict(color=color),
            hovertemplate=f"{run.label}<br>step %{{x}}<br>kept %{{y:.4f}}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=[e["step"] for e in evals], y=[e.get("cka") for e in evals], mode="lines+markers",
            name=run.label, legendgroup=run.run_id, showlegend=False, line=dict(color=color),
            hovertemplate=f"{run.label}<br>step %{{x}}<br>CKA %{{y:.4f}}<extra></extra>"), row=1, col=2)
    last = max(r.snapshot_steps[-1] for r in runs)
    _fix_step_axis(fig, last)
    fig.update_xaxes(title_text="optimizer step")
    ranges = kept_ranges(runs)
    fig.update_yaxes(title_text="kept (1 = as good as the base)", range=ranges["kept"], autorange=False,
                     row=1, col=1)
    fig.update_yaxes(title_text="CKA (1 = unchanged)", range=ranges["cka"], autorange=False, row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return apply_style(fig, "What the model kept<br><sup>retention: Spearman on the base's sentence-similarity "
                          "pairs, tuned / base</sup>", 380, width=WIDE_FIGURE)


def penalty_figure(runs: tuple[PrecomputedRun, PrecomputedRun], step: int) -> go.Figure:
    """Σ⟨α,β⟩² (what λ multiplies) and the λ-weighted term in the loss, per step, both runs."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "Σ⟨α, β⟩² over all blocks: what the penalty pushes to 0", "λ · Σ⟨α, β⟩²: the term added to the loss"))
    for run, color in zip(runs, RUN_COLORS):
        steps, sums = run.penalty_sums()
        keep = [i for i, s in enumerate(steps) if s <= step]
        lam = float(run.config.get("reg_lambda") or 0.0)
        x = [steps[i] for i in keep]
        for col, values, what in ((1, [sums[i] for i in keep], "Σ⟨α,β⟩²"),
                                  (2, [lam * sums[i] for i in keep], "λ·Σ⟨α,β⟩²")):
            fig.add_trace(go.Scatter(
                x=x, y=[max(v, F.LOG_FLOOR) for v in values], mode="lines", name=run.label,
                legendgroup=run.run_id, showlegend=col == 1, line=dict(color=color),
                hovertemplate=f"{run.label}<br>step %{{x}}<br>{what} %{{y:.3e}}<extra></extra>"), row=1, col=col)
    _fix_step_axis(fig, max(r.snapshot_steps[-1] for r in runs))
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(type="log", exponentformat="e")
    fig.update_yaxes(title_text="Σ⟨α, β⟩² (log)", row=1, col=1)
    fig.update_yaxes(title_text="penalty in the loss (log)", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return apply_style(fig, "What λ controls: the shear of each block", 380, width=WIDE_FIGURE)


def angle_range_figure(runs: tuple[PrecomputedRun, PrecomputedRun], index: int) -> go.Figure:
    """The largest |angle| of any rotation at each snapshot, both runs, with the half turn marked."""
    fig = go.Figure()
    for run, color in zip(runs, RUN_COLORS):
        fig.add_trace(go.Scatter(
            x=run.snapshot_steps[: index + 1], y=run.max_abs_angle_deg()[: index + 1], mode="lines+markers",
            name=run.label, line=dict(color=color),
            hovertemplate=f"{run.label}<br>step %{{x}}<br>max |angle| %{{y:.1f}}°<extra></extra>"))
    last = max(r.snapshot_steps[-1] for r in runs)
    fig.add_trace(go.Scatter(x=[0, last], y=[180, 180], mode="lines", name="half turn (180°)",
                             line=dict(color="black", dash="dash", width=1.5), hoverinfo="skip"))
    _fix_step_axis(fig, last)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="largest |angle| over all layers (deg)", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return apply_style(fig, "How far the rotations turned: beyond 180° they wrap around", 380,
                       width=WIDE_FIGURE)


def _at(records: list[dict], step: int, key: str) -> float | None:
    rows = _upto(records, step)
    value = rows[-1].get(key) if rows else None
    return None if value is None else float(value)


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


ANGLE_FORMAT = ".1f"  # degrees, in the summary and the heatmap titles alike: 6.4° beside 4.5°, not 4.48°
RETENTION_NOTE = ("Retention kept above 1 ({values}) means the tuned model scored a little higher than the "
                  "base on the retention probe: noise around the base's own score (the probe is a few hundred "
                  "sentence pairs), not a gain.")


def _degrees(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:{ANGLE_FORMAT}}°"


def summary_markdown(runs: tuple[PrecomputedRun, PrecomputedRun], index: int) -> str:
    """A small A/B table of the numbers at the current step."""
    rows: dict[str, list[str]] = {k: [] for k in (
        "method", "trainable parameters (with head)", "held-out accuracy", "retention kept", "CKA to base",
        "max |angle|", "max |HE drift|", "max orth. deviation", "Σ⟨α, β⟩² (qGOFT blocks)")}
    for run in runs:
        step = run.snapshot_steps[index]
        peak = run.max_abs_angle_deg()[index]
        orth = run.orth_dev[index]
        penalty_steps, sums = run.penalty_sums()
        penalty = next((v for s, v in zip(reversed(penalty_steps), reversed(sums)) if s <= step),
                       0.0 if penalty_steps else None)
        count = run.trainable_parameters
        rows["method"].append(run.label)
        rows["trainable parameters (with head)"].append(f"{count:,}" if count is not None else "–")
        rows["held-out accuracy"].append(_fmt(_at(run.evals, step, "accuracy"), ".1%"))
        rows["retention kept"].append(_fmt(_at(run.retention, step, "kept"), ".4f"))
        rows["CKA to base"].append(_fmt(_at(run.evals, step, "cka"), ".4f"))
        rows["max |angle|"].append(_degrees(peak))
        rows["max |HE drift|"].append(_fmt(float(np.nanmax(np.abs(run.he_drift[index]))), ".2e"))
        rows["max orth. deviation"].append(
            _fmt(float(np.nanmax(orth)) if np.isfinite(orth).any() else None, ".2e"))
        rows["Σ⟨α, β⟩² (qGOFT blocks)"].append(_fmt(penalty, ".3e"))
    step = runs[0].snapshot_steps[index]
    lines = [f"**At step {step}**", "", "| | A | B |", "| --- | --- | --- |"]
    # "|" inside a cell would split it: escape it
    lines += [f"| {name.replace('|', chr(92) + '|')} | {a} | {b} |" for name, (a, b) in rows.items()]
    above = [f"{side}: {value}" for side, value in zip("AB", rows["retention kept"])
             if value != "–" and float(value) > 1.0]
    if above:  # the number is in the table: its explanation goes right under it
        lines += ["", RETENTION_NOTE.format(values=", ".join(above))]
    return "\n".join(lines)


# Process-wide on purpose: the shipped presets are read-only content, the same for every visitor and
# every app in the process. Bounded by maxsize (64 frames of 9-10 figures); owned by this module.
@lru_cache(maxsize=64)
def render_frame(key: str, index: int) -> tuple:
    """Everything the tab shows for preset ``key`` at snapshot ``index`` (cached: presets never change)."""
    preset, run_a, run_b = load_preset(key)
    index = max(0, min(len(run_a.snapshot_steps) - 1, int(index)))
    ranges = _preset_ranges(key)
    figs_a, figs_b = run_figures(run_a, index, ranges), run_figures(run_b, index, ranges)
    for chart in CHARTS:  # titles of different lengths: the plot areas still start level
        share_top_margin([figs_a[chart], figs_b[chart]])
    step = run_a.snapshot_steps[index]
    charts = [fig for chart in CHARTS for fig in (figs_a[chart], figs_b[chart])]
    extra = None
    if preset.extra == "penalty":
        extra = penalty_figure((run_a, run_b), step)
    elif preset.extra == "angles":
        extra = angle_range_figure((run_a, run_b), index)
    return (summary_markdown((run_a, run_b), index), *charts, kept_figure((run_a, run_b), step), extra)


def _step_index(key: str, step: float) -> int:
    _, run_a, _ = load_preset(key)
    steps = np.asarray(run_a.snapshot_steps)
    return int(np.argmin(np.abs(steps - float(step))))


def lesson_view(key: str, step: float) -> dict:
    """Named values for preset ``key`` at the snapshot nearest ``step``; PresetError if unavailable."""
    chosen, run_a, run_b = load_preset(key)
    steps = run_a.snapshot_steps
    summary, *charts, kept, extra = render_frame(key, _step_index(key, step))
    return {
        "notice": f"### {chosen.title}\n**What to notice.** {chosen.notice}",
        "head_a": f"### A: {run_a.label}",
        "head_b": f"### B: {run_b.label}",
        "summary": summary,
        "charts": charts,
        "kept": kept,
        "extra": extra,
        "steps": steps,
    }


def _error_text(err: Exception) -> str:
    return f"**This lesson cannot be shown:** {err}"


def build_lessons_tab(ctx: AppContext) -> None:
    """Preset picker, transport and timeline on top; the two runs' charts side by side below."""
    try:
        first, first_error = lesson_view(DEFAULT_PRESET, 10**9), None
    except PresetError as err:  # missing files: the tab says so, the rest of the app works
        first, first_error = None, _error_text(err)
    steps = first["steps"] if first else [0, 60]
    gr.Markdown("## Lessons\nEach lesson replays two finished training runs of the real engine "
                "(the offline MiniLM on the built-in sentiment task, 60 steps) side by side. "
                "Pick one, press **Play** or drag the timeline, and read what to notice.")
    preset = gr.Radio([(p.title, p.key) for p in PRESETS.values()], value=DEFAULT_PRESET,
                      label="lesson", elem_id="lessons-preset")
    notice = gr.Markdown(first["notice"] if first else "", elem_id="lessons-notice")
    with gr.Row(equal_height=True):
        play = gr.Button("▶ Play", variant="primary", scale=0, min_width=110, elem_id="lessons-play")
        pause = gr.Button("Pause", scale=0, min_width=110, elem_id="lessons-pause")
        timeline = gr.Slider(steps[0], steps[-1], value=steps[-1], step=steps[1] - steps[0],
                             label="timeline (optimizer step)", elem_id="lessons-timeline", scale=4)
    error = gr.Markdown(first_error or "", visible=first_error is not None, elem_id="lessons-error")
    with gr.Row(equal_height=False):
        summary = gr.Markdown(first["summary"] if first else "", elem_id="lessons-summary")
        kept = gr.Plot(first["kept"] if first else None, show_label=False, elem_id="lessons-kept", scale=2)
    with gr.Row():
        head_a = gr.Markdown(first["head_a"] if first else "", elem_id="lessons-run-a")
        head_b = gr.Markdown(first["head_b"] if first else "", elem_id="lessons-run-b")
    plots: list[gr.Plot] = []
    for chart in CHARTS:
        note = CHART_NOTES[CHART_NOTE_KEYS[chart]]
        gr.Markdown(f"**{note['see']}** {note['notice']}", elem_classes=["lessons-chart-note"])
        with gr.Row(equal_height=False):
            for side in ("a", "b"):
                value = first["charts"][len(plots)] if first else None
                plots.append(gr.Plot(value, show_label=False, elem_id=f"lessons-{chart}-{side}"))
    extra = gr.Plot(first["extra"] if first else None, show_label=False, elem_id="lessons-extra",
                    visible=bool(first and first["extra"]))
    frame_outputs = [summary, *plots, extra, kept]
    all_outputs = [error, notice, head_a, head_b, timeline, *frame_outputs]

    def show(key: str, step: float) -> dict:
        try:
            view = lesson_view(key, step)
        except PresetError as err:
            return {error: gr.update(value=_error_text(err), visible=True)}
        return {error: gr.update(visible=False), notice: view["notice"], head_a: view["head_a"],
                head_b: view["head_b"], summary: view["summary"], kept: view["kept"],
                extra: gr.update(value=view["extra"], visible=view["extra"] is not None),
                **dict(zip(plots, view["charts"]))}

    def pick(key: str) -> dict:
        """A new lesson opens at its last step: the finished runs."""
        out = show(key, 10**9)
        if notice in out:
            _, run_a, _ = load_preset(key)
            s = run_a.snapshot_steps
            out[timeline] = gr.update(value=s[-1], minimum=s[0], maximum=s[-1], step=s[1] - s[0])
        return out

    def play_timeline(key: str, step: float) -> Iterator[dict]:
        """Walk the timeline from the current step (from the start when already at the end)."""
        try:
            _, run_a, _ = load_preset(key)
        except PresetError as err:
            yield {error: gr.update(value=_error_text(err), visible=True)}
            return
        s = run_a.snapshot_steps
        start = _step_index(key, step)
        for i in range(0 if start >= len(s) - 1 else start, len(s)):
            began = time.monotonic()
            frame = {**show(key, s[i]), timeline: s[i]}
            yield frame
            if i < len(s) - 1:  # a frame drawn for the first time took part of the pause already
                time.sleep(max(0.0, FRAME_PAUSE_S - (time.monotonic() - began)))

    # a frame is drawn once (a few seconds of plotly work) and then served from the cache
    pool = {"concurrency_id": "lessons", "concurrency_limit": 2, "api_visibility": "private"}
    preset.change(pick, preset, all_outputs, show_progress="hidden", **pool)
    # .input, not .change: the play loop moves the slider itself and must not trigger a redraw
    timeline.input(show, [preset, timeline], all_outputs, trigger_mode="always_last",
                   show_progress="hidden", **pool)
    playing = play.click(play_timeline, [preset, timeline], all_outputs, show_progress="hidden",
                         concurrency_limit=None, api_visibility="private")
    pause.click(None, None, None, cancels=[playing])
