"""Tests for qgoft_core.viz.figures: small synthetic metrics, no browser."""

import re
import time

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline
import pytest

from qgoft_core.viz import figures as F
ROLES = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]


def bert_names(n_layers: int) -> list[str]:
    """n_layers * 6 BERT-style module paths."""
    return [f"backbone.encoder.layer.{i}.{role}" for i in range(n_layers) for role in ROLES]


def step_records(n: int) -> list[dict]:
    return [
        {"step": i, "loss": 2.0 / (1 + i), "reg_loss": 1e-6 * i, "lr": 1e-3,
         "sec_per_step": 0.1, "examples_per_sec": 320.0}
        for i in range(n)
    ]


def eval_records(n: int, every: int = 10) -> list[dict]:
    return [{"step": i, "accuracy": 0.5 + i / (4 * n * every), "loss": 1.0} for i in range(0, n * every, every)]


def assert_styled(fig: go.Figure) -> None:
    """What every figure promises: explicit height, a title, the shared template."""
    assert isinstance(fig, go.Figure)
    assert fig.layout.height is not None and fig.layout.height > 0
    assert fig.layout.title.text
    assert fig.layout.template == pio.templates["plotly_white"]


def colorbar_title(trace) -> str:
    return trace.colorbar.title.text


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("backbone.encoder.layer.3.attention.self.query", "L3.query"),
        ("backbone.encoder.layer.3.attention.self.key", "L3.key"),
        ("backbone.encoder.layer.3.attention.self.value", "L3.value"),
        ("backbone.encoder.layer.3.attention.output.dense", "L3.attn.out"),
        ("backbone.encoder.layer.3.intermediate.dense", "L3.mlp.in"),
        ("backbone.encoder.layer.11.output.dense", "L11.mlp.out"),
        ("distilbert.transformer.layer.2.ffn.lin1", "L2.mlp.in"),
        ("model.layers.5.self_attn.q_proj", "L5.self_attn.q_proj"),
        ("transformer.h.0.mlp.c_fc", "L0.mlp.c_fc"),
        ("backbone.pooler.dense", "pooler.dense"),
        ("classifier", "classifier"),
    ],
)
def test_short_layer_name(name, expected):
    assert F.short_layer_name(name) == expected


@pytest.mark.parametrize("n, max_points", [(1000, 400), (401, 400), (10_007, 37), (5, 2), (3, 2)])
def test_downsample_keeps_first_and_last_and_respects_max(n, max_points):
    idx = F.downsample_indices(n, max_points)
    assert idx[0] == 0 and idx[-1] == n - 1
    assert len(idx) <= max_points
    assert np.all(np.diff(idx) > 0)  # strictly increasing, no duplicates


def test_downsample_short_input_unchanged():
    assert list(F.downsample_indices(7, 400)) == list(range(7))
    assert list(F.downsample_indices(0, 400)) == []
    assert F.downsample(list("abc"), 400) == ["a", "b", "c"]
    xs = np.arange(1000.0)
    picked = F.downsample(xs, 10)
    assert isinstance(picked, np.ndarray) and picked[0] == 0 and picked[-1] == 999


def test_downsample_rejects_max_points_below_two():
    with pytest.raises(ValueError):
        F.downsample_indices(10, 1)


def test_pad_ragged_fills_with_nan():
    matrix = F.pad_ragged([[1.0, 2.0, 3.0], [4.0], None])
    assert matrix.shape == (3, 3)
    assert np.isnan(matrix[1, 1:]).all() and np.isnan(matrix[2]).all()
    assert matrix[1, 0] == 4.0


def test_bin_columns_keeps_largest_magnitude_with_sign():
    matrix = np.array([[0.1, -0.9, 0.2, 0.3, np.nan]])
    binned, width = F.bin_columns_by_max_abs(matrix, max_columns=2)
    assert width == 3
    assert binned.shape == (1, 2)
    assert binned[0, 0] == -0.9 and binned[0, 1] == 0.3


def test_norm_outlier_mask_ignores_float_noise():
    noise_only = 1 + np.random.default_rng(0).normal(0, 1e-7, 1000)
    assert not F.norm_outlier_mask(noise_only).any()
    values = np.r_[np.ones(99), 1.5]
    assert F.norm_outlier_mask(values).tolist() == [False] * 99 + [True]


# --------------------------------------------------------------------------
# loss curves
# --------------------------------------------------------------------------


