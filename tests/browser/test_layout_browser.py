"""The built page in a real browser, every tab at 1440 and at 1024 px: nothing a reader needs is cut.

- every dropdown's shown value, and every one of its choices, fits its box (no "22.7M pa");
- every chart title and note lies inside its chart and above the plot area (no subtitle cut at
  the right edge or at the top);
- every element id of the page is used once (Gradio 6 writes a gr.Group's elem_id on two nested
  divs, so a Group must not carry one);
- headings, buttons, tabs and accordion labels are drawn in one font each (no glyph from a
  fallback font, no emoji that may not exist at all).

Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import time

import gradio as gr
import pytest

from tests.browser.browser_utils import browser_page, build_test_app, launched, screenshot, wait_for_app, wait_until

TABS = ("Train", "Compare", "Inspect", "Givens playground", "Lessons", "Learn")
WIDTHS = (1440, 1024)

# -- what is measured in the page ------------------------------------------------------------------
_DROPDOWNS_JS = """(choices) => {
  const out = {};
  const ctx = document.createElement('canvas').getContext('2d');
  for (const [id, labels] of Object.entries(choices)) {
    const input = document.querySelector(`#${CSS.escape(id)} input[role=combobox]`);
    if (!input || !input.getClientRects().length) continue;
    const cs = getComputedStyle(input);
    ctx.font = cs.font;
    const room = input.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const cut = labels.filter(l => ctx.measureText(l).width > room + 0.5);
    if (input.scrollWidth > input.clientWidth) cut.unshift(`shown: ${input.value}`);
    if (cut.length) out[id] = {room: Math.round(room), cut};
  }
  return out;
}"""

_TITLES_JS = """() => {
  const out = {};
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const svg = plot.querySelector('.main-svg'), title = plot.querySelector('.gtitle');
    if (!svg || !title || !title.getClientRects().length || !svg.getClientRects().length) continue;
    const s = svg.getBoundingClientRect(), t = title.getBoundingClientRect();
    if (!s.width) continue;
    const area = plot.querySelector('.nsewdrag');  // the plot area of a cartesian chart
    const top = area ? area.getBoundingClientRect().top : s.bottom;
    const id = (plot.closest('[id]') || {}).id || '?';
    const problems = [];
    if (t.right > s.right + 1) problems.push(`past the chart's right edge by ${Math.round(t.right - s.right)} px`);
    if (t.left < s.left - 1) problems.push(`past the chart's left edge by ${Math.round(s.left - t.left)} px`);
    if (t.top < s.top - 1) problems.push(`above the chart's top by ${Math.round(s.top - t.top)} px`);
    if (t.bottom > top + 1) problems.push(`over the plot area by ${Math.round(t.bottom - top)} px`);
    if (problems.length) out[id] = `${title.textContent.slice(0, 60)}: ${problems.join('; ')}`;
  }
  return out;
}"""

_IDS_JS = """() => {
  const counts = {};
  for (const el of document.querySelectorAll('[id]')) {
    if (!el.id || el.closest('.js-plotly-plot') || el.closest('head') || el.id.startsWith('plotly.js')) continue;
    counts[el.id] = (counts[el.id] || 0) + 1;  // plotly's own ids (modebar logo, styles) are its business
  }
  return counts;
}"""

# Marks the visible text elements whose font is checked; returns [mark, key, text].
_FONT_TARGETS_JS = """() => {
  const out = [];
  let i = 0;
  document.querySelectorAll('[data-font-check]').forEach(el => el.removeAttribute('data-font-check'));
  for (const el of document.querySelectorAll('h1, h2, h3, h4, button, .label-wrap')) {
    if (!el.getClientRects().length || !el.innerText.trim() || el.closest('.js-plotly-plot')) continue;
    el.setAttribute('data-font-check', String(i));
    out.push([String(i++), el.id || (el.closest('[id]') || {}).id || '', el.innerText.trim().slice(0, 60)]);
  }
  return out;
}"""


def _visible_plots_settled(page) -> bool:
    counts = []
    for _ in range(2):
        counts.append(page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot .main-svg'))"
                                    ".filter(e => e.getClientRects().length).length"))
        time.sleep(1.0)
    return counts[0] == counts[1]


def _fonts(page) -> dict[str, str]:
    """Per checked element: the fonts that really drew it, when more than one (CDP knows them)."""
    targets = page.evaluate(_FONT_TARGETS_JS)
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        by_mark = {mark: (key, text) for mark, key, text in targets}
        mixed = {}
        for node in cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": "[data-font-check]"})["nodeIds"]:
            attrs = cdp.send("DOM.getAttributes", {"nodeId": node})["attributes"]
            key, text = by_mark[attrs[attrs.index("data-font-check") + 1]]
            fonts = {f["familyName"] for f in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]}
            emoji = [ch for ch in text if ord(ch) >= 0x1F000 or ch == "\ufe0f"]
            if len(fonts) > 1 or emoji:
                mixed[key or text] = f"{text!r}: {sorted(fonts)}" + (f", emoji {emoji}" if emoji else "")
        return mixed
    finally:
        cdp.detach()


def _verdict(found: dict[str, dict]) -> None:
    """Fail on anything cut, duplicated or drawn in a fallback font."""
    found = {kind: items for kind, items in found.items() if items}
    assert not found, f"cut or inconsistent: {found}"


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    demo, ctx = build_test_app()
    choices = {b.elem_id: [str(c[0]) for c in b.choices] for b in demo.blocks.values()
               if isinstance(b, gr.Dropdown) and b.elem_id and not b.multiselect}
    with launched(demo) as url:
        yield url, demo, choices


def test_no_group_carries_an_elem_id(served):
    """Gradio 6 renders a gr.Group's elem_id on two nested divs: the page then has that id twice."""
    _, demo, _ = served
    groups = {b.elem_id: "a gr.Group" for b in demo.blocks.values() if isinstance(b, gr.Group) and b.elem_id}
    _verdict({"id": groups})


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_every_tab_is_readable(served, width):
    url, _, choices = served
    found: dict[str, dict] = {"dropdown": {}, "title": {}, "id": {}, "font": {}}
    with browser_page(viewport={"width": width, "height": 900}) as page:
        wait_for_app(page, url)
        for tab in TABS:
            page.get_by_role("tab", name=tab, exact=True).click()
            wait_until(lambda: _visible_plots_settled(page), 60, interval=0, message=f"{tab}'s charts")
            found["dropdown"].update(page.evaluate(_DROPDOWNS_JS, choices))
            found["title"].update(page.evaluate(_TITLES_JS))
            found["font"].update(_fonts(page))
            screenshot(page, f"layout_{width}_{tab.split()[0].lower()}", full_page=True)
        found["id"] = {k: f"{n} elements" for k, n in page.evaluate(_IDS_JS).items() if n > 1}
    _verdict(found)


@pytest.mark.browser
def test_train_charts_and_layer_menu_after_one_step(served):
    """One optimizer step draws the Train tab's charts and fills the layer menu; at 1024 px both fit."""
    url, _, choices = served
    with browser_page(viewport={"width": 1024, "height": 900}) as page:
        wait_for_app(page, url)
        page.click("#step-btn")
        page.locator("#energy-plot .main-svg").first.wait_for(state="visible", timeout=600_000)
        wait_until(lambda: page.locator("#layer-select input").input_value(), 120, message="the layer menu")
        wait_until(lambda: _visible_plots_settled(page), 60, interval=0, message="the charts")
        page.locator("#layer-select input").click()
        option = page.locator("[data-testid=dropdown-option]")
        option.first.wait_for(state="visible", timeout=10_000)
        options = option.evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
        page.keyboard.press("Escape")
        assert len(options) > 1, "the layer menu lists the layers"
        choices = {**choices, "layer-select": options}
        found = {"dropdown": page.evaluate(_DROPDOWNS_JS, choices), "title": page.evaluate(_TITLES_JS),
                 "id": {}, "font": {}}
        screenshot(page, "layout_1024_train_after_a_step", full_page=True)
    _verdict(found)
