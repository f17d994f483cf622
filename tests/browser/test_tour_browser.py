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


def test_after_show_me_far_down_one_click_leads_back_to_the_tour(served):
    """Steps 4 and 5 scrolled the tab bar off screen (its top at -639 and -2287 px) and left the
    user to scroll back up: now a floating 'Back to the tour' button returns in one click, and
    goes once used."""
    with browser_page(VIEW) as page:
        wait_for_app(page, served[0])
        panel = page.locator("#tour-panel")
        for target in ("angle-heatmap", "energy-plot"):
            show(page, step_of(target))
            assert not tab_bar_in_view(page), box(page, "train-tab-button")  # far down: the case at hand
            back = page.locator("#tour-return")
            assert back.is_visible() and "Back to the tour" in back.inner_text()
            screenshot(page, f"tour-return-{target}")
            back.click()  # the one click
            page.wait_for_timeout(1200)
            tour = box(page, "tour-panel")
            assert tour is not None and 0 <= tour["top"] and tour["bottom"] <= tour["height"], tour
            assert panel.is_visible() and f"Step {step_of(target) + 1} of" in panel.inner_text()
            assert tab_bar_in_view(page), box(page, "train-tab-button")
            assert page.locator("#tour-return").count() == 0  # removed after use
        # and the tour goes on from there: Next works without scrolling
        page.locator("#tour-next").click()
        wait_until(lambda: f"Step {step_of('energy-plot') + 2} of" in panel.inner_text(), 15, message="next step")
        # before any run, the chart steps say to press Train first
        page.locator("#tour-back").click()
        wait_until(lambda: "No run yet" in panel.inner_text(), 15, message="the no-run note")

        # opening the Learn tab another way also takes the button away
        show(page, step_of("energy-plot"))
        assert page.locator("#tour-return").is_visible()
        page.evaluate("window.scrollTo(0, 0)")
        page.locator("#learn-tab-button").click()
        wait_until(lambda: page.locator("#tour-return").count() == 0, 5, message="the button gone")
