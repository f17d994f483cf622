"""Charts that show their point: the rounding band of the energy drift, paired charts on one
range, the layer table's order and notes, the loss chart without an absent regulariser, and a
comparison summary that does not crown a winner from one seed."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qgoft_core import metrics as M
from qgoft_core.explore.compare import CompareResult, CompareRow
from qgoft_core.tuners.qgoft.layer import QGOFTLayer
from qgoft_core.viz import compare_views as CV
from qgoft_core.viz import figures as F
from qgoft_core.viz.style import plain_title

pytestmark = pytest.mark.usefixtures("single_thread")


def _band(fig):
    bands = [t for t in fig.data if t.name and "rounding" in t.name]
    assert len(bands) == 1, [t.name for t in fig.data]
    return bands[0], max(bands[0].y)


# -- 1. the rounding band -----------------------------------------------------------------
def test_band_constants_follow_the_energy_computation():
    assert F.ENERGY_ROUNDING == F.energy_rounding_level(M.HE_MAX_NEURONS)
    assert np.finfo(np.float32).eps == torch.finfo(M.SNAPSHOT_GRAM_DTYPE).eps  # the band's dtype
    from qgoft_core.viz import style
    assert style.ENERGY_NEURONS == M.HE_MAX_NEURONS
    assert F.energy_rounding_level(32) > F.energy_rounding_level(256) == F.energy_rounding_level(5000)


def test_energy_figure_draws_the_band_under_the_lines():
    drift = {"encoder.layer.0.attention.self.query": [0.0, 3e-10, -2e-10],
             "encoder.layer.0.attention.self.key": [0.0, 2e-5, 8e-5]}
    fig = F.energy_drift_over_steps([0, 10, 20], drift)
    band, top = _band(fig)
    assert fig.data[0] is band and band.fill == "toself"
    assert top == pytest.approx(F.ENERGY_ROUNDING) and min(band.y) == F.LOG_FLOOR
    assert "rounding" in fig.layout.title.text
    small = F.energy_drift_over_steps([0, 10], {"a.0.b": [0.0, 1e-9]}, neurons=16)
    assert _band(small)[1] == pytest.approx(F.energy_rounding_level(16))


def _layer(method: str, d: int, n: int, seed: int) -> QGOFTLayer:
    torch.manual_seed(seed)
    layer = QGOFTLayer(nn.Linear(d, n), method, None, "plain")
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        if method == "goft":
            layer.qgoft_theta.copy_(0.1 * torch.randn(d - 1, generator=g))
        else:  # a small step: the blocks' column lengths move away from 1
            layer.qgoft_blocks.add_(0.01 * torch.randn(d - 1, 2, 2, generator=g))
    return layer


@pytest.mark.parametrize("d, n", [(32, 24), (64, 300), (128, 96)])
def test_strict_rotation_drift_is_inside_the_band_qgoft_above(d, n):
    """The snapshot's own computation (float32 merge and Gram) on a strict and a quasi layer."""
    band = F.energy_rounding_level(n)
    for seed in range(3):
        strict = M.layer_metrics("strict", _layer("goft", d, n, seed)).he_drift
        quasi = M.layer_metrics("quasi", _layer("qgoft", d, n, seed)).he_drift
        assert abs(strict) < band, (strict, band)
        assert abs(quasi) > 10 * band, (quasi, band)


def test_shipped_lessons_strict_inside_band_qgoft_above():
    """The real model: the 60-step strict GOFT runs stay in the band, qGOFT leaves it from step 10."""
    from demos.presets import load_run

    band = F.ENERGY_ROUNDING  # MiniLM: every adapted layer has >= 384 neurons
    for run_id in ("goft", "goft_lr_high"):
        assert np.nanmax(np.abs(load_run(run_id).he_drift)) < band
    quasi = np.abs(load_run("qgoft").he_drift)
    assert (np.nanmax(quasi[1:], axis=1) > 100 * band).all()
    assert np.nanmin(quasi[1:]) > band


def test_compare_energy_bars_have_the_band():
    from demos import comparisons

    result = comparisons.load_precomputed("sentiment")
    fig = CV.compare_bar_figures(result)["he_drift"]
    band, top = _band(fig)
    assert top == pytest.approx(F.ENERGY_ROUNDING) and band.xaxis == "x2"
    assert "rounding" in fig.layout.title.text
    drift = {r.key: r.he_drift for r in result.rows}
    assert drift["goft"] < top and drift["boft"] < top and drift["oft_exact"] < top
    assert drift["qgoft"] > top and drift["lora"] > top and drift["full"] > top


def test_energy_chart_note_says_what_is_seen():
    from demos.learn_texts import CHART_NOTES

    note = CHART_NOTES["energy-plot"]
    assert "Flat at zero" not in note["notice"]
    assert "grey band" in note["see"] and "rounding" in note["notice"]


