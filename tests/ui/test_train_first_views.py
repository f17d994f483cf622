"""Step-0 charts drawn once for runs that start alike (a class pressing Train together)."""
from dataclasses import replace

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


def registry_for(**overrides):
    from ui.runs import RunRegistry
    from ui.settings import Settings
    return RunRegistry(replace(Settings(), cpu_threads=2, **overrides))


def controls_for(model_dir, method="goft", seed=0):
    from ui.train.controls import Controls
    return Controls(model=model_dir, method=method, steps=2, batch_size=4, seed=seed)


def started_run(registry, model_dir, method="goft", seed=0):
    """A visitor's run right after its first turn: built, evaluated and snapshotted at step 0."""
    from ui.train.controls import task_for
    from ui.train.session import build_run
    controls = controls_for(model_dir, method, seed)
    visitor = registry.visitor(f"{method}-{seed}")
    run = build_run(registry, model_dir, controls, task_for(controls, visitor), 10)
    run.evaluate()
    run.snapshot()
    visitor.run = run
    return visitor


def first_update(registry, visitor):
    from ui.train.stream import Throttle, _live_update
    return _live_update(visitor.run, visitor, Throttle(), -1, "", registry)


def test_runs_that_differ_in_seed_share_their_step_0_views_and_others_do_not(tiny_base_dir, monkeypatch):
    from ui import train_views as V
    drawn = []
    real = V.snapshot_views
    monkeypatch.setattr(V, "snapshot_views", lambda *a, **k: drawn.append(1) or real(*a, **k))
    registry = registry_for()
    a = first_update(registry, started_run(registry, tiny_base_dir, seed=0))
    b = first_update(registry, started_run(registry, tiny_base_dir, seed=1))
    assert b[V.HEATMAP] is a[V.HEATMAP] and b[V.TABLE] is a[V.TABLE]  # drawn once, for both
    assert len(drawn) == 1 and len(registry.first_views) == 1
    assert b[V.LOSS_PLOT].plot != a[V.LOSS_PLOT].plot  # each seed's own head: its own step-0 loss
    c = first_update(registry, started_run(registry, tiny_base_dir, method="qgoft"))
    assert c[V.HEATMAP] is not a[V.HEATMAP] and len(drawn) == 2 and len(registry.first_views) == 2


def test_a_run_that_moved_on_while_drawing_still_gets_its_step_0_views(tiny_base_dir):
    from ui import train_views as V
    registry = registry_for()
    visitor = started_run(registry, tiny_base_dir)
    first = list(visitor.run.history.snapshots)
    visitor.run.step()
    visitor.run.snapshot()  # what a worker may do while the watcher draws
    drawn = V.snapshot_views(visitor.run, visitor.view, snapshots=first)
    assert "at **step 0**" in drawn[V.SELECTED]


def test_the_key_follows_what_the_charts_show(tiny_base_dir):
    from ui.runs import ViewState
    from ui.train.session import build_run
    from ui.train_views import first_views_key
    from ui.train.controls import task_for
    registry = registry_for()
    runs = []
    for seed in (0, 1):
        controls = controls_for(tiny_base_dir, seed=seed)
        run = build_run(registry, tiny_base_dir, controls, task_for(controls, registry.visitor(f"s{seed}")), 10)
        assert first_views_key(run, ViewState()) is None  # no snapshot yet
        run.snapshot()
        runs.append(run)
    keys = [first_views_key(run, ViewState()) for run in runs]
    assert keys[0] == keys[1] is not None
    assert first_views_key(runs[0], ViewState(scale="layer")) != keys[0]
    assert first_views_key(runs[0], ViewState(), earlier=["kept run"]) is None  # drawn beside an earlier run
    runs[0].step()
    runs[0].snapshot()
    assert first_views_key(runs[0], ViewState()) is None  # past step 0


def test_the_cache_is_bounded_by_its_setting():
    registry = registry_for(view_cache_mb=3)
    assert registry.first_views.max_bytes == 3 * 1024 * 1024
