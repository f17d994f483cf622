"""Learn tab: the explanations (demos.learn_texts.LEARN_MARKDOWN) and a short guided tour.

The tour is a step-through panel: "Back" / "Next" show one step of
``TOUR_STEPS`` at a time and name the panel it is about; "Show me" switches to
that panel's tab and outlines the panel for a moment (plain browser script,
so it costs no server round trip and does nothing if the panel is hidden); for a panel
on another tab it also floats a "Back to the tour" button that returns in one click.
"""
from __future__ import annotations

import json
from typing import Collection, Optional

import gradio as gr

from demos.learn_texts import LATEX_DELIMITERS, LEARN_MARKDOWN, TOUR_BEFORE_RUN, TOUR_STEPS
from ui.context import AppContext

# Tour target (an elem_id) -> (the tab it lives on, the panel's name as a user sees it).
TOUR_PANELS: dict[str, tuple[str, str]] = {
    "playground-tab": ("playground-tab", "the Givens playground tab"),
    "lessons-tab": ("lessons-tab", "the Lessons tab"),
    "train-controls": ("train-tab", "Train tab: the run settings"),
    "transport": ("train-tab", "Train tab: the ▶ Train button and the ones beside it"),
    "status": ("train-tab", "Train tab: the status line"),
    "loss-plot": ("train-tab", "Train tab: the loss chart"),
    "angle-heatmap": ("train-tab", "Train tab: the rotation-angle heatmap"),
    "angle-hist": ("train-tab", "Train tab: the angle histograms over time"),
    "norm-plot": ("train-tab", "Train tab: the norm-change chart"),
    "orth-plot": ("train-tab", "Train tab: the orthogonality-deviation chart"),
    "energy-plot": ("train-tab", "Train tab: the hyperspherical-energy drift chart"),
    "timeline": ("train-tab", "Train tab: the timeline slider"),
    "compare-tab": ("compare-tab", "the Compare tab"),
    "inspect-tab": ("inspect-tab", "the Inspect tab"),
}

# Switch to the target's tab (Gradio gives a tab's button the id "<tab elem_id>-button"), then
# bring the panel into view and outline it for two seconds (app.py's CSS for [data-tour-mark]), without losing the tab bar: a whole
# tab is shown by its button in the tab bar (scrolled to only if it is off screen, "nearest"), and
# a panel is scrolled to only when it is not already in view (its top in the upper part of the
# window is enough for a tall one): centred if it fits, its top at the top if it does not. The
# step number is read from the panel's own text: a gr.State value never reaches the browser.
_SHOW_ME_JS = """
() => {
  const targets = %s;
  const shown = document.querySelector("#tour-panel");
  const match = shown ? shown.innerText.match(/Step (\\d+) of/) : null;
  const index = match ? parseInt(match[1], 10) - 1 : 0;
  const [tab, panel] = targets[Math.max(0, Math.min(targets.length - 1, index))];
  const button = document.getElementById(tab + "-button");
  if (button) button.click();
  setTimeout(() => {
    const el = document.getElementById(panel);
    if (!el) return;
    const marks = [el];
    const high = window.innerHeight;
    if (panel === tab && button) {
      marks.push(button);
      const r = button.getBoundingClientRect();
      if (r.top < 0 || r.bottom > high) button.scrollIntoView({behavior: "smooth", block: "nearest"});
    } else {
      const r = el.getBoundingClientRect();
      const inView = r.top >= 0 && (r.bottom <= high || r.top <= 0.4 * high);
      if (!inView) el.scrollIntoView({behavior: "smooth", block: r.height <= high ? "center" : "start"});
    }
    // A data attribute, not an inline style: Gradio rewrites a tab's style when it switches.
    for (const m of marks) m.setAttribute("data-tour-mark", "");
    setTimeout(() => { for (const m of marks) m.removeAttribute("data-tour-mark"); }, 2000);
    if (panel !== tab) offerReturn(index);
  }, 250);
  // A panel on another tab (often far down, the tab bar scrolled away): a floating button leads back
  // to the tour in one click, and goes once used (or once the Learn tab is opened another way).
  function offerReturn(at) {
    const old = document.getElementById("tour-return");
    if (old) old.remove();
    const back = document.createElement("button");
    back.id = "tour-return";
    back.type = "button";
    back.textContent = "\u2191 Back to the tour (step " + (at + 1) + ")";
    back.style.cssText = "position:fixed;right:24px;bottom:24px;z-index:1000;padding:10px 16px;" +
      "border:none;border-radius:8px;background:var(--button-primary-background-fill,#f97316);" +
      "color:var(--button-primary-text-color,#fff);font-size:15px;font-weight:600;cursor:pointer;" +
      "box-shadow:0 2px 8px rgba(0,0,0,.25)";
    const learn = document.getElementById("learn-tab-button");
    const drop = () => { back.remove(); if (learn) learn.removeEventListener("click", drop); };
    back.addEventListener("click", () => {
      drop();
      if (learn) learn.click();
      setTimeout(() => {
        const tour = document.getElementById("tour-panel");
        if (!tour) return;
        const top = tour.getBoundingClientRect().top + window.scrollY;
        if (top < 0.7 * window.innerHeight) window.scrollTo({top: 0, behavior: "smooth"});  // tab bar too
        else tour.scrollIntoView({behavior: "smooth", block: "center"});
        const next = document.getElementById("tour-next");
        if (next) next.focus({preventScroll: true});
      }, 250);
    });
    if (learn) learn.addEventListener("click", drop);
    document.body.appendChild(back);
  }
  return index;
}
"""


