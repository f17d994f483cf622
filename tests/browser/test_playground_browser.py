"""The Givens playground tab: its handlers directly, then in a real browser.

In the browser: moving an angle slider moves the neurons (the plotly data
changes) while the energy readout stays the same; the LoRA-like update changes
it; "Play the tree levels" steps through the levels; qGOFT's column lengths move
the energy while ⟨α, β⟩ and the penalty read 0.
"""
from __future__ import annotations

import re

import pytest

from tests.browser.browser_utils import (browser_page, build_test_app, launched, plot_svg, screenshot, wait_for_app,
                                 wait_until)
from ui.playground_tab import angle_labels, on_d_change, on_kind_change, play_levels, render

PLOT = "playground-plot"


# -- the handlers ------------------------------------------------------------------
def test_render_keeps_the_energy_under_rotation_and_not_otherwise():
    rotated = [render(3, 6, a, b, 0, "givens", 0.5, 0) for a, b in ((0, 0), (75, -120))]
    for _, readout, explanation, status in rotated:
        assert "0 (|change| &lt; 1e-12: rounding only)" in readout and "energy kept" in readout
        assert "$G(0,1" in explanation and status == "All 2 level(s) of the tree applied."
    for kind in ("lora", "quasi"):
        _, readout, _, _ = render(3, 6, 75, -120, 0, kind, 0.5, 0)
        assert "energy changed" in readout and "rounding only" not in readout


def test_sliders_follow_d_and_name_their_pairs():
    assert angle_labels(4)[2].startswith("θ3: rotate coordinates (0, 2), level 2")
    assert [u["visible"] for u in on_d_change(2)] == [True, False, False]
    assert [u["visible"] for u in on_d_change(4)] == [True, True, True]


def test_play_levels_yields_one_frame_per_level(monkeypatch):
    import ui.playground_tab as tab
    monkeypatch.setattr(tab, "LEVEL_PAUSE_S", 0.0)
    frames = list(play_levels(4, 5, 30, 40, 50, "givens", 0.0, 0))
    assert [f[3] for f in frames] == ["Level 0: nothing applied yet (M = I).", "Level 1 of 2 applied.",
                                      "Level 2 of 2 applied. Done."]
    lora = list(play_levels(2, 5, 30, 0, 0, "lora", 0.5, 0))
    assert len(lora) == 1 and "no tree levels" in lora[0][3]


def test_column_lengths_move_the_energy_with_the_penalty_at_zero():
    _, readout, explanation, _ = render(3, 6, 30, -45, 0, "quasi", 0.0, 0, 1.5, 1.0)
    assert "energy changed" in readout and "although the penalty Σ⟨α, β⟩² is exactly 0" in readout
    assert 'class="pg-penalty"' in readout and "yet the energy moves" in explanation
    # d = 2, equal lengths: one common scale, the energy is kept although M is not orthogonal
    _, readout, explanation, _ = render(2, 6, 30, 0, 0, "quasi", 0.0, 0, 1.5, 1.5)
    assert "energy kept" in readout and "common scale" in readout
    # the length sliders are live for the quasi-Givens kind only
    assert [u["interactive"] for u in on_kind_change("quasi")[1:3]] == [True, True]
    assert [u["interactive"] for u in on_kind_change("givens")[1:3]] == [False, False]
    frames = list(play_levels(3, 5, 30, 40, 0, "quasi", 0.0, 0, 1.5, 1.5))
    assert "exactly 0" in frames[-1][2]


def test_bad_settings_give_a_message_not_a_crash():
    _, readout, explanation, _ = render(5, 6, 0, 0, 0, "givens", 0.5, 0)  # d = 5 is not offered
    assert "Cannot draw" in explanation and "d = 2, 3 or 4" in readout


# -- in the browser ---------------------------------------------------------------
def _new_neurons(page) -> list[list[float]]:
    """x and y of the orange (transformed) neuron markers, read from plotly's own data."""
    # plotly.py 7 sends numpy arrays base64-encoded; plotly.js keeps the decoded values in _inputArray
    return page.evaluate(
        """() => { const el = document.querySelector('#playground-plot .js-plotly-plot');
                   const t = el.data.filter(d => d.name === 'transformed neurons' && d.mode === 'markers+text')[0];
                   const values = v => Array.from(v && v._inputArray ? v._inputArray : v);
                   return [values(t.x), values(t.y)]; }""")


