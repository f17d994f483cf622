"""The Compare tab without a browser: a live comparison fills its table method by method, the
page says why Train and Lessons give other numbers for the same method, and a multi-seed
comparison is described and exported as one."""
from __future__ import annotations

import math
from pathlib import Path

from demos import comparisons, presets
from qgoft_core.explore import compare as C
from qgoft_core.explore.registry import METHOD_SPECS
from qgoft_core.explore.training import RunConfig
from tests.engine.test_compare_seeds import _run
from ui import compare_tab as T


def _events(keys=("goft", "lora", "head")):
    """The events compare_runs streams for `keys`, on rows made up for the test."""
    full = _run(0, keys=keys)
    result = C.CompareResult(task=full.task, seed=0, steps=60, model="m", meta=full.meta)
    total = len(keys)
    for index, key in enumerate(keys):
        yield C.CompareEvent("start", key, {}, result, index, total)
        yield C.CompareEvent("step", key, {"step": 1, "loss": 0.5, "sec_per_step": 0.1}, result, index, total)
        result.curves[key] = full.curves[key]
        yield C.CompareEvent("eval", key, {"step": 60, "accuracy": 0.9}, result, index, total)
        result.rows.append(full.row(key))
        yield C.CompareEvent("row", key, full.row(key).to_dict(), result, index, total)
    yield C.CompareEvent("done", "", {}, result, total - 1, total)


def test_a_live_comparison_fills_its_table_method_by_method():
    clock = iter(range(1000)).__next__  # every look at the clock is a second later
    shown = []
    for update in T.live_updates(_events(), steps=60, started=0.0, clock=lambda: float(clock())):
        if "table" in update:
            shown.append(list(update["table"]["method"]))
            assert update["result"].rows and update["summary"]
    assert shown[:3] == [["GOFT"], ["GOFT", "LoRA"], ["GOFT", "LoRA", "Head only"]]
    assert len(shown) == 4  # and the finished comparison once more, with the closing status


def test_the_last_update_closes_with_the_status_and_the_files():
    updates = list(T.live_updates(_events(("goft",)), steps=60, started=0.0, clock=lambda: 5.0))
    assert updates[-1]["status"].startswith("Live comparison finished in 5 s: task **sentiment**, seed 0")
    assert updates[-1]["result"].row("goft") is not None
    errors = [C.CompareEvent("error", "lora", {"message": "could not start: bad"}, C.CompareResult("t", 0, 1, "m"),
                             0, 1)]
    assert list(T.live_updates(errors, 1, 0.0))[0] == {"status": "**LoRA:** could not start: bad"}


def test_the_page_says_why_train_and_lessons_differ():
    note = T.defaults_note()
    for entry in C.COMPARE_METHODS.values():
        usual = METHOD_SPECS[entry.method].default_lr
        if entry.variant:
            continue
        if math.isclose(entry.lr, usual):
            assert f"{entry.label} {entry.lr:g}" not in note
        else:  # both rates named
            assert f"{entry.label} {entry.lr:g}" in note.split("while")[0]
            assert f"{entry.label} {usual:g}" in note.split("while")[1]
    train = RunConfig()
    assert (train.batch_size, train.steps, train.seed) == tuple(presets.COMMON_CONFIG[k] for k in
                                                               ("batch_size", "steps", "seed"))
    assert f"batch {train.batch_size}, {train.steps} steps, seed {train.seed}" in note
    assert f"defaults to {T.DEFAULT_LIVE_STEPS} steps" in note


def test_the_note_says_so_when_the_rates_agree(monkeypatch):
    same = {k: C.CompareMethod(m.key, m.label, {**m.overrides, "lr": METHOD_SPECS[m.method].default_lr}, m.note,
                               m.variant) for k, m in C.COMPARE_METHODS.items()}
    monkeypatch.setattr(C, "COMPARE_METHODS", same)
    assert T.defaults_note().startswith("Train and Lessons use the same learning rates as Compare")


def test_a_multi_seed_comparison_is_described_and_exported_as_one(tmp_path, monkeypatch):
    monkeypatch.setattr(comparisons, "PRECOMPUTED_DIR", tmp_path)
    monkeypatch.setattr(T, "EXPORT_DIR", tmp_path / "exports")
    joined = C.aggregate_seeds([_run(0), _run(1), _run(2)])
    joined.meta["command"] = "python demos/make_precomputed.py --from a b c"
    (tmp_path / "compare_sentiment.json").write_text(C.result_to_json(joined))
    shown, status = T.load_precomputed_view("sentiment", ["goft", "lora"])
    assert "seeds 0, 1, 2 (mean ± sd)" in status and "(3 runs; each run's command" in status
    assert [r.key for r in shown.rows] == ["goft", "lora"]
    views = T.views(shown)
    assert "±" in views["table"]["accuracy (%)"][0] and "mean ± sd over seeds 0, 1, 2" in views["summary"]
    csv_path, json_path = T.export_files(shown)
    assert "seeds0-1-2" in json_path and "seeds0-1-2" in csv_path
    assert C.result_from_json(Path(json_path).read_text()).seeds == [0, 1, 2]


def test_the_status_after_each_method_says_what_comes_next_truthfully():
    """After the last method nothing else is measured: the status says the comparison is done,
    never "measuring the next method"."""
    statuses = [u["status"] for u in T.live_updates(_events(), steps=60, started=0.0, clock=lambda: 5.0)
                if "status" in u]
    after_rows = [s for s in statuses if ": done;" in s]
    assert len(after_rows) == 3
    assert "starting method 2 of 3" in after_rows[0] and "starting method 3 of 3" in after_rows[1]
    assert "Head only" in after_rows[2] and "all 3 methods have finished" in after_rows[2]
    assert not any("next method" in s for s in after_rows[2:])
    assert statuses[-1].startswith("Live comparison finished")
    one = [u["status"] for u in T.live_updates(_events(("goft",)), steps=60, started=0.0, clock=lambda: 5.0)]
    assert any(s.endswith("done; drawing the final table…") for s in one) and "next" not in " ".join(one)


def test_the_note_says_a_precomputed_row_is_a_mean_over_seeds():
    """A shipped row is the mean of several seeds: Train makes one of those runs, not the row."""
    seed = RunConfig().seed
    shipped_seeds = T._shipped_seeds()
    assert len(shipped_seeds) > 1 and seed in shipped_seeds  # the shipped file the tab opens on
    note = T.defaults_note()
    assert "make the run a precomputed row comes from" not in note
    seeds = ", ".join(map(str, shipped_seeds))
    assert f"the seed-{seed} run, one of the {len(shipped_seeds)} (seeds {seeds}) whose mean a precomputed row" \
           in note
    other = T.defaults_note([seed + 1, seed + 2, seed + 3])
    assert f"with another seed ({seed})" in other and f"seed-{seed} run" not in other
    assert "the run a precomputed row comes from" in T.defaults_note([seed])  # one seed: that run is the row
