"""Teacher mode, as the student sees it: the settings the link fixed, and no text about hidden controls.

A teacher's link (``ui.share``, ``hide=...``) hides controls; they keep the link's values. The
student's page then says, read-only, what those values are (``fixed_settings_markdown``), and
every hint that would send the student to a hidden control is left out with it: a chart's
"Try this" that needs it (``TRY_NEEDS``), the learning rate's remark about the method, the
status line's advice to raise Steps or to export. Buttons that would change a fixed setting
go too (``derived_hidden``: New seed with the seed, the data upload with the task), and so do
the controls that do nothing for a fixed method (``not_applicable``: λ unless the method is
qGOFT, the scaling unless it is a Givens method), which the page then neither shows nor lists.

Pure Python (no Gradio): ``ui.train.events`` turns these into component updates.
"""
from __future__ import annotations

from typing import Any, Collection, Mapping

from demos.learn_texts import CHART_NOTES
from qgoft_core.explore.models import DEFAULT_MODEL_ID
from qgoft_core.explore.registry import METHOD_SPECS, method_label

# The settings a link can fix, in the order the settings panel shows them, with their names there.
SETTING_NAMES: dict[str, str] = {"model": "Model", "task": "Task", "method": "Method", "scaling": "Scaling",
                                 "layers": "Target layers", "lam": "λ", "lr": "Learning rate",
                                 "bs": "Batch size", "steps": "Steps", "seed": "Seed"}
TASK_NAMES = {"sentiment": "sentiment (film reviews, positive / negative)", "topic": "topic (news headlines)"}
SCALING_NAMES = {"none": "none (a pure rotation)", "output": "output (one scale per neuron)",
                 "input": "input (GOFT*)"}
LAYER_NAMES = {"all": "all attention and MLP layers", "attention": "attention only", "mlp": "MLP only"}

# Chart notes whose "Try this" asks the student to change a setting: which ones (link keys).
# A note is listed here when its text sends the student to the control; a test checks the texts.
TRY_NEEDS: dict[str, frozenset[str]] = {
    "angle-hist": frozenset({"lr"}),  # "Compare two learning rates ..."
    "norm-plot": frozenset({"method"}),  # "Switch between GOFT and qGOFT ..."
}
LR_INFO = ("AdamW step size (warm-up over the first 5 steps); acts at once, even while training.")
LR_METHOD_REMARK = " Changing the method sets its usual value."


def not_applicable(method: Any) -> set[str]:
    """The controls that do nothing for `method`: λ (the penalty's weight) for a method without
    the penalty (all but qGOFT), the scaling for a method that is not a Givens rotation."""
    spec = METHOD_SPECS.get(str(method))
    if spec is None:
        return set()
    return ({"lam"} if not spec.penalty else set()) | ({"scaling"} if not spec.givens else set())


def derived_hidden(hidden: Collection[str], method: Any = None) -> set[str]:
    """What else goes with the hidden controls: the upload with the task (it would change it), and,
    when the method is fixed (to `method`), the controls that do nothing for it."""
    extra = {"upload"} if "task" in hidden else set()
    if "method" in hidden:
        extra |= not_applicable(method)
    return set(hidden) | extra


def shows_new_seed(hidden: Collection[str]) -> bool:
    """New seed changes the seed: a page where the teacher fixed the seed has no such button."""
    return "seed" not in hidden


def value_text(key: str, values: Mapping[str, Any]) -> str:
    """A setting's value as the student reads it."""
    value = values.get(key)
    if key == "model":
        return "all-MiniLM-L6-v2 (the offline default)" if value in (None, "", DEFAULT_MODEL_ID) else str(value)
    if key == "method":
        return method_label(str(value))
    if key == "task":
        return TASK_NAMES.get(str(value), str(value))
    if key == "scaling":
        return SCALING_NAMES.get(str(value), str(value))
    if key == "layers":
        return LAYER_NAMES.get(str(value), str(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fixed_settings_markdown(values: Mapping[str, Any], hidden: Collection[str]) -> str:
    """'Your teacher fixed …' with each fixed setting and its value; "" when the link fixes none.

    A setting that does nothing for the fixed method (λ for GOFT) is not listed: it is not part of the run."""
    idle = not_applicable(values.get("method")) if "method" in hidden else set()
    fixed = [key for key in SETTING_NAMES if key in hidden and key not in idle]
    if not fixed:
        return ""
    items = "\n".join(f"- {SETTING_NAMES[key]}: **{value_text(key, values)}**" for key in fixed)
    return f"🔒 **Your teacher fixed these settings** (read-only on this page):\n\n{items}"


def lr_info(hidden: Collection[str]) -> str:
    """The learning rate's hint; its remark about the method only where the method can be changed."""
    return LR_INFO + ("" if "method" in hidden else LR_METHOD_REMARK)


def chart_notes(key: str, hidden: Collection[str] = ()) -> str:
    """A chart's notes; its "Try this" left out when it needs a hidden control."""
    note = CHART_NOTES.get(key)
    if not note:
        return ""
    text = f"**What you see.** {note['see']}\n\n**What to notice.** {note['notice']}"
    if not TRY_NEEDS.get(key, frozenset()) & set(hidden):
        text += f"\n\n**Try this.** {note['try']}"
    return text


def raise_steps_hint(hidden: Collection[str]) -> str:
    """What a run already at its step target can do next (Steps only where the student sees it)."""
    if "steps" in hidden:
        return "the step count is fixed on this page: **Reset** to train it again."
    return "raise **Steps** to train further, or **Reset**."


def time_cap_hint(hidden: Collection[str]) -> str:
    """What a run stopped by the server's time cap can do next (Export only where it is shown)."""
    return "Reset to start again." if "export" in hidden else "Export what you have, or Reset to start again."