# -- paired charts share their range ------------------------------------------------------
@pytest.mark.parametrize("key", ["strict_vs_quasi", "goft_vs_lora_forgetting", "lambda_too_large", "lr_too_high"])
def test_lesson_pairs_share_y_ranges(key):
    from ui.lessons_tab import CHARTS, lesson_view

    for step in (10, 60):
        charts = lesson_view(key, step)["charts"]
        for i, chart in enumerate(CHARTS):
            a, b = charts[2 * i], charts[2 * i + 1]
            if chart == "heatmap":
                za = [(t.zmin, t.zmax) for t in a.data if t.type == "heatmap"]
                zb = [(t.zmin, t.zmax) for t in b.data if t.type == "heatmap"]
                if za and zb:
                    assert za == zb
                continue
            if any(ax.visible is False for ax in (a.layout.yaxis, b.layout.yaxis)):
                continue  # one side is a message ("LoRA has no rotation operator")
            axes_a, axes_b = [], []
            a.for_each_yaxis(axes_a.append)
            b.for_each_yaxis(axes_b.append)
            assert len(axes_a) == len(axes_b)
            for ya, yb in zip(axes_a, axes_b):
                if ya.range is not None or yb.range is not None:
                    assert ya.range is not None and tuple(ya.range) == tuple(yb.range), (chart, ya.range, yb.range)


def test_lesson_energy_axis_stays_put_while_playing():
    from ui.lessons_tab import lesson_view

    early = lesson_view("strict_vs_quasi", 10)["charts"][4]
    late = lesson_view("strict_vs_quasi", 60)["charts"][5]
    assert tuple(early.layout.yaxis.range) == tuple(late.layout.yaxis.range)
    assert _band(early)[1] == _band(late)[1]


def test_compare_panels_of_one_quantity_share_their_range():
    """Compare's small multiples: one panel per metric; panels that draw the same quantity share its range."""
    from demos import comparisons

    figures = list(CV.compare_bar_figures(comparisons.load_precomputed("sentiment")).values())
    by_quantity: dict[str, list] = {}
    for fig in figures:
        by_quantity.setdefault(fig.layout.yaxis.title.text, []).append(fig)
    for same in by_quantity.values():
        ranges = {tuple(f.layout.yaxis.range) for f in same}
        assert len(ranges) == 1


def test_share_y_range_unions_linear_and_log_axes():
    import plotly.graph_objects as go

    a = go.Figure(go.Scatter(x=[0, 1], y=[1e-10, 1e-8]))
    b = go.Figure(go.Scatter(x=[0, 1], y=[1e-5, 1e-3]))
    for fig in (a, b):
        fig.update_yaxes(type="log")
    F.share_y_range([a, b])
    assert tuple(a.layout.yaxis.range) == tuple(b.layout.yaxis.range)
    assert a.layout.yaxis.range[0] < -10 and a.layout.yaxis.range[1] > -3
    c, d = go.Figure(go.Bar(x=["x"], y=[3.0])), go.Figure(go.Bar(x=["x"], y=[9.0]))
    F.share_y_range([c, d])
    assert tuple(c.layout.yaxis.range) == tuple(d.layout.yaxis.range) and c.layout.yaxis.range[1] >= 9


# -- 3. the layer table and the loss chart ---------------------------------------------------
def test_layer_table_short_name_first_path_last_every_column_explained():
    assert F.TABLE_COLUMNS[0] == "layer" and F.TABLE_COLUMNS[-1] == "module"
    assert set(F.TABLE_COLUMN_HELP) == set(F.TABLE_COLUMNS)
    assert len(F.TABLE_COLUMN_WIDTHS) == len(F.TABLE_COLUMNS)
    notes = F.table_notes_markdown()
    assert all(f"**{c}**" in notes for c in F.TABLE_COLUMNS)
    name = "backbone.encoder.layer.3.attention.self.query"
    snapshot = {"step": 5, "layers": {name: {"angles": [0.1, -0.2], "norm_ratio": [1.0, 1.0], "orth_dev": 1e-8,
                                             "he_drift": 1e-10, "block": {}, "scales": None}}}
    from ui.train_views import table_rows, table_update

    row = table_rows(snapshot)[0]
    assert row[0] == "L3.query" and row[-1] == name  # short first, the full path last
    update = table_update(snapshot)
    assert update.column_widths and "module path" in update.label


def test_layer_table_notes_survive_markdown():
    """'L<block>.<role>' was read as HTML tags: the page showed 'Columns. layer: short name: L' and nothing after."""
    import markdown_it  # gradio's own Markdown renderer's base
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).render(F.table_notes_markdown())
    assert "<block>" not in html and "&lt;block&gt;" in html
    assert all(name in html for name in ("orth dev", "HE drift", "norm ratio max", "module"))