def test_loss_curves_traces_axes_and_downsampling():
    fig = F.loss_curves(step_records(1000), eval_records(20), max_points=400)
    assert_styled(fig)
    assert [t.name for t in fig.data] == [
        "train task loss", "held-out loss", "regulariser loss", "held-out accuracy"
    ]
    assert all(isinstance(t, go.Scatter) for t in fig.data)
    task, _, reg, accuracy = fig.data
    assert len(task.x) <= 400 and task.x[0] == 0 and task.x[-1] == 999
    # the regulariser sits on its own y axis so it is visible when tiny
    assert reg.yaxis != task.yaxis
    assert max(accuracy.y) <= 100 and min(accuracy.y) >= 50  # fractions drawn as %
    assert fig.layout.xaxis3.title.text == "optimizer step"
    for axis in (fig.layout.yaxis, fig.layout.yaxis2, fig.layout.yaxis3):
        assert axis.title.text
    assert "%" in fig.layout.yaxis3.title.text


def test_loss_curves_empty_history_keeps_structure():
    fig = F.loss_curves([], [])
    assert len(fig.data) == 4
    assert fig.layout.height


# --------------------------------------------------------------------------
# angle heatmap
# --------------------------------------------------------------------------


def test_angle_heatmap_pads_ragged_layers_with_nan():
    names = bert_names(1)[:3]
    angles = [np.full(5, 0.1), np.full(3, -0.2), None]
    fig = F.angle_heatmap(names, angles)
    assert_styled(fig)
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Heatmap)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3, 5)
    assert np.isnan(z[1, 3:]).all() and np.isnan(z[2]).all()
    assert np.isclose(z[0, 0], np.degrees(0.1))
    # diverging scale symmetric around 0 for signed angles
    assert fig.data[0].zmin == -fig.data[0].zmax
    assert "deg" in colorbar_title(fig.data[0])
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    # short names on the axis, full names as the (hoverable) categories
    assert list(fig.layout.yaxis.ticktext) == ["L0.query", "L0.key", "L0.value"]
    assert list(fig.data[0].y) == names


def test_angle_heatmap_layer_scale_rows_within_unit_range():
    rng = np.random.default_rng(1)
    names = bert_names(2)
    angles = [rng.normal(0, 0.01 * (i + 1), 50) for i in range(len(names))]
    angles[3] = np.zeros(50)  # an untouched layer must not become NaN
    fig = F.angle_heatmap(names, angles, scale="layer")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.nanmin(z) >= -1 and np.nanmax(z) <= 1
    assert np.allclose(np.nanmax(np.abs(z), axis=1)[np.arange(len(names)) != 3], 1.0)
    assert np.all(z[3] == 0)
    assert colorbar_title(fig.data[0]) == "fraction of row max"


def test_angle_heatmap_abs_uses_sequential_range():
    fig = F.angle_heatmap(["a.0.x", "a.1.x"], [[-0.5, 0.2], [0.1, 0.0]], signed=False)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.nanmin(z) >= 0
    assert fig.data[0].zmin == 0


def test_angle_heatmap_bins_wide_layers_and_says_so():
    names = bert_names(1)
    angles = [np.zeros(1535) for _ in names]
    angles[0][700] = 1.0
    fig = F.angle_heatmap(names, angles, max_columns=512)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape[1] <= 512
    assert np.isclose(np.nanmax(z), np.degrees(1.0))  # the single spike survives binning
    assert "1535 pairs" in fig.layout.title.text


def test_angle_heatmap_without_angles_explains_why():
    fig = F.angle_heatmap(["a", "b"], [None, []])
    assert_styled(fig)
    assert fig.layout.annotations and "no givens" in fig.layout.annotations[0].text.lower()


def test_angle_heatmap_rejects_bad_scale():
    with pytest.raises(ValueError):
        F.angle_heatmap(["a"], [[0.1]], scale="local")


def test_angle_heatmap_is_fast_for_36_by_1535():
    rng = np.random.default_rng(2)
    names = bert_names(6)
    angles = [rng.normal(0, 0.1, 1535) for _ in names]
    F.angle_heatmap(names[:2], angles[:2])  # warm plotly's validators once
    start = time.perf_counter()
    fig = F.angle_heatmap(names, angles)
    F.angle_heatmap(names, angles, scale="layer", signed=False)
    elapsed = (time.perf_counter() - start) / 2
    assert np.asarray(fig.data[0].z).shape == (36, 512)
    assert elapsed < 2.0, f"angle_heatmap took {elapsed:.3f} s"


# --------------------------------------------------------------------------
# angle histograms over time
# --------------------------------------------------------------------------


