"""Runs to compare in Train, in a real browser: "GOFT, then qGOFT" in front of a class.

Changing the method says at once that Train starts a new run (and, while a run trains, that it
goes on untouched until Pause); after a GOFT run and then a qGOFT run, the GOFT run is still
on the page: a grey dotted line named in the loss and orthogonality charts' legends, and a row
in the table of runs under the loss chart. Screenshots go to test-artifacts/ (look at them).
"""
import re

import pytest

from tests.browser.browser_utils import (browser_page, choose, plot_svg, screenshot, set_number,
                                         wait_for_app, wait_until)

pytestmark = pytest.mark.browser
LONG = 300  # s: a loaded 2-core machine can take minutes for the first run (the model loads)


def status(page) -> str:
    return page.locator("#status").inner_text()


def wait_for_status(page, pattern: str, timeout: float = LONG) -> str:
    wait_until(lambda: re.search(pattern, status(page)), timeout, message=f"status matching {pattern!r}")
    return status(page)


def legend(page, elem_id: str) -> list[str]:
    """The names in a plotly chart's legend (SVG text: textContent, not innerText)."""
    return page.locator(f"#{elem_id} .legendtext").evaluate_all("els => els.map(e => e.textContent)")


NOTICE_JS = """() => { const e = document.querySelector('#new-run-notice');
    return e && e.offsetParent !== null ? e.innerText : ''; }"""


def notice(page) -> str:
    """The new-run notice as shown ("" while hidden; read in one go, the page may re-render meanwhile)."""
    return page.evaluate(NOTICE_JS)


# Lines of text in each cell of the runs table's step column (distinct tops of the text's boxes).
STEP_LINES_JS = """() => [...document.querySelectorAll('#runs-compared td:nth-child(3)')].map(td => {
    const range = document.createRange(); range.selectNodeContents(td);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size; })"""


def step_cell_lines(page) -> list[int]:
    return page.evaluate(STEP_LINES_JS)


def test_goft_then_qgoft_is_a_comparison_not_a_replacement(served):
    url, _ = served
    with browser_page() as page:
        wait_for_app(page, url)
        choose(page, "method", "GOFT (strict Givens)")
        set_number(page, "steps", 3)
        assert notice(page) == ""  # no run yet: nothing to say
        page.click("#train-btn")
        wait_for_status(page, r"Step 3 / 3 · done")
        plot_svg(page, "orth-plot").wait_for(timeout=60_000)
        assert page.locator("#runs-compared").is_hidden()  # one run: nothing to compare yet

        # Changing the method says at once what Train will do, and what becomes of the GOFT run.
        choose(page, "method", "qGOFT (quasi-Givens)")
        wait_until(lambda: "Pressing ▶ Train starts a new run" in notice(page), 30, message="the new-run notice")
        text = notice(page)
        assert "method GOFT → qGOFT" in text and "run 1 · GOFT" in text and "kept for comparison" in text
        screenshot(page, "train-new-run-notice")

        page.click("#train-btn")
        wait_until(lambda: notice(page) == "", 30, message="the notice to go once Train starts")
        wait_for_status(page, r"Step 3 / 3 · done.*qGOFT")
        assert "run 1 · GOFT" in status(page)  # the status says the GOFT run was kept

        # The GOFT run is still on the page, beside the qGOFT one.
        table = page.locator("#runs-compared")
        table.wait_for(state="visible", timeout=30_000)
        rows = table.inner_text()
        assert "run 2 · qGOFT (now: solid)" in rows and "run 1 · GOFT (grey dotted)" in rows, rows
        wait_until(lambda: "run 1 · GOFT" in legend(page, "loss-plot"), 30, message="the loss chart's legend")
        wait_until(lambda: "run 1 · GOFT (median layer)" in legend(page, "orth-plot"), 30,
                   message="the orthogonality chart's legend")
        assert "run 1 · GOFT (median layer)" in legend(page, "energy-plot")
        assert page.locator("#loss-plot path.js-line[style*='stroke-dasharray']").count() >= 2  # dotted lines
        # The step column ("3/3", "15/15") reads on one line at 1440 and at 1024 px.
        for width in (1024, 1440):
            page.set_viewport_size({"width": width, "height": 1000})
            page.wait_for_timeout(300)
            assert step_cell_lines(page) and max(step_cell_lines(page)) == 1, (width, step_cell_lines(page))
        page.locator("#loss-plot").scroll_into_view_if_needed()
        screenshot(page, "train-goft-then-qgoft")
        screenshot(page, "train-goft-then-qgoft-table", selector="#runs-compared")

        # Forgetting them leaves the qGOFT run alone on the charts.
        page.click("#forget-runs-btn")
        table.wait_for(state="hidden", timeout=30_000)
        wait_until(lambda: "run 1 · GOFT" not in legend(page, "loss-plot"), 30, message="the lines to go")


def test_changing_the_method_while_a_run_trains_says_it_goes_on_until_pause(served):
    url, _ = served
    with browser_page() as page:
        wait_for_app(page, url)
        choose(page, "method", "GOFT (strict Givens)")
        set_number(page, "steps", 400)
        page.click("#train-btn")
        wait_until(lambda: (m := re.search(r"Step (\d+) /", status(page))) and int(m.group(1)) >= 1, LONG,
                   message="the run to train")
        choose(page, "method", "qGOFT (quasi-Givens)")
        wait_until(lambda: "still training" in notice(page), 30, message="the notice for a running run")
        assert "Press Pause" in notice(page) and "method GOFT → qGOFT" in notice(page)
        assert "· training" in status(page) and "GOFT (strict Givens)" in status(page)  # untouched
        screenshot(page, "train-new-run-notice-while-training", selector="#new-run-notice")
        page.click("#pause-btn")
        wait_for_status(page, r"· paused")
        # (once the step in progress is done: a loaded server may take a while)
        wait_until(lambda: "Pressing ▶ Train starts a new run" in notice(page), 120,
                   message="the notice to say what Train does now")
        # Back to the run's own method: Train continues that run, nothing to say.
        choose(page, "method", "GOFT (strict Givens)")
        wait_until(lambda: notice(page) == "", 30, message="the notice to go")
