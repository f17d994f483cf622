"""ZeroGPU chunking: a run trained in GPU chunks equals one trained in-process.

`spaces` is not installed here, so a fake `@spaces.GPU` stands in: like
ZeroGPU, it pickles the arguments and the result (the function runs
"elsewhere" and cannot change the caller's objects).
"""
import json
import pickle

import numpy as np
import pytest

from tests.conftest import make_run
import torch

from qgoft_core.explore.history import RunHistory
from ui import zerogpu


def fake_spaces_gpu(duration=None):
    """Stand-in for spaces.GPU(duration=...): arguments and result cross a process boundary."""
    def decorate(fn):
        def call(*args, **kwargs):
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            return pickle.loads(pickle.dumps(fn(*args, **kwargs)))
        return call
    return decorate


@pytest.mark.parametrize("method", ["qgoft", "lora"])
def test_chunked_training_equals_in_process_training(tiny_base_dir, method):
    plain = make_run(tiny_base_dir, method)
    plain_events = list(plain.run())
    chunked = make_run(tiny_base_dir, method)
    trainer = zerogpu.ChunkedTraining(fake_spaces_gpu(duration=60)(zerogpu.train_chunk), chunk_steps=3)
    chunked_events = list(trainer.run(chunked))

    def losses(events):
        return [r["loss"] for kind, r in events if kind == "step"]

    assert losses(chunked_events) == losses(plain_events)  # bit for bit
    assert [r["step"] for r in chunked.history.steps] == list(range(1, 8))
    assert chunked.step_count == plain.step_count == 7
    assert chunked.history.evals[0]["step"] == 0 and chunked.history.snapshots[0]["step"] == 0
    for name, value in plain.tuned.trainable_state().items():
        assert torch.equal(value, chunked.tuned.trainable_state()[name]), name
    # The shipped history keeps every bit: the last snapshots agree exactly, in the same types.
    last_plain, last_chunked = plain.history.snapshots[-1], chunked.history.snapshots[-1]
    assert last_plain["step"] == last_chunked["step"] == 7
    for name, layer in last_plain["layers"].items():
        other = last_chunked["layers"][name]
        assert other["angles"].dtype == np.float32 and np.array_equal(layer["angles"], other["angles"]), name
        assert np.array_equal(layer["norm_ratio"], other["norm_ratio"]), name
        assert np.isnan(layer["orth_dev"]) == np.isnan(other["orth_dev"]), name
    # A chunk boundary adds an evaluation (steps 3 and 6 are shared, 7 is the end): never fewer.
    assert {e["step"] for e in plain.history.evals} <= {e["step"] for e in chunked.history.evals}


def test_a_chunk_changes_nothing_in_the_callers_run(tiny_base_dir):
    run = make_run(tiny_base_dir, "qgoft")
    before = zerogpu.capture_state(run)
    gpu = fake_spaces_gpu(duration=60)(zerogpu.train_chunk)
    from dataclasses import replace
    state, shipped = gpu(replace(run.config, device="cpu").to_dict(), run.task, before, 2)
    assert run.step_count == 0 and not run.history.steps  # untouched until the caller loads the result
    json.dumps(shipped, allow_nan=False)  # the chunk's history travels as plain JSON data
    events = RunHistory.from_json(shipped).events()
    for name, value in before["trainable"].items():
        assert torch.equal(run.tuned.trainable_state()[name], value)
    assert state["step_count"] == 2 and [k for k, _ in events].count("step") == 2
    zerogpu.restore_state(run, state)
    assert run.step_count == 2


def test_in_process_training_without_spaces(monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(zerogpu, "_ENV", replace(zerogpu._ENV, zero_gpu=False))
    assert not zerogpu.on_zero_gpu()
    monkeypatch.setattr(zerogpu, "_ENV", replace(zerogpu._ENV, zero_gpu=True))
    try:
        import spaces  # noqa: F401
    except ImportError:
        assert not zerogpu.on_zero_gpu()  # the variable alone is not enough
    assert zerogpu.run_device() == "auto"  # no GPU function was decorated at import
