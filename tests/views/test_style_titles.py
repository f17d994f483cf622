"""Chart titles fit their chart: wrapped to the narrowest width a chart is drawn at, and a top
margin that holds every line (plotly neither wraps a title nor grows the margin for it).

The browser side (titles really inside the drawn chart, at 1440 and 1024 px) is
tests/browser/test_layout_browser.py.
"""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from qgoft_core.viz import style as S
from qgoft_core.viz.layer_charts import (
    angle_heatmap,
    angle_histograms_over_time,
    norm_change_histogram,
    spectrum_figure,
)
from qgoft_core.viz.style import (
    LINE_SPACING,
    TITLE_FONT_SIZE,
    TITLE_GAP,
    apply_style,
    set_title,
    title_chars,
    top_margin,
    visible_length,
    with_note,
    wrap_title,
)

LONG_NOTE = ("grey band: float32 rounding (≤ 5e-09), no change; values below 1e-16 (including exact zeros) drawn "
             "at 1e-16; 36 layers; legend lists the first 6, hover names any line")


def _lines(title: str) -> list[str]:
    return re.split(r"<br\s*/?>", title)


def _assert_fits(title: str, width: int | None = None) -> None:
    for line in _lines(title):
        note = line.startswith("<sup>")
        assert visible_length(line) <= title_chars(width, note=note), f"line too long for {width}: {line!r}"


def _words(title: str) -> list[str]:
    return re.sub(r"<[^>]*>", " ", title).split()


def test_a_long_note_is_wrapped_into_note_lines_that_fit():
    title = with_note("Hyperspherical-energy drift per layer", LONG_NOTE)
    wrapped = wrap_title(title)
    lines = _lines(wrapped)
    assert len(lines) >= 3 and lines[0] == "Hyperspherical-energy drift per layer"
    assert all(line.startswith("<sup>") and line.endswith("</sup>") for line in lines[1:])
    _assert_fits(wrapped)
    assert _words(wrapped) == _words(title)  # nothing lost, nothing added


def test_narrower_charts_get_shorter_lines_and_a_short_title_is_untouched():
    title = with_note("Original skill kept (retention probe)", "dashed: the base (100%); a little above is noise "
                      "around the base, a little below is a real loss")
    narrow, wide = wrap_title(title, width=300), wrap_title(title, width=1200)
    _assert_fits(narrow, 300)
    _assert_fits(wide, 1200)
    assert len(_lines(narrow)) > len(_lines(wide)) == 2
    assert wrap_title("Held-out accuracy") == "Held-out accuracy"


def test_plain_title_reads_a_wrapped_title_as_one_sentence():
    title = with_note("Original skill kept (retention probe)", "dashed: the base (100%); a little above is "
                      "noise around the base")
    fig = apply_style(go.Figure(), title, 320, width=300)
    assert "<br>" in fig.layout.title.text.split("<sup>", 1)[1]  # the note was wrapped ...
    assert "a little above is noise around the base" in S.plain_title(fig)  # ... and still reads as written
    assert S.plain_title(fig) == S.plain_title(title)


def test_tags_are_never_split_and_take_no_room():
    text = 'a <span style="color: red">red word</span> ' + "and more words " * 10
    wrapped = wrap_title(text, width=300)
    assert '<span style="color: red">red' in wrapped  # the tag's own spaces are not break points
    assert visible_length("<b>bold</b> &amp; more") == len("bold & more")


def test_the_top_margin_holds_every_line():
    one, two = "Training curves", with_note("Orthogonality deviation per layer", "values below 1e-16 drawn at 1e-16")
    for title in (one, two, wrap_title(with_note("Energy", LONG_NOTE))):
        lines = len(_lines(title))  # every line 1.3 em high, then the gap to the plot area
        assert top_margin(title) >= lines * LINE_SPACING * TITLE_FONT_SIZE + TITLE_GAP
    assert top_margin(two) >= 60  # a two-line title: 2 x 20.8 px and the gap
    assert top_margin(one) < top_margin(two) < top_margin(wrap_title(with_note("Energy", LONG_NOTE)))


