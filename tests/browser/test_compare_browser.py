"""In a real browser: the Compare tab shows a precomputed comparison (table and charts)."""
from __future__ import annotations

import pytest

from tests.browser.browser_utils import browser_page, build_test_app, launched, plot_svg, screenshot, wait_for_app, wait_until
from qgoft_core.explore import compare as C
from qgoft_core.viz import compare_views as CV
from demos.comparisons import load_precomputed
pytestmark = pytest.mark.browser

BAR_IDS = [f"compare-bars-{name.replace('_', '-')}" for name, *_ in CV.BAR_METRICS]


def _table_rows(page) -> list[str]:
    # Gradio 6's dataframe draws its body rows as role="row" elements outside <tbody>.
    rows = page.locator("#compare-table [role=row]").all_inner_texts()
    return [r for r in rows if r.strip() and "trainable params" not in r]


def test_compare_tab_loads_a_precomputed_comparison():
    expected = load_precomputed("topic")
    demo, _ = build_test_app()
    with launched(demo) as url, browser_page() as page:
        wait_for_app(page, url)
        page.get_by_role("tab", name="Compare").click()
        # The tab opens on the shipped sentiment comparison.
        wait_until(lambda: len(_table_rows(page)) >= len(C.DEFAULT_METHODS), 30, message="the first table")
        # Choose the other built-in task and load its comparison.
        page.locator("#compare-task input").click()
        page.get_by_role("option", name="topic").click()
        page.locator("#compare-load").click()
        wait_until(lambda: "task **topic**" in page.locator("#compare-status").inner_text() or
                   "task topic" in page.locator("#compare-status").inner_text(), 30, message="topic status")
        rows = wait_until(lambda: (r := _table_rows(page)) and any("qGOFT" in x for x in r) and r, 30,
                          message="the topic table")
        assert len(rows) == len(expected.rows)
        qgoft = next(r for r in rows if r.strip().startswith("qGOFT") and "λ" not in r)
        assert f"{100 * expected.row('qgoft').accuracy:.1f}" in qgoft
        for elem_id in ["compare-kept-plot", *BAR_IDS]:
            plot_svg(page, elem_id).wait_for(state="visible", timeout=30_000)
        legend = page.locator("#compare-kept-plot .legendtext").all_text_contents()  # SVG: no innerText
        assert set(legend) == {r.label for r in expected.rows}
        assert page.locator("#compare-export-csv").is_enabled()
        page.locator("#compare-table").scroll_into_view_if_needed()
        screenshot(page, "compare_tab_topic", full_page=True)