def test_angle_histograms_bins_follow_the_data():
    rng = np.random.default_rng(3)
    snaps = [rng.normal(0, 0.05 * (k + 1), 200) for k in range(4)]
    fig = F.angle_histograms_over_time([0, 10, 20, 30], snaps, bins=72, layer_name=bert_names(1)[0])
    assert_styled(fig)
    heatmap = fig.data[0]
    edges = np.asarray(heatmap.x, dtype=float)
    largest = max(np.degrees(np.abs(s)).max() for s in snaps)
    assert len(edges) == 73 and np.isclose(edges[-1], 1.15 * largest) and np.isclose(edges[0], -edges[-1])
    counts = np.asarray(heatmap.z)
    assert counts.shape == (4, 72)
    assert (counts.sum(axis=1) == 200).all()
    assert colorbar_title(heatmap) == "pairs"
    assert "L0.query" in fig.layout.title.text
    assert f"±{edges[-1]:.3g}°" in fig.layout.title.text  # the subtitle says the range
    assert list(fig.layout.meta["angle_range"]) == [edges[0], edges[-1]]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "optimizer step"


def test_angle_histogram_of_a_short_run_shows_the_spike_widening():
    """Angles growing from 0 to ±6° (a 60-step GOFT run): many bins filled, more at each step."""
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, 383)
    steps = [0, 10, 20, 30, 40, 50, 60]
    snaps = [np.radians(6.0 * base * s / 60) for s in steps]
    fig = F.angle_histograms_over_time(steps, snaps)
    counts = np.asarray(fig.data[0].z)
    assert counts.shape[1] == F.HISTOGRAM_BINS and 40 <= F.HISTOGRAM_BINS <= 60
    filled = (counts > 0).sum(axis=1)
    assert filled[0] == 1  # step 0: every angle is 0, one spike
    assert filled[-1] >= 30  # step 60: spread over most of the bins
    assert (np.diff(filled) >= 0).all()  # the spike widens step by step
    assert fig.data[0].zmax == counts[1:].max() < counts[0].max()  # the step-0 spike saturates the colour
    assert np.isclose(fig.data[0].x[-1], 1.15 * 6.0, rtol=1e-2)
    # the old fixed bins over ±180° drew this as one or two bars
    old = np.histogram(np.degrees(snaps[-1]), bins=F.angle_bin_edges(72))[0]
    assert (old > 0).sum() <= 4  # 5° bins: four bars at most


def test_angle_histogram_range_given_by_the_whole_run():
    early = [np.radians([0.0, 0.5, -0.5])]
    fig = F.angle_histograms_over_time([10], early, half_range=F.angle_half_range(early + [np.radians([6.0])]))
    assert np.isclose(fig.data[0].x[-1], 1.15 * 6.0)
    assert F.angle_half_range([[0.0]]) > 0  # all zeros still draws
    assert F.angle_half_range([np.radians([400.0])]) <= 180


def test_angle_histograms_wrap_and_radian_edges():
    fig = F.angle_histograms_over_time([0], [[np.radians(190.0)], ], bins=36, half_range=180)
    counts = np.asarray(fig.data[0].z)
    assert counts.sum() == 1 and counts[0, 1] == 1  # 190 deg = -170 deg, bin [-170, -160)
    assert "wrapped" in fig.layout.title.text
    rad = F.angle_histograms_over_time([0], [[0.0, 1.0]], bins=8, degrees=False)
    assert np.isclose(rad.data[0].x[-1], 1.15) and np.isclose(rad.data[0].x[0], -1.15)


# --------------------------------------------------------------------------
# norm change
# --------------------------------------------------------------------------


def test_norm_change_histogram_counts_outliers_and_marks_one():
    ratios = {name: [1.0] * 20 for name in bert_names(1)}
    ratios[bert_names(1)[2]][7] = 1.4
    fig = F.norm_change_histogram(ratios)
    assert_styled(fig)
    assert len(fig.data) == 2
    assert isinstance(fig.data[0], go.Bar) and isinstance(fig.data[1], go.Scatter)
    assert "1 outlier " in fig.layout.title.text
    assert list(fig.data[1].x) == [1.4]
    assert any(shape.x0 == 1.0 for shape in fig.layout.shapes)  # the 1.0 line
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert sum(fig.data[0].y) == 120


def test_norm_change_histogram_accepts_plain_list_and_empty():
    fig = F.norm_change_histogram([0.99, 1.0, 1.01])
    assert "0 outliers" in fig.layout.title.text
    assert F.norm_change_histogram([]).layout.height