def test_layer_table_number_columns_fit_a_float32_exponent_on_one_line():
    # "-2.486e-11" wrapped as "2.486e-" / "11" in 85 px columns, "-0.000002037" (the page writes numbers
    # above 1e-6 out in full) in 105 px; about 9 px a character in the table's font, plus padding
    widths = dict(zip(F.TABLE_COLUMNS, F.TABLE_COLUMN_WIDTHS))
    for column in ("orth dev", "HE drift"):
        assert int(widths[column].rstrip("px")) >= 12 * 9 + 12, column


def test_loss_chart_hides_an_absent_regulariser():
    steps = [{"step": i, "loss": 0.7 - 0.01 * i, "reg_loss": 0.0, "sec_per_step": 0.1} for i in range(5)]
    evals = [{"step": 4, "loss": 0.6, "accuracy": 0.7}]
    with_reg = F.loss_curves(steps, evals)
    without = F.loss_curves(steps, evals, regulariser=False)
    assert len(with_reg.data) == 4 and len(without.data) == 3
    assert not any("egulariser" in t.name for t in without.data)
    assert not any("Regulariser" in a.text for a in without.layout.annotations)
    from ui.train_views import has_regulariser

    assert has_regulariser("qgoft") and not any(has_regulariser(m) for m in ("goft", "lora", "full"))


def test_one_step_of_loss_is_drawn_as_a_point():
    """After one Step +1 the loss and regulariser traces held one point each, drawn as lines: nothing showed."""
    fig = F.loss_curves([{"step": 1, "loss": 0.69, "reg_loss": 1e-6, "sec_per_step": 0.1}], [])
    one_point = [t for t in fig.data if t.x is not None and len(t.x) == 1]
    assert one_point and all("markers" in t.mode for t in one_point)


def test_angle_histogram_says_when_its_colours_are_capped():
    steps = [0, 10]
    angles = [np.zeros(400), np.random.default_rng(0).normal(0, 0.05, 400)]
    fig = F.angle_histograms_over_time(steps, angles)
    assert fig.data[0].zmax < 400 and "colours capped at" in fig.layout.title.text


def test_learned_scales_are_counted_as_scales_not_neurons():
    fig = F.norm_change_histogram(np.r_[np.ones(50), 1.3], value_label="learned scale", counted="scales",
                                  base_title="Learned scales")
    text = fig.layout.title.text + fig.layout.yaxis.title.text + fig.layout.xaxis.title.text
    assert "neuron" not in text and "of 51 scales" in text
    assert fig.layout.xaxis.title.text.count("(1 = unchanged)") == 1


# -- 8. no winner from one seed ----------------------------------------------------------------
def _result(rows) -> CompareResult:
    return CompareResult(task="sentiment", seed=0, steps=60, model="m", rows=rows)


def _row(key, accuracy, kept=0.99, **extra):
    row = CompareRow(key=key, label=key.upper(), method=key, accuracy=accuracy, retention_kept=kept, cka=0.8,
                     sec_per_step=0.2, retention_base=0.9, steps=60)
    for name, value in extra.items():
        setattr(row, name, value)
    return row


def test_summary_with_one_seed_names_no_winner():
    text = CV.summary_markdown(_result([_row("goft", 0.904), _row("boft", 0.954, kept=1.004),
                                        _row("oft", 0.946)]))
    assert "Most accurate" not in text and "most accurate" not in text
    assert "One seed per method" in text
    noise = CV.seed_noise_points(_result([]), 0.946)
    assert 1 <= noise <= 5
    assert (f"Highest in this run: **BOFT** (95.4%; one seed: differences below ~{noise:.0f} points "
            "are within seed noise)") in text
    assert "OFT" in text.split("within seed noise")[1]  # 0.8 points behind: named as within the noise
    assert "above 100%" in text and "noise around the base" in text  # BOFT kept 100.4%


def test_summary_with_several_seeds_shows_spread():
    rows = [_row("goft", 0.90, n_seeds=5, accuracy_sd=0.005), _row("boft", 0.95, n_seeds=5, accuracy_sd=0.01),
            _row("oft", 0.945, n_seeds=5, accuracy_sd=0.01)]
    text = CV.summary_markdown(_result(rows))
    assert "mean ± sd" in text and "95.0 ± 1.0%" in text
    lead, within = text.split("Within the spread")[0], text.split("Within the spread")[1]
    assert "GOFT (90.0 ± 0.5%)" in lead and "OFT" in within.split(".")[0]
    headers, body = CV.table_rows(_result(rows))
    assert body[1][headers.index("accuracy (%)")] == "95.0 ± 1.0"


def test_skill_kept_above_100_is_explained_where_shown():
    assert "above 100%" in CV.COLUMN_HELP["skill kept (%)"]
    from demos import comparisons

    fig = CV.compare_bar_figures(comparisons.load_precomputed("sentiment"))["retention_kept"]
    assert "noise around the base" in plain_title(fig)  # the title as read, its wrapped lines joined
    assert "noise around the base" in CV.COLUMN_HELP["skill kept (%)"]
    assert any(t.name == "base model (100%)" for t in fig.data)
