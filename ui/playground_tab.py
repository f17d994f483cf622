"""Givens playground tab: a handful of toy neurons turned by hand (numpy only, instant).

Everything shown comes from ``qgoft_core.viz.playground.playground_view``; this
module only lays out the controls and wires them. Every control change
redraws at once; "Play the tree levels" applies level 1, 2, ... with a short
pause between them so the order of the tree can be watched.
"""
from __future__ import annotations

import html
import math
import time
from collections.abc import Iterator

import gradio as gr

from demos.learn_texts import CHART_NOTES, LATEX_DELIMITERS
from qgoft_core.viz.playground import playground_view, tree_pairs
from ui.context import AppContext

MAX_D = 4
MAX_ANGLES = MAX_D - 1
DEFAULT_ANGLES = (30.0, -45.0, 60.0)
LEVEL_PAUSE_S = 1.0  # long enough to see each level land
KIND_CHOICES = [
    ("Givens rotation (GOFT)", "givens"),
    ("LoRA-like additive update", "lora"),
    ("quasi-Givens blocks: free shear and column lengths (qGOFT)", "quasi"),
]
STRENGTH_LABELS = {
    "givens": "strength (unused: a rotation has only its angles)",
    "lora": "LoRA scale s in W' = W + s·u vᵀ",
    "quasi": "shear s of every block (⟨α, β⟩ = a·b·s: what the penalty sees)",
}
SCALE_LABELS = {
    "alpha": "length a of column α of every block (qGOFT only; the penalty ignores it)",
    "beta": "length b of column β of every block (qGOFT only; ‖β‖ = b·√(1 + s²))",
}
SCALE_RANGE = (0.5, 2.0)


def angle_labels(d: int) -> list[str]:
    """Slider labels naming the pair and level each angle belongs to (level by level)."""
    labels = []
    for level, pairs in enumerate(tree_pairs(d), start=1):
        for i, j in pairs:
            labels.append(f"θ{len(labels) + 1}: rotate coordinates ({i}, {j}), level {level} (degrees)")
    return labels


def _format_rel(rel: float) -> str:
    if not math.isfinite(rel):
        return "∞ (two neurons collapsed onto each other)"
    if abs(rel) < 1e-12:
        return "0 (|change| < 1e-12: rounding only)"
    return f"{rel:+.3%}"


_CELL = "padding:4px 8px;border:1px solid #ddd;text-align:center;"


def _verdict(view: dict) -> tuple[bool, str]:
    """(energy kept?, why), from the view's own numbers."""
    rel = view["energy_rel_change"]
    kept = math.isfinite(rel) and abs(rel) < 1e-12
    deviation, block = view.get("operator_deviation"), view.get("block")
    if view.get("operator") is None:  # the LoRA-like update
        return kept, ("kept: at strength 0 the additive update adds nothing" if kept
                      else "changed: an additive update is not one orthogonal map applied to every neuron")
    if kept and deviation is not None and deviation < 1e-9:
        return kept, "kept: every neuron gets the same rotation"
    if kept and view.get("uniform_scale"):
        return kept, (f"kept: M is not orthogonal (‖MᵀM − I‖_F = {deviation:.3g}) but a rotation times one "
                      "common scale, which changes no angle between neurons")
    if kept:
        return kept, "kept (to rounding)"
    zero_penalty = block is not None and view.get("update_kind") == "quasi" and block["penalty"] == 0
    return kept, ("changed: M is not a rotation, nor a rotation times one common scale"
                  + (", although the penalty Σ⟨α, β⟩² is exactly 0" if zero_penalty else ""))


def _table_row(cells: list[tuple[str, str, str]]) -> str:
    head = "".join(f'<th style="{_CELL}">{html.escape(name)}</th>' for name, _, _ in cells)
    values = "".join(f'<td class="{cls}" style="{_CELL}font-size:1.1em">{html.escape(value)}</td>'
                     for _, value, cls in cells)
    return f"<tr>{head}</tr><tr>{values}</tr>"


