"""Earlier runs drawn beside the current one: what is kept of a history, and how the charts draw it."""
import math

import numpy as np

from qgoft_core.viz import training_charts as T


def evals(n: int, start: float = 0.5) -> list[dict]:
    return [{"step": 10 * i, "loss": 1.0 / (i + 1), "accuracy": start + 0.01 * i, "cka": 0.99} for i in range(n)]


def snapshots(n: int, orth: float, drift: float) -> list[dict]:
    layers = ("enc.layer.0.attention.self.query", "enc.layer.0.output.dense", "enc.layer.1.output.dense")
    return [{"step": 10 * i, "layers": {name: {"orth_dev": orth * (k + 1) * i, "he_drift": -drift * (k + 1) * i,
                                               "angles": np.zeros(4, np.float32)}
                                        for k, name in enumerate(layers)}} for i in range(n)]


def test_an_earlier_run_keeps_only_its_lines_at_most_max_points():
    run = T.earlier_run("run 1 · GOFT", evals(1000), snapshots(900, 1e-7, 1e-10), max_points=300)
    assert len(run.evals) <= 300 and run.evals[0]["step"] == 0 and run.evals[-1]["step"] == 9990
    assert set(run.evals[0]) == {"step", "loss", "accuracy"}  # nothing else of the records
    assert len(run.snap_steps) == len(run.orth_dev) == len(run.he_drift) <= 300
    # the median layer (the second of three), the drift as a size
    i = run.snap_steps.index(10 * 899)
    assert math.isclose(run.orth_dev[i], 2e-7 * 899) and math.isclose(run.he_drift[i], 2e-10 * 899)


def test_loss_curves_draw_earlier_runs_after_the_current_ones_one_legend_entry_each():
    first, second = T.EARLIER_STYLES
    older = T.earlier_run("run 1 · LoRA", evals(5, 0.6), [], color=second[0], dash=second[1])
    newer = T.earlier_run("run 2 · GOFT", evals(7), [], color=first[0], dash=first[1])
    fig = T.loss_curves([], evals(3), regulariser=True, earlier=[newer, older])
    names = [t.name for t in fig.data]
    assert names[:4] == ["train task loss", "held-out loss", "regulariser loss", "held-out accuracy"]
    assert names[4:] == ["run 2 · GOFT"] * 2 + ["run 1 · LoRA"] * 2
    loss, accuracy = fig.data[4], fig.data[5]
    assert loss.line.dash == "dot" and loss.line.color == first[0] and fig.data[6].line.dash == "dashdot"
    assert loss.yaxis == fig.data[1].yaxis and accuracy.yaxis == fig.data[3].yaxis  # same panels as the run's
    assert list(accuracy.y) == [100 * e["accuracy"] for e in newer.evals]
    assert [t.showlegend for t in fig.data[4:]] == [None, False, None, False]
    assert "earlier runs" in fig.layout.title.text


def test_loss_curves_without_earlier_runs_are_unchanged():
    fig = T.loss_curves([], [], regulariser=False)
    assert len(fig.data) == 3 and "earlier" not in fig.layout.title.text


def test_orthogonality_and_energy_charts_add_the_median_layer_of_each_earlier_run():
    goft = T.earlier_run("run 1 · GOFT", evals(3), snapshots(4, 1e-7, 1e-10))
    orth = T.orthogonality_over_steps([0, 10], {"enc.layer.0.output.dense": [0.0, 3e-4]}, earlier=[goft])
    assert [t.name for t in orth.data][-1] == "run 1 · GOFT (median layer)"
    ref = orth.data[-1]
    assert ref.line.dash == T.EARLIER_STYLES[0][1] and list(ref.x) == [0, 10, 20, 30]
    assert ref.y[0] == 1e-16 and ref.customdata[0] == 0.0  # a log axis: 0 drawn at the floor, hover says 0
    energy = T.energy_drift_over_steps([0, 10], {"enc.layer.0.output.dense": [0.0, 1e-4]}, earlier=[goft])
    assert energy.data[0].fill == "toself"  # the rounding band stays the first trace
    assert energy.data[-1].name == "run 1 · GOFT (median layer)" and min(energy.data[-1].customdata) >= 0


def test_a_run_without_the_metric_draws_no_reference_line():
    lora = T.earlier_run("run 1 · LoRA", evals(2), snapshots(3, math.nan, 1e-5))
    orth = T.orthogonality_over_steps([0, 10], {"enc.layer.0.output.dense": [0.0, 3e-4]}, earlier=[lora])
    assert not any("run 1" in (t.name or "") for t in orth.data)
    energy = T.energy_drift_over_steps([0, 10], {"enc.layer.0.output.dense": [0.0, 1e-4]}, earlier=[lora])
    assert energy.data[-1].name == "run 1 · LoRA (median layer)"
