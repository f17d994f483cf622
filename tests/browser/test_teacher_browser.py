"""Teacher mode in a real browser, as the student sees the page a teacher's link opens.

The settings the link fixed are listed, read-only, at the top of the settings; the hidden
controls are gone and so is every visible text that would send the student to one (a chart's
"Try this", the learning rate's remark about the method, the New seed button with a fixed seed).
Screenshots go to test-artifacts/ (look at them).
"""
import pytest

from tests.browser.browser_utils import browser_page, screenshot, wait_for_app, wait_until

pytestmark = pytest.mark.browser
TEACHER_LINK = "?v=1&method=goft&lr=0.005&steps=30&seed=7&hide=method,lr,steps,seed"
# Texts that name a hidden control (method, learning rate, steps, seed) and must not be seen.
NAMING_HIDDEN = ("Changing the method", "Compare two learning rates", "Switch between GOFT and qGOFT",
                 "Reset keeps it; New seed changes it", "raise Steps")


def test_a_teacher_link_shows_its_fixed_settings_and_no_hint_about_hidden_controls(served):
    with browser_page() as page:
        wait_for_app(page, served[0] + TEACHER_LINK)
        fixed = page.locator("#teacher-fixed")
        fixed.wait_for(state="visible", timeout=30_000)
        text = fixed.inner_text()
        assert "Your teacher fixed these settings" in text
        for shown in ("Method: GOFT (strict Givens)", "Learning rate: 0.005", "Steps: 30", "Seed: 7"):
            assert shown in text, text
        for hidden in ("#method", "#lr", "#steps", "#seed", "#new-seed-btn"):
            assert page.locator(hidden).is_hidden(), hidden
        # λ is qGOFT's penalty: with the method fixed to GOFT it does nothing, so it is not shown either.
        assert page.locator("#lam").is_hidden() and "λ" not in text
        assert page.locator("#scaling").is_visible() and page.locator("#train-btn").is_visible()

        tab = page.locator("#train-tab").inner_text()  # every text the student can see on Train
        for words in NAMING_HIDDEN:
            assert words not in tab, words
        assert "Try this." not in page.locator("#angle-hist-notes").inner_text()  # needs the learning rate
        assert "Try this." not in page.locator("#norm-plot-notes").inner_text()  # needs the method
        assert "Try this." in page.locator("#angle-heatmap-notes").inner_text()  # needs nothing hidden
        screenshot(page, "teacher-mode-student")
        screenshot(page, "teacher-mode-fixed-settings", selector="#train-controls")


def test_the_teachers_own_page_has_every_control_and_hint(served):
    with browser_page() as page:
        wait_for_app(page, served[0] + "?v=1&method=goft&lr=0.005")
        wait_until(lambda: page.locator("#lr input").first.input_value() == "0.005", 30,
                   message="the link's settings")
        assert page.locator("#teacher-fixed").is_hidden()  # nothing fixed: nothing to list
        assert page.locator("#new-seed-btn").is_visible() and page.locator("#method").is_visible()
        assert "Try this." in page.locator("#norm-plot-notes").inner_text()
        assert "Changing the method" in page.locator("#lr").inner_text()
