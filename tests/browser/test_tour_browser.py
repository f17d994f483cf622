"""The guided tour's "Show me" in a real browser (1440 x 900): the outlined panel is in view and
the tab bar stays on screen; a panel already in view is not scrolled to, a tab is shown by its
button in the tab bar. Screenshots go to test-artifacts/ (look at them)."""
import pytest

from demos.learn_texts import TOUR_STEPS
from tests.browser.browser_utils import browser_page, screenshot, wait_for_app, wait_until

pytestmark = pytest.mark.browser
VIEW = {"width": 1440, "height": 900}

BOX_JS = """id => { const e = document.getElementById(id); if (!e) return null;
    const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, height: window.innerHeight,
    marked: e.hasAttribute('data-tour-mark')}; }"""


def box(page, elem_id: str) -> dict:
    return page.evaluate(BOX_JS, elem_id)


def tab_bar_in_view(page) -> bool:
    b = box(page, "train-tab-button")
    return b is not None and b["top"] >= 0 and b["bottom"] <= b["height"]


def show(page, step: int) -> None:
    """Go to the Learn tab, step the tour to `step` (0-based) and press Show me."""
    page.locator("#learn-tab-button").click()
    panel = page.locator("#tour-panel")
    while (shown := int(panel.inner_text().split("Step ", 1)[1].split(" ", 1)[0]) - 1) != step:
        page.locator("#tour-next" if shown < step else "#tour-back").click()
        wait_until(lambda s=shown: f"Step {s + 1} of" not in panel.inner_text(), 15, message="the next step")
    page.locator("#tour-show").click()
    page.wait_for_timeout(1200)  # the tab switch, 250 ms, then a smooth scroll


def step_of(target: str) -> int:
    return next(i for i, s in enumerate(TOUR_STEPS) if s["target"] == target)


def test_show_me_keeps_the_tab_bar_and_brings_the_panel_into_view(served):
    with browser_page(VIEW) as page:
        wait_for_app(page, served[0])
        # A whole tab: its button in the tab bar is outlined, and the tab bar stays in view.
        show(page, step_of("playground-tab"))
        assert tab_bar_in_view(page), box(page, "train-tab-button")
        assert box(page, "playground-tab-button")["marked"]
        screenshot(page, "tour-show-me-playground")

        # The run settings, near the top of Train: in view at once, so nothing scrolls the tab bar away.
        show(page, step_of("train-controls"))
        controls = box(page, "train-controls")
        assert 0 <= controls["top"] < controls["height"], controls
        assert tab_bar_in_view(page), box(page, "train-tab-button")
        assert controls["marked"]
        screenshot(page, "tour-show-me-settings")

        # A chart further down: scrolled to, and in view.
        show(page, step_of("energy-plot"))
        chart = box(page, "energy-plot")
        assert chart["top"] >= 0 and chart["bottom"] <= chart["height"], chart
        screenshot(page, "tour-show-me-chart")

        # Back to a tab after that scroll: the tab bar comes back into view with it.
        show(page, step_of("lessons-tab"))
        assert tab_bar_in_view(page), box(page, "train-tab-button")
