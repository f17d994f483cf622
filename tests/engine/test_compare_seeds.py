"""Several seeds of one comparison: `aggregate_seeds` gives numpy's mean and sample sd of the
per-seed rows, refuses runs that are not the same comparison, keeps every run, and files of
the one-seed format (qgoft-compare/1) still load. Small constructed results: no training."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qgoft_core.explore import compare as C

KEYS = ("goft", "lora", "head")


def _run(seed: int, values: dict[str, dict[str, float]] | None = None, *, task: str = "sentiment",
         steps: int = 60, model: str = "m", keys=KEYS, lr: dict[str, float] | None = None,
         curve_steps=(0, 30, 60)) -> C.CompareResult:
    """One seed's comparison with the given column values (others derived from the seed)."""
    rng = np.random.default_rng(seed)
    rows, curves, methods = [], {}, {}
    for key in keys:
        spec = C.COMPARE_METHODS[key]
        numbers = {"accuracy": rng.uniform(0.8, 1), "sec_per_step": rng.uniform(0.1, 1),
                   "orth_dev": rng.uniform(0, 0.1), "he_drift": rng.uniform(0, 1e-4), "cka": rng.uniform(0.3, 1),
                   "retention_tuned": rng.uniform(0.8, 0.9), "retention_kept": rng.uniform(0.9, 1.01),
                   **(values or {}).get(key, {})}
        rows.append(C.CompareRow(key=key, label=spec.label, method=spec.method, trainable_params=1000,
                                 total_params=5000, retention_base=0.9, lr=(lr or {}).get(key, spec.lr),
                                 steps=steps, seconds=10.0, **numbers))
        curves[key] = {"step": list(curve_steps), "accuracy": rng.uniform(0.5, 1, len(curve_steps)).tolist(),
                       "kept": rng.uniform(0.5, 1, len(curve_steps)).tolist(),
                       "loss": rng.uniform(0, 1, len(curve_steps)).tolist()}
        methods[key] = C.method_config(key, task, seed, steps, lr=rows[-1].lr).to_dict()
    meta = {"methods": methods, "eval_every": 12, "batch_size": 16, "max_length": 64,
            "created": f"2026-12-0{1 + seed % 9}T00:00:00+00:00", "command": f"make --seed {seed}",
            "versions": {"torch": "x"}, "device": f"CPU, {1 + seed % 2} thread(s)"}
    return C.CompareResult(task=task, seed=seed, steps=steps, model=model, rows=rows, curves=curves, meta=meta)


@settings(max_examples=25, deadline=None)
@given(seeds=st.lists(st.integers(0, 1000), min_size=2, max_size=5, unique=True))
def test_mean_and_sd_are_numpys_of_the_per_seed_rows(seeds):
    runs = [_run(s) for s in seeds]
    result = C.aggregate_seeds(runs)
    assert result.seeds == sorted(seeds) and result.seed == min(seeds)
    assert [r.seed for r in result.per_seed] == sorted(seeds)
    for row in result.rows:
        per_seed = [run.row(row.key) for run in result.per_seed]
        assert row.n_seeds == len(seeds) and row.status == "ok"
        for name in C.SEED_AVERAGED:
            values = np.array([getattr(r, name) for r in per_seed])
            assert getattr(row, name) == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
            assert row.sd(name) == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)
        curve, runs_curves = result.curves[row.key], [run.curves[row.key] for run in result.per_seed]
        assert curve["step"] == [0, 30, 60]
        for name in ("accuracy", "kept", "loss"):
            expected = np.mean([c[name] for c in runs_curves], axis=0)
            assert curve[name] == pytest.approx(expected.tolist())
        assert curve["accuracy_sd"] == pytest.approx(np.std([c["accuracy"] for c in runs_curves], axis=0,
                                                            ddof=1).tolist())


def test_one_run_has_no_spread_and_its_numbers_stay_finite():
    run = _run(0)
    assert run.seeds == [0] and all(r.n_seeds == 1 for r in run.rows)
    assert all(math.isnan(r.sd(name)) for r in run.rows for name in C.SEED_AVERAGED)
    assert not any(name.endswith("_sd") for name in run.rows[0].numbers())  # what "every column filled" checks
    single = C.aggregate_seeds([run])
    assert single.rows[0].n_seeds == 1 and math.isnan(single.rows[0].accuracy_sd)


@pytest.mark.parametrize("change, message", [
    ({"task": "topic"}, "different task"),
    ({"steps": 80}, "different steps"),
    ({"model": "other"}, "different model"),
    ({"keys": ("goft", "lora")}, "different methods"),
    ({"lr": {"lora": 1e-2}}, r"lora was run with different settings in seeds 0 and 1 \(lr\)"),
])
def test_runs_of_another_comparison_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        C.aggregate_seeds([_run(0), _run(1, **change)])


def test_a_seed_counts_once():
    with pytest.raises(ValueError, match="seed 1 given more than once"):
        C.aggregate_seeds([_run(0), _run(1), _run(1)])
    both = C.aggregate_seeds([_run(0), _run(1)])
    with pytest.raises(ValueError, match="seed 1 given more than once"):
        C.aggregate_seeds([both, _run(1)])  # a multi-seed input brings its runs
    with pytest.raises(ValueError, match="no comparisons"):
        C.aggregate_seeds([])