def _energy_after(page) -> str:
    return page.locator(f"#playground-energy .pg-energy-after").inner_text().strip()


def _set_slider(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.browser
def test_playground_in_the_browser():
    demo, _ = build_test_app()
    with launched(demo) as url, browser_page() as page:
        wait_for_app(page, url)
        page.get_by_role("tab", name="Givens playground").click()
        plot_svg(page, PLOT).wait_for(state="visible")
        before, energy = _new_neurons(page), _energy_after(page)
        assert re.fullmatch(r"\d+\.\d{6}", energy)
        assert page.locator("#playground-angle-0").is_visible()
        assert not page.locator("#playground-angle-1").is_visible()  # d = 2: one angle only

        # turning the Givens angle moves every neuron, the energy stays
        _set_slider(page, "playground-angle-0", 100)
        after = wait_until(lambda: (n := _new_neurons(page)) != before and n, 15, message="the neurons to move")
        assert max(abs(a - b) for a, b in zip(after[0], before[0])) > 0.1
        assert _energy_after(page) == energy
        assert "rounding only" in page.locator("#playground-energy .pg-energy-rel").inner_text()
        screenshot(page, "playground_givens", full_page=True)

        # the LoRA-like additive update changes the energy
        page.locator("#playground-kind label", has_text="LoRA-like").click()
        wait_until(lambda: _energy_after(page) != energy, 15, message="the energy to change under LoRA")
        assert "%" in page.locator("#playground-energy .pg-energy-rel").inner_text()
        assert not page.locator("#playground-play").is_enabled()  # no tree levels to play
        screenshot(page, "playground_lora", full_page=True)

        # d = 3, quasi-Givens with a shear: play the two tree levels one at a time
        page.locator("#playground-kind label", has_text="quasi-Givens").click()
        page.locator("#playground-d label", has_text="3").click()
        page.locator("#playground-angle-1").wait_for(state="visible")
        # the 3-D frames can arrive faster than chromium (software WebGL) paints them, so record
        # every text the level line takes instead of polling it
        page.evaluate("""() => { const el = document.querySelector('#playground-level');
            window.__levels = [];
            new MutationObserver(() => window.__levels.push(el.innerText.trim()))
                .observe(el, {subtree: true, childList: true, characterData: true}); }""")
        page.locator("#playground-play").click()
        seen = wait_until(lambda: (v := page.evaluate("window.__levels")) and "Done" in v[-1] and v, 20,
                          message="the last level")
        order = [next(i for i, text in enumerate(seen) if text.startswith(prefix))
                 for prefix in ("Level 0", "Level 1 of 2", "Level 2 of 2")]
        assert order == sorted(order)
        assert "energy changed" in page.locator("#playground-energy").inner_text()
        screenshot(page, "playground_quasi_levels", full_page=True)

        # no shear, only a longer α: ⟨α, β⟩ and the penalty read 0, the energy still moves
        _set_slider(page, "playground-strength", 0)
        wait_until(lambda: page.locator("#playground-energy .pg-penalty").inner_text().strip() == "0", 15,
                   message="the penalty to read 0")
        assert "energy kept" in page.locator("#playground-energy").inner_text()  # unit lengths: strict
        _set_slider(page, "playground-alpha-scale", 1.5)
        wait_until(lambda: page.locator("#playground-energy .pg-alpha-norm").inner_text().strip() == "1.5", 15,
                   message="‖α‖ to read 1.5")
        energy = page.locator("#playground-energy").inner_text()
        assert "energy changed" in energy and "exactly 0" in energy
        assert page.locator("#playground-energy .pg-inner").inner_text().strip() == "0"
        assert "yet the energy moves" in page.locator("#playground-explanation").inner_text()
        screenshot(page, "playground_quasi_lengths", full_page=True)