def energy_readout(view: dict) -> str:
    """A small HTML table: energy before/after, relative change, largest pairwise-angle change;
    for quasi-Givens blocks also ⟨α, β⟩, the penalty sum and the column lengths."""
    e0, e1 = view["energy_before"], view["energy_after"]
    dmax = view["max_angle_change_deg"]
    dtext = "n/a (a neuron shrank to length 0)" if not math.isfinite(dmax) else (
        "0° (rounding only)" if dmax < 1e-9 else f"{dmax:.3g}°")
    kept, verdict = _verdict(view)
    rows = [_table_row([("energy before", f"{e0:.6f}", "pg-energy-before"),
                        ("energy after", f"{e1:.6f}" if math.isfinite(e1) else "∞", "pg-energy-after"),
                        ("relative change", _format_rel(view["energy_rel_change"]), "pg-energy-rel"),
                        ("largest change of a pairwise angle", dtext, "pg-angle-change")])]
    block = view.get("block")
    if block is not None and view.get("update_kind") == "quasi":
        rows.append(_table_row([("⟨α, β⟩ of every block", f"{block['inner']:.4g}", "pg-inner"),
                                ("Σ⟨α, β⟩² (what λ multiplies)", f"{block['penalty']:.4g}", "pg-penalty"),
                                ("‖α‖", f"{block['alpha_norm']:.4g}", "pg-alpha-norm"),
                                ("‖β‖", f"{block['beta_norm']:.4g}", "pg-beta-norm")]))
    colour = "#2e7d32" if kept else "#c62828"
    return (f'<table class="pg-readout" style="width:100%;border-collapse:collapse">{"".join(rows)}</table>'
            f'<p class="pg-verdict" style="color:{colour};margin:.4em 0 0">'
            f"Hyperspherical energy {html.escape(verdict)}.</p>")


def _view(d, n_neurons, a0, a1, a2, kind, strength, seed, alpha_scale=1.0, beta_scale=1.0,
          upto_level=None) -> dict:
    return playground_view(int(d), int(n_neurons), [float(a0), float(a1), float(a2)], kind,
                           float(strength), upto_level, int(seed), float(alpha_scale), float(beta_scale))


def _error_outputs(err: Exception) -> tuple:
    message = f"**Cannot draw this setting:** {err}"
    return gr.skip(), f'<p class="pg-error">{html.escape(str(err))}</p>', message, ""


def render(d, n_neurons, a0, a1, a2, kind, strength, seed, alpha_scale=1.0, beta_scale=1.0) -> tuple:
    """Plot, energy readout, explanation and level status for the current controls (all levels)."""
    try:
        view = _view(d, n_neurons, a0, a1, a2, kind, strength, seed, alpha_scale, beta_scale)
    except ValueError as err:
        return _error_outputs(err)
    status = "" if kind == "lora" else f"All {view['n_levels']} level(s) of the tree applied."
    return view["figure"], energy_readout(view), view["explanation"], status


def play_levels(d, n_neurons, a0, a1, a2, kind, strength, seed, alpha_scale=1.0,
                beta_scale=1.0) -> Iterator[tuple]:
    """Apply the tree one level at a time: level 0 (identity), 1, 2, ... with a pause between."""
    if kind == "lora":
        yield (*render(d, n_neurons, a0, a1, a2, kind, strength, seed)[:3],
               "A LoRA-like update has no tree levels: it is one additive step. "
               "Choose Givens or quasi-Givens to play the levels.")
        return
    n_levels = len(tree_pairs(int(d)))
    for k in range(n_levels + 1):
        try:
            view = _view(d, n_neurons, a0, a1, a2, kind, strength, seed, alpha_scale, beta_scale,
                         upto_level=k)
        except ValueError as err:
            yield _error_outputs(err)
            return
        status = ("Level 0: nothing applied yet (M = I)." if k == 0
                  else f"Level {k} of {n_levels} applied." + (" Done." if k == n_levels else ""))
        yield view["figure"], energy_readout(view), view["explanation"], status
        if k < n_levels:
            time.sleep(LEVEL_PAUSE_S)


def on_d_change(d) -> list:
    """Show one slider per Givens angle of the chosen d (d - 1 of them), labelled by pair."""
    labels = angle_labels(int(d))
    return [gr.update(visible=i < len(labels), label=labels[i] if i < len(labels) else f"θ{i + 1}")
            for i in range(MAX_ANGLES)]