# --------------------------------------------------------------------------
# per-layer metrics over steps
# --------------------------------------------------------------------------


def test_energy_drift_log_axis_handles_exact_zeros():
    names = bert_names(1)
    drift = {name: [0.0, 1e-9, -0.02] for name in names}
    fig = F.energy_drift_over_steps([0, 100, 200], drift)
    assert_styled(fig)
    assert fig.layout.yaxis.type == "log"
    assert "rounding" in fig.data[0].name  # the band first, the layers on top
    for trace in fig.data[1:]:
        y = np.asarray(trace.y, dtype=float)
        assert (y > 0).all() and y[0] == F.LOG_FLOOR and np.isclose(y[2], 0.02)
    assert "1e-16" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "optimizer step" and fig.layout.yaxis.title.text


def test_orthogonality_has_tolerance_line_and_highlight():
    names = bert_names(6)  # 36 layers
    values = {name: [0.0, 1e-7, 1e-4] for name in names}
    fig = F.orthogonality_over_steps([0, 1, 2], values, highlight=names[20])
    assert len(fig.data) == 37  # one per layer + the tolerance line
    tolerance = fig.data[-1]
    assert list(tolerance.y) == [1e-5, 1e-5]
    layer_traces = fig.data[:-1]
    highlighted = [t for t in layer_traces if t.line.width == max(u.line.width for u in layer_traces)]
    assert len(highlighted) == 1 and highlighted[0].name == F.short_layer_name(names[20])
    assert highlighted[0].showlegend
    # legend stays small with 36 layers
    assert sum(bool(t.showlegend) for t in layer_traces) <= F.MAX_LEGEND_LAYERS + 1
    assert all(t.opacity < 1 for t in layer_traces if t is not highlighted[0])


def test_metric_over_steps_rejects_length_mismatch():
    with pytest.raises(ValueError):
        F.metric_over_steps([0, 1], {"a": [1.0]}, "t", "y")


def test_layer_metric_series_from_snapshots():
    snaps = [
        {"step": 0, "layers": {"a.0.x": {"orth_dev": 0.0}}},
        {"step": 5, "layers": {"a.0.x": {"orth_dev": 1e-3}, "a.1.x": {"orth_dev": 2e-3}}},
    ]
    steps, series = F.layer_metric_series(snaps, "orth_dev")
    assert steps == [0, 5]
    assert series["a.0.x"] == [0.0, 1e-3]
    assert np.isnan(series["a.1.x"][0]) and series["a.1.x"][1] == 2e-3


# --------------------------------------------------------------------------
# table, inspector, comparison
# --------------------------------------------------------------------------


def test_layer_overview_table_rows():
    names = bert_names(1)[:2]
    snapshot = {
        "step": 10,
        "layers": {
            names[0]: {"angles": [0.1, -0.2, 0.0], "norm_ratio": [0.9, 1.0, 1.2],
                       "orth_dev": 1e-7, "he_drift": 0.0},
            names[1]: {"norm_ratio": [1.0], "orth_dev": 0.0, "he_drift": 0.02},  # no angles (LoRA)
        },
    }
    rows = F.layer_overview_table(snapshot)
    assert [r["layer"] for r in rows] == ["L0.query", "L0.key"]
    assert set(rows[0]) == set(F.TABLE_COLUMNS)
    assert rows[0]["pairs"] == 3
    assert np.isclose(rows[0]["max |angle| (deg)"], np.degrees(0.2))
    assert np.isclose(rows[0]["mean |angle| (deg)"], np.degrees(0.1))
    assert rows[0]["norm ratio min"] == 0.9 and rows[0]["norm ratio max"] == 1.2
    assert rows[1]["pairs"] == 0 and rows[1]["max |angle| (deg)"] is None
    table = F.rows_to_html_table(rows)
    assert table.count("<tr>") == 3 and "max |angle| (deg)" in table


def test_layer_overview_table_reads_what_a_run_records():
    """The history's types: float32 arrays (empty without rotations), NaN for undefined values."""
    from qgoft_core.explore.history import layer_snapshot
    names = bert_names(1)[:2]
    snapshot = {"step": 3, "layers": {
        names[0]: layer_snapshot(np.array([0.1, -0.2], np.float32), np.array([0.9, 1.1], np.float32), 1e-7, 0.0),
        names[1]: layer_snapshot(None, np.array([1.0], np.float32), float("nan"), 0.02)}}
    rows = F.layer_overview_table(snapshot)
    assert rows[0]["pairs"] == 2 and np.isclose(rows[0]["max |angle| (deg)"], np.degrees(0.2), rtol=1e-6)
    assert rows[1]["pairs"] == 0 and rows[1]["orth dev"] is None  # NaN -> None by the one policy
    steps, orth = F.layer_metric_series([snapshot], "orth_dev")
    assert steps == [3] and np.isnan(orth[names[1]][0])
    fig = F.angle_heatmap(names, [snapshot["layers"][n]["angles"] for n in names])
    assert fig.data[0].z.shape == (2, 2)


