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


@pytest.mark.parametrize("method, idle", [("qgoft", set()), ("goft", {"lam"}), ("lora", {"lam", "scaling"}),
                                          ("oft", {"lam", "scaling"}), ("full", {"lam", "scaling"})])
def test_a_fixed_method_hides_the_controls_that_do_nothing_for_it(method, idle):
    """λ is qGOFT's penalty and the scaling a Givens method's: with the method fixed to one without
    them they are hidden with it, not listed as fixed, and the tour does not name them."""
    from demos.learn_texts import TOUR_STEPS
    from ui.learn_tab import tour_step_markdown

    link = share.parse_link({"v": "1", "method": method, "hide": "method"})
    hidden = teacher.derived_hidden(link.hidden, link.values["method"])
    assert hidden == {"method"} | idle
    fixed = teacher.fixed_settings_markdown(link.values, hidden)
    assert ("λ:" in fixed) == ("lam" not in idle and "lam" in hidden)
    assert "Scaling:" not in fixed
    step2 = next(i for i, s in enumerate(TOUR_STEPS) if s.get("controls"))
    tour = tour_step_markdown(step2, hidden)
    assert ("penalty weight λ" in tour) == ("lam" not in idle)
    assert ("the scaling" in tour) == ("scaling" not in idle)
    # A teacher who also hid λ on a GOFT page: it is hidden, and not listed as a setting of the run.
    both = teacher.derived_hidden({"method", "lam"}, method)
    assert ("λ:" in teacher.fixed_settings_markdown(link.values, both)) == ("lam" not in idle)


def test_controls_follow_a_method_only_where_the_method_is_fixed():
    assert teacher.derived_hidden(set(), "goft") == set()  # the student may pick qGOFT: λ stays
    assert teacher.derived_hidden({"lr"}, "lora") == {"lr"}
    assert teacher.derived_hidden({"method"}, "no-such-method") == {"method"}  # unknown: nothing more
