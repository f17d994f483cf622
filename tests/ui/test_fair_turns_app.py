"""The Train tab's runs in the rotation (no server, a tiny local model): a failing run ends alone,
cancelling frees the turn, a new run keeps the worker's threads, live evaluation on a fixed sample,
a visitor's data leaves the caches with them."""
import threading
from dataclasses import replace

import pytest



def registry_for(**overrides):
    from ui.runs import RunRegistry
    from ui.settings import Settings
    return RunRegistry(replace(Settings(), cpu_threads=2, **overrides))


def controls_for(model_dir, steps=4, seed=0, task="sentiment"):
    from ui.train.controls import Controls
    return Controls(model=model_dir, task=task, steps=steps, batch_size=4, seed=seed)


def last_info(updates):
    from ui import train_views as V
    infos = [u[V.INFO] for u in updates if V.INFO in u and isinstance(u[V.INFO], dict)]
    return infos[-1]


def test_a_run_whose_step_fails_ends_alone_and_the_others_finish(tiny_base_dir):  # noqa: F811
    from ui.train.session import prepare_run
    from ui.train.stream import train_stream
    registry = registry_for()
    sessions = ["good-1", "bad", "good-2"]
    controls = {s: controls_for(tiny_base_dir, steps=6, seed=k) for k, s in enumerate(sessions)}
    for s in sessions:
        prepare_run(registry, registry.visitor(s), controls[s])
    bad = registry.visitor("bad").run
    real_step, calls = bad.step, []

    def failing_step():
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("simulated: out of memory in this visitor's step")
        return real_step()

    bad.step = failing_step
    results = {}

    def train(s):
        results[s] = list(train_stream(registry, s, controls[s]))

    threads = [threading.Thread(target=train, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    failed = last_info(results["bad"])
    assert failed["state"] == "error" and "MemoryError" in failed["message"]
    assert registry.visitor("bad").run is None  # the failed run is dropped, its memory with it
    for s in ("good-1", "good-2"):
        info = last_info(results[s])
        assert info["state"] == "done" and info["step"] == 6, info
    assert registry.rotation()["active"] == 0
    assert not any(registry.visitor(s).busy for s in sessions)
    assert registry.scheduler.peak_threads() <= registry.scheduler.cores


def test_cancelling_the_stream_frees_the_turn_and_train_resumes(tiny_base_dir):  # noqa: F811
    from ui.train.stream import train_stream
    registry = registry_for()
    visitor = registry.visitor("v")
    stream = train_stream(registry, "v", controls_for(tiny_base_dir, steps=400))
    for update in stream:
        run = visitor.run
        if run is not None and run.step_count >= 2:
            break
    stream.close()  # what Gradio does on Pause or a closed tab
    assert registry.wait_until_idle(visitor, timeout=60)
    stopped = visitor.run.step_count
    assert visitor.turn is None and registry.rotation()["active"] == 0 and stopped < 400
    final = last_info(list(train_stream(registry, "v", controls_for(tiny_base_dir, steps=stopped + 2))))
    assert final["state"] == "done" and final["step"] == stopped + 2  # the same run, continued


def test_a_new_run_keeps_the_threads_its_worker_was_given(tiny_base_dir):  # noqa: F811
    import torch

    from ui.scheduler import StepScheduler, Turn
    from ui.train.session import prepare_run
    registry = registry_for()
    scheduler = StepScheduler(cores=2, threads_per_run=1)
    seen = []

    def build():
        prepare_run(registry, registry.visitor("t"), controls_for(tiny_base_dir, steps=2, seed=5))
        seen.append(torch.get_num_threads())
        return
        yield

    turn = scheduler.submit(Turn(build()))
    assert turn.ended.wait(120) and turn.error is None
    assert seen == [1]  # TrainingRun.__init__ no longer takes every core
    scheduler.shutdown()


def test_live_evaluation_uses_a_fixed_sample_and_says_so(tiny_base_dir):  # noqa: F811
    from qgoft_core.explore.training import RunConfig, TrainingRun, eval_sample_indices
    from ui.train.session import sample_note
    assert eval_sample_indices(10, 4) == [0, 2, 5, 7] and eval_sample_indices(3, 4) == [0, 1, 2]
    assert eval_sample_indices(1000, 256) == eval_sample_indices(1000, 256)  # fixed per data set
    run = TrainingRun(RunConfig(model=tiny_base_dir, method="qgoft", steps=1, batch_size=4, eval_sample=7,
                                max_length=24, device="cpu"))
    assert len(run.test_data.ids) == 7 < run.held_out_total
    assert run.evaluate()["accuracy"] * 7 == pytest.approx(round(run.history.evals[-1]["accuracy"] * 7))
    assert "sample of 7 of the" in sample_note(run)
    whole = TrainingRun(RunConfig(model=tiny_base_dir, method="qgoft", steps=1, batch_size=4, eval_sample=10_000,
                                  max_length=24, device="cpu"))
    assert len(whole.test_data.ids) == whole.held_out_total and sample_note(whole) == ""


def test_a_visitors_data_leaves_the_caches_with_them(tiny_base_dir, tmp_path):  # noqa: F811
    from qgoft_core.explore import caches
    from ui.train.handlers import upload_data
    from ui.train.session import prepare_run
    rows = ["text,label"] + [f"sentence number {i} is {'good' if i % 2 else 'bad'},{i % 2}" for i in range(80)]
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(rows) + "\n")
    registry = registry_for(eval_sample=8)
    loaded, text = upload_data(registry, "u", str(path))
    assert loaded, text
    visitor = registry.visitor("u")
    run, _ = prepare_run(registry, visitor, controls_for(tiny_base_dir, task="uploaded"))
    keys = {run.train_data.key, run.test_data.key}
    assert visitor.data_keys == keys and all(k in caches.ENCODED_SPLITS for k in keys)
    assert any(isinstance(k, tuple) and len(k) > 2 and k[2] == run.test_data.key
               for k in list(caches.BASE_EMBEDDINGS._entries))
    assert registry.release("u")
    assert not any(k in caches.ENCODED_SPLITS for k in keys)
    assert not any(isinstance(k, tuple) and len(k) > 2 and k[2] in keys
                   for k in list(caches.BASE_EMBEDDINGS._entries))
    assert visitor.run is None and visitor.uploaded is None