def test_figures_module_reexports_the_split_modules():
    from qgoft_core.viz import compare_charts, html_pages, layer_charts, style, training_charts
    assert F.loss_curves is training_charts.loss_curves and F.angle_heatmap is layer_charts.angle_heatmap
    assert F.TEMPLATE is style.TEMPLATE and F.html_report is html_pages.html_report
    assert F.accuracy_vs_kept is compare_charts.accuracy_vs_kept
    assert all(hasattr(F, name) for name in F.__all__)


def test_spectrum_figure_log_axis():
    fig = F.spectrum_figure([1.0, 3.0, 2.0], [3.0, 2.0, 0.0], bert_names(1)[0])
    assert_styled(fig)
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"
    assert list(fig.data[0].y) == [3.0, 2.0, 1.0]  # sorted, largest first
    assert min(fig.data[1].y) == F.LOG_FLOOR  # a zero singular value stays drawable
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_method_compare_bars_and_accuracy_vs_kept():
    rows = [{"method": "qGOFT", "accuracy": 0.9}, {"method": "LoRA", "accuracy": 0.92},
            {"method": "full FT", "accuracy": None}]
    bars = F.method_compare_bars(rows, "accuracy", "Held-out accuracy", y_title="accuracy (fraction)")
    assert_styled(bars)
    assert len(bars.data) == 1 and isinstance(bars.data[0], go.Bar)
    assert list(bars.data[0].x) == ["qGOFT", "LoRA", "full FT"]
    assert bars.layout.yaxis.title.text == "accuracy (fraction)"

    curves = {
        "qGOFT": {"kept": [100, 99], "accuracy": [0.5, 0.8], "step": [0, 100]},
        "LoRA": {"kept": [100, 90, 85], "accuracy": [0.5, 0.85, 0.9], "step": [0, 100, 200]},
    }
    fig = F.accuracy_vs_kept(curves, "retention (%)")
    assert_styled(fig)
    assert [t.name for t in fig.data] == ["qGOFT", "LoRA"]
    assert all("markers" in t.mode for t in fig.data)
    assert list(fig.data[1].customdata) == [0, 100, 200] and "step" in fig.data[1].hovertemplate
    assert fig.layout.xaxis.title.text == "retention (%)" and "%" in fig.layout.yaxis.title.text


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------


def test_figure_to_html_div_has_no_plotlyjs():
    div = F.figure_to_html_div(F.loss_curves(step_records(5), []))
    assert "plotly-graph-div" in div
    assert len(div) < 500_000  # plotly.js itself is megabytes


def test_html_report_is_self_contained():
    figures = [
        F.loss_curves(step_records(50), eval_records(5)),
        F.angle_heatmap(bert_names(1), [np.full(10, 0.1)] * 6),
    ]
    table = F.rows_to_html_table([{"layer": "L0.query", "orth dev": 1e-7}])
    sections = [
        ("Training <curves>", "What you see: loss.\n\nTry this: raise λ.", figures[0]),
        ("Rotation angles", "Each row is a layer.", figures[1]),
        ("Layer table", "One row per layer.", table),
    ]
    page = F.html_report("qGOFT run report", sections)
    assert page.startswith("<!DOCTYPE html>")
    assert "Training &lt;curves&gt;" in page  # headings escaped
    for heading in ("Rotation angles", "Layer table"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count('class="plotly-graph-div"') == len(figures)
    assert page.count(plotly.offline.get_plotlyjs()) == 1  # inlined exactly once
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing fetched from a network
    assert table in page
    assert page.count('<p class="explain">') == 4


def test_norm_histogram_handles_ratios_a_few_ulps_apart():
    """Strict GOFT norm ratios are 1 +- a few float64 ulps; np.histogram used to
    refuse 60 bins over such a range ("Too many bins for data range")."""
    import numpy as np
    from qgoft_core.viz.figures import norm_change_histogram

    ratios = 1.0 + np.array([0.0, 2.2e-16, -1.1e-16, 4.4e-16] * 25)
    fig = norm_change_histogram(ratios)
    assert sum(fig.data[0].y) == ratios.size