def on_kind_change(kind) -> tuple:
    """Strength only means something for LoRA / shear; angles and levels only for (quasi-)Givens;
    the column lengths only for quasi-Givens blocks."""
    rotation = gr.update(interactive=kind != "lora")
    lengths = gr.update(interactive=kind == "quasi")
    return (gr.update(label=STRENGTH_LABELS[kind], interactive=kind != "givens"), lengths, lengths,
            rotation, *[rotation for _ in range(MAX_ANGLES)])


def build_playground_tab(ctx: AppContext) -> None:
    """Controls on the left, the neurons and the readouts on the right."""
    note = CHART_NOTES["playground-plot"]
    gr.Markdown(
        "## Givens playground\nA few toy neurons (arrows) in $\\mathbb{R}^d$. Turn the Givens "
        "angles and watch every arrow move by the **same** rotation, so the energy stays put; "
        "then switch to a LoRA-like update, or to qGOFT's quasi-Givens blocks: a shear, or only "
        "longer or shorter columns (qGOFT's penalty is then exactly 0), and watch it change.",
        latex_delimiters=LATEX_DELIMITERS)
    first = playground_view(2, 6, list(DEFAULT_ANGLES), "givens", 0.5, None, 0)
    labels = angle_labels(2)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280, elem_id="playground-controls"):
            d = gr.Radio([2, 3, 4], value=2, label="dimension d (coordinates per neuron)",
                         info="d = 4 is drawn as its first three coordinates.", elem_id="playground-d")
            n_neurons = gr.Slider(2, 12, value=6, step=1, label="number of neurons",
                                  elem_id="playground-neurons")
            angles = [gr.Slider(-180, 180, value=DEFAULT_ANGLES[i], step=1,
                                label=labels[i] if i < len(labels) else f"θ{i + 1}",
                                visible=i < len(labels), elem_id=f"playground-angle-{i}")
                      for i in range(MAX_ANGLES)]
            kind = gr.Radio(KIND_CHOICES, value="givens", label="update applied to the neurons",
                            elem_id="playground-kind")
            strength = gr.Slider(0.0, 1.5, value=0.5, step=0.05, label=STRENGTH_LABELS["givens"],
                                 interactive=False, elem_id="playground-strength")
            alpha_scale = gr.Slider(*SCALE_RANGE, value=1.0, step=0.05, label=SCALE_LABELS["alpha"],
                                    interactive=False, elem_id="playground-alpha-scale")
            beta_scale = gr.Slider(*SCALE_RANGE, value=1.0, step=0.05, label=SCALE_LABELS["beta"],
                                   interactive=False, elem_id="playground-beta-scale")
            seed = gr.Slider(0, 99, value=0, step=1, label="neuron seed (another random set)",
                             elem_id="playground-seed")
            play = gr.Button("▶ Play the tree levels", variant="primary", elem_id="playground-play")
            level_status = gr.Markdown(f"All {first['n_levels']} level(s) of the tree applied.",
                                       elem_id="playground-level")
            gr.Markdown(f"**What you see.** {note['see']}\n\n**Notice.** {note['notice']}\n\n"
                        f"**Try this.** {note['try']}", elem_id="playground-notes")
        with gr.Column(scale=3, min_width=360):
            plot = gr.Plot(first["figure"], label="neurons before (blue, dotted) and after (orange)",
                           elem_id="playground-plot")
            energy = gr.HTML(energy_readout(first), label="hyperspherical energy",
                             elem_id="playground-energy")
            explanation = gr.Markdown(first["explanation"], latex_delimiters=LATEX_DELIMITERS,
                                      elem_id="playground-explanation")

    inputs = [d, n_neurons, *angles, kind, strength, seed, alpha_scale, beta_scale]
    outputs = [plot, energy, explanation, level_status]
    d.change(on_d_change, d, angles, queue=False, show_progress="hidden")
    kind.change(on_kind_change, kind, [strength, alpha_scale, beta_scale, play, *angles], queue=False,
                show_progress="hidden")
    playing = play.click(play_levels, inputs, outputs, show_progress="hidden", concurrency_limit=None,
                         api_visibility="private")
    # numpy only and instant: no concurrency limit, and only the last of a burst of drags is drawn;
    # touching a control while the levels play stops the animation and shows the new setting
    for control in inputs:
        control.change(render, inputs, outputs, trigger_mode="always_last", show_progress="hidden",
                       concurrency_limit=None, api_visibility="private", cancels=[playing])
