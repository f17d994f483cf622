"""The engine's one run history: record types, the one NaN policy, one versioned JSON schema.

What a TrainingRun records (steps, evaluations, snapshots, retention probes)
is what the views, the exports, the ZeroGPU chunks and the lessons read.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from qgoft_core.explore import history as H
from qgoft_core.explore.history import RunHistory


# -- the NaN policy ------------------------------------------------------------------
def test_json_safe_turns_nan_and_inf_into_null_everywhere():
    value = {1: np.array([1.0, np.nan, np.inf], dtype=np.float32), "t": (np.float64(-np.inf), np.int64(3)),
             "b": np.bool_(True), "n": None, "s": "text", "nested": [{"x": float("nan")}],
             "tensor": torch.tensor([0.5, float("nan")])}
    safe = H.json_safe(value)
    assert safe == {"1": [1.0, None, None], "t": [None, 3], "b": True, "n": None, "s": "text",
                    "nested": [{"x": None}], "tensor": [0.5, None]}
    json.dumps(safe, allow_nan=False)
    assert type(safe["t"][1]) is int and type(safe["b"]) is bool


def test_json_safe_rounds_only_when_asked():
    assert H.json_safe(np.float32(0.1)) == float(np.float32(0.1))  # every bit
    assert H.json_safe(np.float32(0.1), 7) == 0.1
    assert H.json_safe([1 / 3], 4) == [0.3333]


@pytest.mark.parametrize("value, expected", [
    (1.5, 1.5), (np.float32(2.0), 2.0), (3, 3.0), (float("nan"), None), (float("inf"), None),
    (None, None), ("1.0", None), (object(), None)])
def test_finite_or_none(value, expected):
    assert H.finite_or_none(value) == expected


def test_float_or_nan_is_the_way_back():
    assert math.isnan(H.float_or_nan(None)) and H.float_or_nan(2) == 2.0 and math.isnan(H.float_or_nan("x"))


# -- the records --------------------------------------------------------------------------
def sample_history() -> RunHistory:
    history = RunHistory()
    history.add("eval", {"step": 0, "accuracy": 0.5, "loss": 0.69, "cka": 1.0})
    history.add("snapshot", {"step": 0, "layers": {
        "enc.layer.0.q": H.layer_snapshot(np.zeros(3, np.float32), [1.0, 1.0], 0.0, 0.0),
        "enc.layer.0.k": H.layer_snapshot(None, [1.0], float("nan"), 0.0)}})
    history.add("retention", {"step": 0, "base": 0.9, "tuned": 0.9, "kept": 1.0})
    history.add("step", {"step": 1, "loss": 0.6, "reg_loss": 1e-9, "lr": 1e-3, "sec_per_step": 0.1,
                         "examples_per_sec": 160.0})
    history.add("eval", {"step": 1, "accuracy": 0.75, "loss": 0.5, "cka": float("nan")})
    history.add("snapshot", {"step": 1, "layers": {
        "enc.layer.0.q": H.layer_snapshot([0.1, -0.2, 0.123456789], [1.0, 1.5], 1e-17, -1e-3,
                                          block={"penalty": 0.25, "reflections": 1}, scales=[1.0, 2.0]),
        "enc.layer.0.k": H.layer_snapshot([], [0.5], None, 2e-3)}})
    return history


def test_layer_snapshot_has_the_canonical_types():
    layer = H.layer_snapshot([0.1, 0.2], torch.tensor([1.0]), None, np.float64(1e-3), {"reflections": np.int64(2)})
    assert layer["angles"].dtype == np.float32 and layer["norm_ratio"].dtype == np.float32
    assert math.isnan(layer["orth_dev"]) and type(layer["he_drift"]) is float
    assert layer["block"] == {"reflections": 2} and layer["scales"] is None
    assert H.layer_snapshot()["angles"].shape == (0,)


def test_events_come_in_the_order_a_run_records_them():
    kinds = [(kind, r["step"]) for kind, r in sample_history().events()]
    assert kinds == [("eval", 0), ("snapshot", 0), ("retention", 0), ("step", 1), ("eval", 1), ("snapshot", 1)]


def test_add_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown record kind"):
        RunHistory().add("loss", {"step": 1})


def test_views_of_the_history():
    history = sample_history()
    assert history.snapshot_steps == [0, 1] and history.layer_names() == ["enc.layer.0.q", "enc.layer.0.k"]
    steps, series = history.layer_series("orth_dev")
    assert steps == [0, 1] and series["enc.layer.0.q"] == [0.0, pytest.approx(1e-17)]
    assert math.isnan(series["enc.layer.0.k"][0]) and math.isnan(series["enc.layer.0.k"][1])
    assert history.layer_series("he_drift", upto_index=0)[0] == [0]
    table = history.layer_table("he_drift")
    assert table.shape == (2, 2) and table.dtype == np.float64
    assert history.snapshot_index(None) == 1 and history.snapshot_index(0) == 0 and history.snapshot_index(5) == 1
    early = history.upto(0)
    assert len(early.steps) == 0 and len(early.evals) == len(early.snapshots) == len(early.retention) == 1
    assert history.angles_at(1)["enc.layer.0.k"].size == 0
    assert not RunHistory() and history


# -- one JSON schema ---------------------------------------------------------------------------
def test_to_json_is_strict_json_with_schema_and_version():
    data = json.loads(sample_history().to_json())
    assert data["schema"] == H.SCHEMA and data["version"] == H.SCHEMA_VERSION
    assert set(data) == {"schema", "version", "steps", "evals", "retention", "snapshots"}
    assert data["evals"][1]["cka"] is None
    k_layer = data["snapshots"][1]["layers"]["enc.layer.0.k"]
    assert k_layer == {"angles": [], "norm_ratio": [0.5], "orth_dev": None, "he_drift": 0.002, "block": {},
                       "scales": None}
    q_angles = data["snapshots"][1]["layers"]["enc.layer.0.q"]["angles"]
    assert q_angles == [0.1, -0.2, 0.12345679]  # float32 precision: the shortest decimal that reads back


def test_round_trip_reads_nan_back_and_keeps_float32_values():
    history = sample_history()
    back = RunHistory.from_json(history.to_json())
    assert [e[0] for e in back.events()] == [e[0] for e in history.events()]
    assert math.isnan(back.evals[1]["cka"]) and back.steps[0] == history.steps[0]
    layer, original = back.snapshots[1]["layers"]["enc.layer.0.q"], history.snapshots[1]["layers"]["enc.layer.0.q"]
    assert layer["angles"].dtype == np.float32
    np.testing.assert_array_equal(layer["angles"], original["angles"])  # every float32 bit
    assert layer["block"] == {"penalty": 0.25, "reflections": 1}
    np.testing.assert_array_equal(layer["scales"], [1.0, 2.0])
    assert math.isnan(back.snapshots[1]["layers"]["enc.layer.0.k"]["orth_dev"])
    assert RunHistory.from_json(back.to_json()).to_json() == back.to_json()  # stable


def test_exact_form_keeps_every_bit():
    history = RunHistory()
    angles = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    history.add("snapshot", {"step": 3, "layers": {"a": H.layer_snapshot(angles, angles, 1 / 3, 2 / 3)}})
    back = RunHistory.from_json(json.loads(json.dumps(history.to_dict(digits=None))))
    np.testing.assert_array_equal(back.snapshots[0]["layers"]["a"]["angles"], angles)
    assert back.snapshots[0]["layers"]["a"]["orth_dev"] == 1 / 3


@pytest.mark.parametrize("data, message", [
    ("not json", "not JSON"), ({"schema": "other"}, "not a run history"),
    ({"schema": H.SCHEMA, "version": 99}, "version 99"),
    ({"schema": H.SCHEMA, "version": H.SCHEMA_VERSION, "snapshots": [{"step": 0}]}, "damaged")])
def test_from_json_refuses_other_files(data, message):
    with pytest.raises(H.HistoryFormatError, match=message):
        RunHistory.from_json(data)


# -- what a TrainingRun records is this type --------------------------------------------------------
@pytest.mark.parametrize("method", ["qgoft", "lora"])
def test_a_training_run_records_a_run_history_that_round_trips(tiny_base, one_thread, method):
    from qgoft_core.explore.training import RunConfig, TrainingRun
    run = TrainingRun(RunConfig(method=method, steps=2, eval_every=2, batch_size=4, eval_examples=8,
                                max_length=16, device="cpu"), base=tiny_base)
    list(run.run())
    history = run.history
    assert isinstance(history, RunHistory)
    assert set(history.steps[0]) == set(H.StepRecord.__annotations__)
    assert set(history.evals[0]) == set(H.EvalRecord.__annotations__)
    snapshot = history.snapshots[-1]
    assert set(snapshot) == set(H.Snapshot.__annotations__)
    for layer in snapshot["layers"].values():
        assert set(layer) == set(H.LayerSnapshot.__annotations__)
        assert layer["angles"].dtype == np.float32 and layer["norm_ratio"].dtype == np.float32
        assert (layer["angles"].size > 0) == (method == "qgoft")
        assert (layer["block"] != {}) == (method == "qgoft")
        assert math.isnan(layer["orth_dev"]) == (method == "lora")
    back = RunHistory.from_json(history.to_json())
    assert back.to_json() == history.to_json()
    assert [k for k, _ in back.events()] == ["eval", "snapshot", "step", "step", "eval", "snapshot"]


def test_float32_to_json_is_short_and_exact():
    values = np.random.default_rng(1).normal(scale=1e-2, size=20000).astype(np.float32)
    written = H.float32_to_json(values)
    assert np.array_equal(np.asarray(written, dtype=np.float64).astype(np.float32), values)
    assert max(len(repr(v)) for v in written) <= 16  # at most 9 significant digits, not 17
    assert H.float32_to_json([0.0, float("nan"), float("inf"), 1.0]) == [0.0, None, None, 1.0]
