"""The guided tour points at what the built app has: every target is an element id of the page,
element ids are unique, the tour says to press Train (the real button names) before it outlines
the charts, and it includes the Lessons tab."""
from __future__ import annotations

import collections
import re

import pytest

from demos.learn_texts import TOUR_STEPS
from ui.learn_tab import TOUR_PANELS, tour_step_markdown

CHART_TARGETS = {"loss-plot", "angle-heatmap", "angle-hist", "norm-plot", "orth-plot", "energy-plot", "timeline"}


@pytest.fixture(scope="module")
def blocks():
    from tests.browser.browser_utils import build_test_app

    demo, _ = build_test_app()
    return demo


def _elem_ids(demo) -> collections.Counter:
    ids = collections.Counter(getattr(block, "elem_id", None) for block in demo.blocks.values())
    ids.pop(None, None)
    return ids


def test_every_tour_target_and_its_tab_is_an_element_of_the_app(blocks):
    ids = _elem_ids(blocks)
    for step in TOUR_STEPS:
        tab, _ = TOUR_PANELS[step["target"]]
        assert step["target"] in ids, f"tour step {step['title']!r} points at a missing element"
        assert tab in ids, f"tour step {step['title']!r}: tab {tab!r} is missing"
    for target, (tab, _) in TOUR_PANELS.items():  # the panels the tour may name exist too
        assert target in ids and tab in ids, target


def test_element_ids_are_unique_across_the_page(blocks):
    dups = sorted(elem for elem, count in _elem_ids(blocks).items() if count > 1)
    assert dups == [], f"element ids used more than once: {dups}"


def test_transport_step_names_the_real_buttons(blocks):
    buttons = {b.elem_id: b.value for b in blocks.blocks.values()
               if type(b).__name__ == "Button" and getattr(b, "elem_id", None)}
    step = next(s for s in TOUR_STEPS if s["target"] == "transport")
    for elem in ("train-btn", "pause-btn", "step-btn", "reset-btn", "new-seed-btn"):
        label = re.sub(r"^[^\w]+\s*", "", buttons[elem])  # "▶ Train" -> "Train", "↺ Reset" -> "Reset"
        assert label in step["text"], f"the tour does not name the {label!r} button"
    assert not re.search(r"\bPlay\b", step["text"] + step["title"])  # the Train tab has no Play button
    settings = next(s for s in TOUR_STEPS if s["target"] == "train-controls")
    assert "preset" not in settings["text"].lower()  # presets live in the Lessons tab


def test_tour_order_train_before_charts_and_lessons_included():
    targets = [s["target"] for s in TOUR_STEPS]
    assert "lessons-tab" in targets and "playground-tab" in targets
    press = targets.index("transport")
    assert "Press" in TOUR_STEPS[press]["title"] + TOUR_STEPS[press]["text"]
    assert targets.index("train-controls") < press
    charts = [i for i, t in enumerate(targets) if t in CHART_TARGETS]
    assert charts and min(charts) > press
    for i in range(len(TOUR_STEPS)):
        assert f"Step {i + 1} of {len(TOUR_STEPS)}" in tour_step_markdown(i)


def test_on_a_teachers_link_the_tour_names_only_visible_controls():
    """A student whose link hides method and learning rate is not sent to them by the tour."""
    from ui.share import HIDEABLE
    step2 = next(i for i, s in enumerate(TOUR_STEPS) if s.get("controls"))
    text = tour_step_markdown(step2, {"method", "lr"})
    assert "the method" not in text and "learning rate" not in text
    assert "the seed" in text and "fixed some settings" in text
    assert "penalty weight" in tour_step_markdown(step2, set())  # no link: the full list
    every = {key for key, _ in TOUR_STEPS[step2]["controls"]}
    assert every <= set(HIDEABLE)
    assert "fixed the run's settings" in tour_step_markdown(step2, every)
    for i, step in enumerate(TOUR_STEPS):  # a hidden seed also hides the New seed button
        assert "New seed" not in tour_step_markdown(i, {"seed"})


def test_chart_steps_say_to_press_train_until_a_run_has_trained():
    """Steps 4 and 5 outlined an empty chart before any run: until the visitor's run trains a step,
    every tour step about a Train-tab chart says the chart is empty and to press ▶ Train first."""
    from types import SimpleNamespace

    from ui.learn_tab import _move

    charts = [i for i, s in enumerate(TOUR_STEPS) if s["target"] in CHART_TARGETS]
    assert charts
    for i in charts:
        before = tour_step_markdown(i)
        assert "No run yet" in before and "▶ Train" in before and "step 3" in before, before
        assert "No run yet" not in tour_step_markdown(i, trained=True)
    press = next(i for i, s in enumerate(TOUR_STEPS) if s["target"] == "transport")
    assert f"step {press + 1}" in tour_step_markdown(charts[0])  # the step it sends back to is Press Train
    for i, s in enumerate(TOUR_STEPS):  # other steps never carry the note
        if s["target"] not in CHART_TARGETS:
            assert "No run yet" not in tour_step_markdown(i)

    def ctx_with(run):
        visitor = SimpleNamespace(hidden=frozenset(), run=run)
        return SimpleNamespace(runs=SimpleNamespace(visitor=lambda session: visitor))

    request = SimpleNamespace(session_hash="s1")
    step = charts[0]
    assert "No run yet" in _move(ctx_with(None), step - 1, +1, request)[1]
    assert "No run yet" in _move(ctx_with(SimpleNamespace(step_count=0)), step - 1, +1, request)[1]
    assert "No run yet" not in _move(ctx_with(SimpleNamespace(step_count=5)), step - 1, +1, request)[1]