def tour_step_markdown(index: int, hidden: Collection[str] = (), trained: bool = False) -> str:
    """The text of tour step ``index`` (clamped), naming the panel it points at.

    `hidden`: the controls a teacher's link hides (ui/share.py); a step that lists controls
    names only the visible ones, so the tour never sends a student to a control they cannot see.
    `trained`: the visitor's run has trained at least one step; until then a step about a chart
    says the chart is still empty and how to fill it.
    """
    index = max(0, min(len(TOUR_STEPS) - 1, int(index)))
    step = TOUR_STEPS[index]
    panel = TOUR_PANELS.get(step["target"], (None, step["target"]))[1]
    before = f"\n\n{TOUR_BEFORE_RUN}" if step.get("needs_run") and not trained else ""
    return (f"**Step {index + 1} of {len(TOUR_STEPS)}: {step['title'].split('. ', 1)[-1]}**\n\n"
            f"{_step_text(step, hidden)}{before}\n\n*Where:* {panel}.")


def _step_text(step: dict, hidden: Collection[str]) -> str:
    for key, text in step.get("if_hidden", {}).items():
        if key in hidden:
            return text
    controls = step.get("controls")
    if not controls or not any(key in hidden for key, _ in controls):
        return step["text"]
    shown = [words for key, words in controls if key not in hidden]
    if not shown:
        return step["all_hidden"]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    return (f"On the Train tab, pick {listed}; your teacher has fixed some settings (listed, read-only, "
            "at the top of the settings).")


def _move(ctx: AppContext, index: int, delta: int, request: Optional[gr.Request] = None) -> tuple:
    index = max(0, min(len(TOUR_STEPS) - 1, int(index) + delta))
    session = getattr(request, "session_hash", None)
    visitor = ctx.runs.visitor(session) if session else None
    hidden = visitor.hidden if visitor else ()
    trained = bool(visitor and visitor.run is not None and getattr(visitor.run, "step_count", 0) > 0)
    return (index, tour_step_markdown(index, hidden, trained), gr.update(interactive=index > 0),
            gr.update(interactive=index < len(TOUR_STEPS) - 1))


def build_tour(ctx: AppContext) -> None:
    """The step-through tour panel (Back / Next / Show me)."""
    targets = [[TOUR_PANELS.get(s["target"], ("", s["target"]))[0], s["target"]] for s in TOUR_STEPS]
    index = gr.State(0)
    with gr.Group(elem_classes=["tour"]):  # no elem_id: Gradio 6 writes a Group's id on two nested divs
        text = gr.Markdown(tour_step_markdown(0), elem_id="tour-panel")
        with gr.Row():
            back = gr.Button("◀ Back", size="sm", interactive=False, elem_id="tour-back")
            show = gr.Button("Show me", size="sm", elem_id="tour-show")
            nxt = gr.Button("Next ▶", size="sm", elem_id="tour-next")
    def back_one(i: int, request: gr.Request) -> tuple:
        return _move(ctx, i, -1, request)

    def next_one(i: int, request: gr.Request) -> tuple:
        return _move(ctx, i, +1, request)

    back.click(back_one, index, [index, text, back, nxt], queue=False,
               show_progress="hidden", api_visibility="private")
    nxt.click(next_one, index, [index, text, back, nxt], queue=False,
              show_progress="hidden", api_visibility="private")
    show.click(None, None, None, js=_SHOW_ME_JS % json.dumps(targets))


def build_learn_tab(ctx: AppContext) -> None:
    """A short guided tour first, then the full explanation with formulas."""
    with gr.Accordion(f"Guided tour ({len(TOUR_STEPS)} short steps)", open=True, elem_id="tour-accordion"):
        gr.Markdown("New here? Step through the app's main panels in order; **Show me** opens the "
                    "panel and outlines it.")
        build_tour(ctx)
    gr.Markdown(LEARN_MARKDOWN, latex_delimiters=LATEX_DELIMITERS, elem_id="learn-text")