def test_other_settings_refused_but_a_field_an_older_file_lacks_is_its_default():
    old = _run(0)
    for config in old.meta["methods"].values():
        config.pop("eval_sample")  # a field added after the file was made
    assert C.aggregate_seeds([old, _run(1)]).seeds == [0, 1]
    other = _run(1)
    other.meta["methods"]["goft"]["batch_size"] = 8
    with pytest.raises(ValueError, match=r"goft was run with different settings.*batch_size"):
        C.aggregate_seeds([_run(0), other])


def test_multi_seed_inputs_join_with_new_seeds():
    first = C.aggregate_seeds([_run(0), _run(1)])
    joined = C.aggregate_seeds([_run(2), first])
    assert joined.seeds == [0, 1, 2]
    assert joined.to_dict() == C.aggregate_seeds([_run(0), _run(1), _run(2)]).to_dict()


def test_a_failed_seed_is_named_and_left_out_of_the_mean():
    runs = [_run(0), _run(1), _run(2)]
    failed = runs[1].row("lora")
    for name in C.SEED_AVERAGED:
        setattr(failed, name, math.nan)
    failed.status = "could not start: lora_r must be positive"
    stopped = runs[2].row("goft")
    stopped.status, stopped.steps = "stopped at step 40 of 60: time limit", 40
    result = C.aggregate_seeds(runs)
    lora, goft = result.row("lora"), result.row("goft")
    assert lora.n_seeds == 2 and lora.status == "seed 1: could not start: lora_r must be positive"
    assert lora.accuracy == pytest.approx(np.mean([runs[0].row("lora").accuracy, runs[2].row("lora").accuracy]))
    assert goft.status == "seed 2: stopped at step 40 of 60: time limit" and goft.steps == 40
    assert result.row("head").status == "ok"


def test_curves_average_the_steps_every_seed_has():
    short = _run(1, curve_steps=(0, 30))
    result = C.aggregate_seeds([_run(0), short])
    assert result.curves["goft"]["step"] == [0, 30]
    assert result.curves["goft"]["accuracy"][1] == pytest.approx(
        (_run(0).curves["goft"]["accuracy"][1] + short.curves["goft"]["accuracy"][1]) / 2)


def test_meta_keeps_each_run_and_the_shared_settings():
    result = C.aggregate_seeds([_run(0), _run(1), _run(2)])
    meta = result.meta
    assert [r["seed"] for r in meta["runs"]] == [0, 1, 2]
    assert [r["command"] for r in meta["runs"]] == ["make --seed 0", "make --seed 1", "make --seed 2"]
    assert all(r["versions"] == {"torch": "x"} for r in meta["runs"])
    assert meta["batch_size"] == 16 and meta["eval_every"] == 12
    assert "seed" not in meta["methods"]["goft"] and meta["methods"]["goft"]["lr"] == C.COMPARE_METHODS["goft"].lr
    assert meta["created"] == "2026-12-03T00:00:00+00:00"  # the newest run
    assert meta["device"] == "CPU, 1 thread(s); CPU, 2 thread(s)"


def test_json_round_trip_keeps_seeds_spreads_and_runs():
    result = C.aggregate_seeds([_run(0), _run(1), _run(2)])
    text = C.result_to_json(result)
    data = json.loads(text)  # strict JSON: no NaN
    assert data["format"] == C.FORMAT and data["seeds"] == [0, 1, 2] and len(data["per_seed"]) == 3
    back = C.result_from_json(text)
    assert back.seeds == [0, 1, 2] and back.rows == result.rows
    assert [r.rows for r in back.per_seed] == [r.rows for r in result.per_seed]
    assert back.curves["lora"]["kept_sd"] == pytest.approx(result.curves["lora"]["kept_sd"])
    assert C.result_to_json(back) == text
    header = C.rows_to_csv(back.rows).splitlines()[0].split(",")
    assert {"n_seeds", "accuracy_sd", "cka_sd", "retention_kept_sd"} <= set(header)


def test_a_one_seed_file_of_the_first_format_still_loads():
    data = _run(0).to_dict()
    data["format"] = "qgoft-compare/1"
    del data["seeds"]
    for row in data["rows"]:  # a /1 row has none of the spread fields
        for name in [n for n in row if n.endswith("_sd") or n == "n_seeds"]:
            del row[name]
    result = C.result_from_json(json.dumps(data))
    assert result.seeds == [0] and not result.per_seed
    assert all(r.n_seeds == 1 and math.isnan(r.accuracy_sd) for r in result.rows)
    assert C.aggregate_seeds([result, _run(1)]).seeds == [0, 1]
    with pytest.raises(ValueError, match="not a method comparison"):
        C.result_from_json(json.dumps({**data, "format": "qgoft-compare/9"}))


def test_select_methods_also_filters_every_run():
    result = C.select_methods(C.aggregate_seeds([_run(0), _run(1)]), ["lora"])
    assert [r.key for r in result.rows] == ["lora"] and set(result.curves) == {"lora"}
    assert all([r.key for r in run.rows] == ["lora"] for run in result.per_seed)
