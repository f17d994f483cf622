"""The charts' points in a real browser at 1440 px: the layer table's numbers on screen, the
data-following angle histogram, the rounding band, paired lesson charts, Compare's summary.
Screenshots go to test-artifacts/views-*.png (look at them)."""
from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser
LONG = 300  # s: a loaded 2-core machine can take minutes for the first run


def test_views_in_the_browser():
    from tests.browser.browser_utils import (browser_page, build_test_app, launched, plot_svg, screenshot, wait_for_app,
                                     wait_until)

    demo, _ = build_test_app(max_steps=500)
    with launched(demo) as url, browser_page() as page:
        wait_for_app(page, url)
        # -- Lessons: strict vs quasi, energy drift side by side on one axis with the band
        page.get_by_role("tab", name="Lessons").click()
        for side in "ab":
            plot_svg(page, f"lessons-energy-{side}").wait_for(state="visible", timeout=60_000)
        page.locator("#lessons-energy-a").scroll_into_view_if_needed()
        screenshot(page, "views-lessons-energy", selector="#lessons-energy-a >> xpath=../..")
        assert "rounding" in page.locator("#lessons-energy-a").inner_text()

        # -- Compare: the summary crowns nobody (it weighs gaps by the seeds' spread); energy bars carry the band
        page.get_by_role("tab", name="Compare").click()
        summary = page.locator("#compare-summary")
        wait_until(lambda: "mean ± sd" in summary.inner_text(), 30, message="the summary")
        assert "Most accurate" not in summary.inner_text()
        plot_svg(page, "compare-bars-he-drift").wait_for(state="visible", timeout=30_000)
        page.locator("#compare-bars-he-drift").scroll_into_view_if_needed()
        screenshot(page, "views-compare-summary", selector="#compare-summary")
        screenshot(page, "views-compare-energy-bars", selector="#compare-bars-he-drift")

        # -- Train: a short strict GOFT run
        page.get_by_role("tab", name="Train").click()
        page.locator("#method input").click()
        page.get_by_role("option", name="GOFT (strict Givens)").first.click()
        box = page.locator("#steps input[type=number]").first
        box.fill("20")
        box.press("Tab")
        page.click("#train-btn")
        wait_until(lambda: re.search(r"Step 20 / 20", page.locator("#status").inner_text()), LONG,
                   message="the run to finish")
        wait_until(lambda: "step 20" in page.locator("#selected-layer").inner_text(), 60, message="views at 20")
        plot_svg(page, "angle-hist").wait_for(state="visible", timeout=60_000)
        assert "range ±" in page.locator("#angle-hist").inner_text()
        assert "rounding" in page.locator("#energy-plot").inner_text()
        assert "Regulariser" not in page.locator("#loss-plot").inner_text()  # GOFT has none
        page.locator("#angle-hist").scroll_into_view_if_needed()
        screenshot(page, "views-train-angle-hist", selector="#angle-hist")
        screenshot(page, "views-train-energy", selector="#energy-plot")
        screenshot(page, "views-train-loss", selector="#loss-plot")
        table = page.locator("#layer-table")
        table.scroll_into_view_if_needed()
        screenshot(page, "views-train-layer-table", selector="#layer-table")
        headers = [h.strip() for h in table.locator("thead th").all_inner_texts() if h.strip()]
        assert headers[0].startswith("layer") and headers[-1].startswith("module"), headers
        # every number column is on screen at 1440 px
        for name in ("norm ratio max", "HE drift"):
            cell = table.locator("thead th", has_text=name).first
            box = cell.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 1440, (name, box)
        # Gradio 6's dataframe draws its body rows as role="row" elements (not <tbody><tr>).
        rows = [r for r in table.locator("[role=row]").all_inner_texts()
                if r.strip() and not r.strip().startswith("layer")]
        cells = [c.strip() for c in re.split(r"[\t\n]+", rows[0]) if c.strip()] if rows else []
        assert cells and re.match(r"L\d+\.", cells[0]) and cells[-1].startswith("backbone"), cells
