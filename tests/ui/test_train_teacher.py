"""Teacher mode as the student sees it: the fixed settings said read-only, and no hint that sends
the student to a hidden control (chart notes, the learning rate's remark, status advice, buttons)."""
import re

import pytest

from demos.learn_texts import CHART_NOTES
from ui import share
from ui import train_views as V
from ui.train import teacher

TRAIN_CHARTS = (V.LOSS_PLOT, V.HEATMAP, V.HIST, V.NORM, V.ORTH, V.ENERGY)
# Words by which a hint sends the student to a setting (link keys). A chart's "Try this" that
# uses one must say so in teacher.TRY_NEEDS, so that it is hidden with the control.
CONTROL_WORDS = {
    "lr": (r"learning rates?",), "method": (r"\bswitch between\b", r"\bthe method\b", r"\bpick the method\b"),
    "scaling": (r"\bscaling\b",), "layers": (r"\btarget layers\b",), "bs": (r"\bbatch size\b",),
    "steps": (r"\braise \*?\*?steps\b", r"\bmore steps\b"), "seed": (r"\bseed\b",),
    "model": (r"\b(choose|pick|load|try) (the|another|a) model\b",), "task": (r"\bthe task\b(?! loss)", r"\bupload\b"),
    "lam": (r"\braise λ\b", r"\bset λ\b", r"\bλ box\b"),
}


def mentions(text: str) -> set[str]:
    return {key for key, patterns in CONTROL_WORDS.items() if any(re.search(p, text, re.I) for p in patterns)}


@pytest.mark.parametrize("chart", TRAIN_CHARTS)
def test_every_try_this_that_needs_a_control_is_declared(chart):
    assert mentions(CHART_NOTES[chart]["try"]) <= teacher.TRY_NEEDS.get(chart, frozenset()), chart


@pytest.mark.parametrize("chart", TRAIN_CHARTS)
def test_a_hidden_control_takes_the_hints_that_need_it(chart):
    needs = teacher.TRY_NEEDS.get(chart, frozenset())
    for control in share.HIDEABLE:
        shown = teacher.chart_notes(chart, {control})
        assert "What you see." in shown and "What to notice." in shown  # what the chart shows stays
        assert ("Try this." in shown) == (control not in needs), (chart, control)
    assert "Try this." in teacher.chart_notes(chart, set())  # the teacher's own page keeps every hint


def test_the_fixed_settings_are_listed_with_their_values():
    link = share.parse_link({"v": "1", "method": "qgoft", "lam": "0.05", "steps": "40", "task": "topic",
                             "hide": "method,lam,steps,task,export"})
    text = teacher.fixed_settings_markdown(link.values, link.hidden)
    assert text.startswith("🔒 **Your teacher fixed these settings**")
    assert "Method: **qGOFT (quasi-Givens)**" in text and "λ: **0.05**" in text and "Steps: **40**" in text
    assert "Task: **topic (news headlines)**" in text
    assert text.index("Task") < text.index("Method") < text.index("λ") < text.index("Steps")  # panel order
    assert "export" not in text.lower()  # a hidden panel is not a setting
    assert teacher.fixed_settings_markdown(link.values, {"export", "share"}) == ""
    model = teacher.fixed_settings_markdown(share.default_values(), {"model", "lr", "seed"})
    assert "all-MiniLM-L6-v2" in model and "Learning rate: **0.002**" in model and "Seed: **0**" in model


def test_hints_and_buttons_follow_the_hidden_controls():
    assert "Changing the method" in teacher.lr_info(set())
    assert "method" not in teacher.lr_info({"method"}).lower()
    assert "**Steps**" in teacher.raise_steps_hint(set()) and "Steps**" not in teacher.raise_steps_hint({"steps"})
    assert "Export" in teacher.time_cap_hint(set()) and "Export" not in teacher.time_cap_hint({"export"})
    assert teacher.derived_hidden({"task"}) == {"task", "upload"}  # an upload would change the fixed task
    assert teacher.shows_new_seed(set()) and not teacher.shows_new_seed({"seed"})
    assert set(teacher.SETTING_NAMES) <= set(share.HIDEABLE)
