"""Runs to compare in Train (a tiny local model, no server): a replaced run is kept and drawn beside
the new one, the last two are kept, changing a setting says what Train will do, and the settings
that act live stay with the run they belong to."""
import json
import pickle
from dataclasses import replace

import pytest


def registry_for(**overrides):
    from ui.runs import RunRegistry
    from ui.settings import Settings
    return RunRegistry(replace(Settings(), cpu_threads=2, **overrides))


def controls_for(model_dir, method="goft", steps=3, seed=0, **more):
    from ui.train.controls import Controls
    return Controls(model=model_dir, method=method, steps=steps, batch_size=4, seed=seed, **more)


def train(registry, session, controls) -> dict:
    """Train to the end; the merged view values the page ends up with."""
    from ui.train.stream import train_stream
    shown: dict = {}
    for values in train_stream(registry, session, controls):
        shown.update(values)
    return shown


def trace_names(plot) -> list[str]:
    return [t.get("name") for t in json.loads(plot.plot)["data"]]


def test_goft_then_qgoft_keeps_the_goft_run_beside_the_new_one(tiny_base_dir):
    from ui import train_views as V
    from ui.train import earlier as E
    from ui.train.handlers import new_run_notice
    registry = registry_for()
    first = train(registry, "teacher", controls_for(tiny_base_dir, "goft"))
    assert first[V.INFO]["state"] == "done" and first[V.EARLIER].visible is False  # nothing kept yet
    assert new_run_notice(registry, "teacher", controls_for(tiny_base_dir, "goft")) == ""  # Train continues it

    notice = new_run_notice(registry, "teacher", controls_for(tiny_base_dir, "qgoft"))
    assert "Pressing ▶ Train starts a new run" in notice and "method GOFT → qGOFT" in notice
    assert "run 1 · GOFT" in notice and "kept for comparison" in notice

    second = train(registry, "teacher", controls_for(tiny_base_dir, "qgoft"))
    assert second[V.INFO]["state"] == "done" and second[V.INFO]["method"] == "qgoft"
    assert "run 1 · GOFT" in second[V.STATUS] and "kept for comparison" in second[V.STATUS]
    assert "run 1 · GOFT" in trace_names(second[V.LOSS_PLOT])
    assert "run 1 · GOFT (median layer)" in trace_names(second[V.ORTH])
    assert "run 1 · GOFT (median layer)" in trace_names(second[V.ENERGY])
    table = second[V.EARLIER]
    assert table.visible is True and second[V.FORGET].visible is True
    assert "**run 2 · qGOFT** (now: solid)" in table.value and "| run 1 · GOFT (grey dotted) |" in table.value
    # Only the lines and the numbers are kept, not the model: a few kB.
    kept = E.shelf(registry.visitor("teacher")).runs()
    assert [k.name for k in kept] == ["run 1 · GOFT"] and len(pickle.dumps(kept)) < 20_000


def test_the_last_two_runs_are_kept_and_the_notice_says_which_one_goes(tiny_base_dir):
    from ui.train import earlier as E
    from ui.train.handlers import new_run_notice
    registry = registry_for()
    for seed, method in enumerate(("goft", "qgoft", "lora")):
        train(registry, "v", controls_for(tiny_base_dir, method, steps=1, seed=seed))
    shelf = E.shelf(registry.visitor("v"))
    assert [k.name for k in shelf.runs()] == ["run 2 · qGOFT", "run 1 · GOFT"] and shelf.number == 3
    notice = new_run_notice(registry, "v", controls_for(tiny_base_dir, "goft", steps=1, seed=2))
    assert "run 3 · LoRA" in notice and "run 1 · GOFT, the oldest kept run, then goes" in notice
    train(registry, "v", controls_for(tiny_base_dir, "goft", steps=1, seed=2))
    assert [k.name for k in shelf.runs()] == ["run 3 · LoRA", "run 2 · qGOFT"]
    assert [c.dash for c in shelf.curves()] == ["dot", "dashdot"]  # the newest earlier run dotted


def test_reset_and_new_seed_keep_the_run_so_far_an_untrained_run_is_not_kept(tiny_base_dir):
    from ui import train_views as V
    from ui.train import earlier as E
    from ui.train.handlers import new_seed, reset
    registry = registry_for()
    train(registry, "r", controls_for(tiny_base_dir, "goft", steps=2))
    views = reset(registry, "r")
    shelf = E.shelf(registry.visitor("r"))
    assert [k.step for k in shelf.runs()] == [2] and "run 1 · GOFT" in views[V.STATUS]
    assert views[V.LOSS_PLOT] is not None  # the earlier run is drawn even before the new one has data
    reset(registry, "r")  # nothing trained since: nothing more to keep
    assert len(shelf) == 1
    train(registry, "r", controls_for(tiny_base_dir, "goft", steps=1))
    seed, views = new_seed(registry, "r", 0)
    assert seed == 1 and [k.number for k in shelf.runs()] == [2, 1]


def test_forgetting_clears_the_lines_and_the_table(tiny_base_dir):
    from ui import train_views as V
    from ui.train.handlers import forget_earlier
    registry = registry_for()
    train(registry, "f", controls_for(tiny_base_dir, "goft", steps=1))
    train(registry, "f", controls_for(tiny_base_dir, "qgoft", steps=1))
    views = forget_earlier(registry, "f")
    assert views[V.EARLIER].visible is False and views[V.FORGET].visible is False
    assert not any("run 1" in (name or "") for name in trace_names(views[V.LOSS_PLOT]))


def test_the_notice_while_a_run_trains_says_it_goes_on_untouched(tiny_base_dir):
    from ui.train.handlers import new_run_notice
    from ui.train.session import live_settings_apply
    registry = registry_for()
    train(registry, "busy", controls_for(tiny_base_dir, "goft", steps=1))
    visitor = registry.visitor("busy")
    visitor.busy = True  # as while its Train streams
    try:
        notice = new_run_notice(registry, "busy", controls_for(tiny_base_dir, "qgoft", steps=1))
    finally:
        visitor.busy = False
    assert "still training, with its own settings" in notice and "Press **Pause**" in notice
    assert "learning-rate or λ changes" in notice
    # ... which is true: the page's learning rate and λ now belong to the next run, not to this one
    assert not live_settings_apply(visitor, controls_for(tiny_base_dir, "qgoft", steps=1, lr=0.5))
    assert live_settings_apply(visitor, controls_for(tiny_base_dir, "goft", steps=1, lr=0.5))
    visitor.hidden = frozenset({"lr", "lam"})  # a teacher fixed them: the notice does not name them
    visitor.busy = True
    try:
        notice = new_run_notice(registry, "busy", controls_for(tiny_base_dir, "qgoft", steps=1))
    finally:
        visitor.busy = False
    assert "learning-rate" not in notice and "λ" not in notice


@pytest.mark.parametrize("old, new, said", [
    (("m", "sentiment", "goft", "none", "all", 16, 0), ("m", "sentiment", "qgoft", "none", "all", 16, 0),
     ["method GOFT → qGOFT"]),
    (("m", "sentiment", "goft", "none", "all", 16, 0), ("m", ("uploaded", 1), "goft", "output", "all", 8, 0),
     ["task sentiment → your data", "scaling none → output", "batch size 16 → 8"]),
])
def test_changed_settings_are_named(old, new, said):
    from ui.train.handlers import changed_settings
    assert changed_settings(old, new) == said