def test_apply_style_sets_the_wrapped_title_its_margin_and_the_page_font():
    fig = apply_style(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), with_note("A chart", LONG_NOTE), 400)
    title = fig.layout.title
    _assert_fits(title.text)
    assert fig.layout.margin.t == top_margin(title.text)
    assert (title.yref, title.y, title.yanchor, title.xanchor) == ("container", 1, "top", "left")
    assert fig.layout.font.family.startswith('"Source Sans Pro"') and fig.layout.height == 400
    # a title replaced later goes through set_title too: its margin follows
    set_title(fig, "Short")
    assert fig.layout.title.text == "Short" and fig.layout.margin.t == top_margin("Short")


def _snapshots(layers: int, steps: int = 5):
    rng = np.random.default_rng(0)
    names = [f"encoder.layer.{i // 6}.attention.output.dense.{i}" for i in range(layers)]
    return names, [rng.normal(0, 0.01, 3000) for _ in names]


def test_the_figures_with_the_longest_notes_fit_a_half_page_column():
    names, angles = _snapshots(36)
    figures = {
        "heatmap (binned)": angle_heatmap(names, angles),
        "histogram": angle_histograms_over_time([0, 10, 20], [a[:500] for a in angles[:3]], layer_name=names[0]),
        "norms": norm_change_histogram({n: np.r_[np.ones(380), [3.0, 0.1, 5.0, 0.01]] for n in names[:2]}),
        "spectrum": spectrum_figure(np.linspace(2, 0, 50), np.r_[np.linspace(2, 0.1, 49), 0.0], names[0],
                                    display_name="L0.attn.out (a long displayed name)"),
    }
    for name, fig in figures.items():
        text = fig.layout.title.text
        assert text, name
        _assert_fits(text)
        assert fig.layout.margin.t >= top_margin(text), name


@pytest.mark.parametrize("width", [300, 460, 1200])
def test_title_chars_follow_the_width(width):
    assert title_chars(width, note=True) > title_chars(width) >= 12
    assert title_chars(width) * S.CHAR_EM * TITLE_FONT_SIZE <= width - 2 * S.TITLE_X


def test_shared_norm_axes_keep_an_all_ones_bar_and_the_outliers_in_view():
    """Inspect side by side: strict GOFT (every norm exactly 1) beside LoRA (norms up to ~2.9)."""
    import numpy as np

    from qgoft_core.viz import figures as F
    from qgoft_core.viz.inspection_figures import share_axes
    goft = F.norm_change_histogram(np.ones(500))
    lora = F.norm_change_histogram(np.r_[np.random.default_rng(0).normal(1.0, 0.05, 500), 2.9])
    share_axes(goft, lora)
    lo, hi = goft.layout.xaxis.range
    assert tuple(lora.layout.xaxis.range) == (lo, hi)
    assert lo < 1.0 - 0.01 and hi >= 2.9  # the bar at 1.0 clear of the edge, the outlier inside
    # ...and wide enough to be seen: every ratio within 1e-6 of 1 was a sub-pixel sliver (seen on a walk)
    assert min(goft.data[0].width) >= 0.01 * (hi - lo) * 0.999
    said = lambda fig: [a.text for a in fig.layout.annotations if "drawn 1% of the axis wide" in a.text]  # noqa: E731
    assert said(goft) and not said(lora)
    # ...inside the plot, not as a legend entry (a long one squeezed the plot to a third of B's width)
    assert all(len(t.name or "") < 20 for t in goft.data) and not goft.layout.showlegend


def test_shared_norm_histograms_of_different_sizes_compare_as_shares_with_equal_plot_areas():
    """Walk: GOFT on 36 layers (20,736 neurons) beside LoRA on 12 (4,608): on one count axis LoRA's bars were
    flattened to nothing, and only B had a legend, so its plot area was narrower."""
    import numpy as np

    from qgoft_core.viz import figures as F
    from qgoft_core.viz.inspection_figures import share_axes
    rng = np.random.default_rng(0)
    goft = F.norm_change_histogram(np.ones(20736))
    lora = F.norm_change_histogram(np.r_[rng.normal(1.0, 0.05, 4600), np.full(8, 2.5)])
    share_axes(goft, lora)
    for fig in (goft, lora):
        assert abs(float(np.sum(fig.data[0].y)) - 100.0) < 1e-6  # percentages of its own neurons
        assert fig.layout.yaxis.title.text.startswith("share of") and fig.layout.showlegend is False
    assert tuple(goft.layout.yaxis.range) == tuple(lora.layout.yaxis.range)
