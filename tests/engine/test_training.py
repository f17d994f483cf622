"""The training engine: reproducibility, pause/resume, reset, every method, bad input, divergence.

Everything but one test runs on a tiny random BERT with the real MiniLM
tokenizer (conftest.tiny_base); one test trains the real offline MiniLM on the
built-in sentiment task and checks that it actually learns.
"""
import math
import re

import numpy as np
import pytest
import torch

from qgoft_core.explore.registry import METHODS
from qgoft_core.explore.models import ModelLoadError, load_base
from qgoft_core.explore.training import STEP_CAP, RunConfig, TrainingConfigError, TrainingDiverged, TrainingRun

ROTATION_METHODS = ("goft", "qgoft", "oft", "boft")
FAST = dict(batch_size=8, eval_examples=32, eval_every=3, oft_block_size=8)


@pytest.fixture(autouse=True)
def tiny_models_on_one_thread(request):
    """One thread for the tiny-model tests; the MiniLM test keeps the engine's own choice."""
    if "minilm" not in request.node.name:
        request.getfixturevalue("one_thread")


def make_run(base, **settings) -> TrainingRun:
    return TrainingRun(RunConfig(**{**FAST, **settings}), base=base)


def losses(run: TrainingRun, steps: int) -> list[float]:
    return [record["loss"] for kind, record in run.run(steps) if kind == "step"]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# -- reproducibility ---------------------------------------------------------
@pytest.mark.parametrize("method", ["qgoft", "lora"])
def test_same_seed_gives_the_same_losses(tiny_base, method):
    # LoRA draws its A matrices at random: the seed must cover them too.
    first = losses(make_run(tiny_base, method=method, seed=3), 5)
    second = losses(make_run(tiny_base, method=method, seed=3), 5)
    assert len(first) == 5
    assert first == second


def test_pause_and_resume_equals_an_uninterrupted_run(tiny_base):
    paused = make_run(tiny_base, method="qgoft", seed=1)
    resumed = losses(paused, 3) + losses(paused, 3)
    straight = make_run(tiny_base, method="qgoft", seed=1)
    assert resumed == losses(straight, 6)
    assert paused.step_count == straight.step_count == 6
    assert_same_state(paused.tuned.trainable_state(), straight.tuned.trainable_state())


@pytest.mark.parametrize("method", ["qgoft", "lora"])
def test_reset_restores_the_exact_initial_adapter_and_losses(tiny_base, method):
    run = make_run(tiny_base, method=method, seed=2)
    initial = run.tuned.trainable_state()
    before = losses(run, 4)
    assert any(not torch.equal(initial[k], v) for k, v in run.tuned.trainable_state().items())
    run.reset()
    assert run.step_count == 0 and not run.history.steps
    assert_same_state(run.tuned.trainable_state(), initial)
    assert losses(run, 4) == before


def test_new_seed_changes_the_head_initialisation(tiny_base):
    run = make_run(tiny_base, method="qgoft", seed=0)
    head = run.tuned.classifier().head.weight.detach().clone()
    run.new_seed(1)
    assert run.config.seed == 1 and run.step_count == 0
    assert not torch.equal(run.tuned.classifier().head.weight, head)
    run.new_seed(0)  # and the old seed gives the old initialisation back
    assert torch.equal(run.tuned.classifier().head.weight, head)


# -- a real training run -------------------------------------------------------
def test_qgoft_learns_the_sentiment_task_on_minilm():
    run = TrainingRun(RunConfig(method="qgoft", steps=60, eval_every=60, seed=0))
    events = list(run.run())
    evals = [record for kind, record in events if kind == "eval"]
    assert [e["step"] for e in evals] == [0, 60]
    untrained, trained = evals[0]["accuracy"], evals[-1]["accuracy"]
    assert trained >= untrained + 0.15, (untrained, trained)


# -- every method ----------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_records_finite_metrics(tiny_base, method):
    run = make_run(tiny_base, method=method, steps=2, eval_every=2)
    initial = run.tuned.trainable_state()
    events = list(run.run())
    assert [k for k, _ in events] == ["eval", "snapshot", "step", "step", "eval", "snapshot"]
    for record in run.history.steps:
        assert math.isfinite(record["loss"]) and math.isfinite(record["reg_loss"])
        assert record["sec_per_step"] > 0 and record["lr"] > 0
    for record in run.history.evals:
        assert 0.0 <= record["accuracy"] <= 1.0
        assert math.isfinite(record["loss"]) and math.isfinite(record["cka"])
    snapshot = run.history.snapshots[-1]
    assert snapshot["step"] == 2 and snapshot["layers"]
    for name, layer in snapshot["layers"].items():
        assert np.isfinite(layer["norm_ratio"]).all(), name
        assert math.isfinite(layer["he_drift"]), name
        assert np.isfinite(layer["angles"]).all(), name
        if method in ROTATION_METHODS:
            assert math.isfinite(layer["orth_dev"]), name
        else:
            assert math.isnan(layer["orth_dev"]), name
        if layer["scales"] is not None:
            assert np.isfinite(layer["scales"]).all(), name
    if method in ("goft", "qgoft"):
        assert all(layer["angles"].size for layer in snapshot["layers"].values())
    changed = [k for k, v in run.tuned.trainable_state().items() if not torch.equal(v, initial[k])]
    assert changed, "two steps changed nothing"
    trainable, total = run.trainable_parameters()
    assert 0 < trainable <= total


# -- bad input -------------------------------------------------------------------------
@pytest.mark.parametrize("settings, message", [
    (dict(lr=0.0), "learning rate must be a positive number"),
    (dict(lr=-1e-3), "learning rate must be a positive number"),
    (dict(lr=float("nan")), "learning rate must be a positive number"),
    (dict(batch_size=0), "batch size must be between 1 and"),
    (dict(steps=STEP_CAP + 1), f"above this server's cap of {STEP_CAP}"),
    (dict(max_length=129), "beyond the model's limit of 128 tokens"),
    (dict(method="adamw"), "unknown method 'adamw'"),
])
def test_bad_settings_say_what_is_wrong(tiny_base, settings, message):
    with pytest.raises(TrainingConfigError, match=re.escape(message)):
        make_run(tiny_base, **settings)


def test_unknown_model_offline_says_it_is_not_available():
    with pytest.raises(ModelLoadError, match="not available offline"):
        load_base("no-such-organisation/no-such-model-xyz")
    with pytest.raises(ModelLoadError, match="not available offline"):
        TrainingRun(RunConfig(model="no-such-organisation/no-such-model-xyz"))


# -- divergence ----------------------------------------------------------------------------
def test_a_parameter_turned_infinite_stops_the_run_and_rolls_back(tiny_base):
    run = make_run(tiny_base, method="qgoft")
    losses(run, 2)
    good = run.tuned.trainable_state()
    block = next(p for n, p in run.tuned.model.named_parameters() if n.endswith("qgoft_blocks"))
    with torch.no_grad():
        block[0, 0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="last good state"):
        run.step()
    assert run.step_count == 2 and len(run.history.steps) == 2
    assert_same_state(run.tuned.trainable_state(), good)
    with pytest.raises(TrainingDiverged):  # stays stopped until reset
        run.step()
    run.reset()
    assert math.isfinite(run.step()["loss"])


def test_a_nan_loss_stops_the_run_and_leaves_the_adapter_untouched(tiny_base):
    run = make_run(tiny_base, method="goft")
    losses(run, 1)
    good = run.tuned.trainable_state()
    head = run.tuned.classifier().head
    hook = head.register_forward_hook(lambda module, args, out: out * float("nan"))
    try:
        with pytest.raises(TrainingDiverged, match="loss became nan"):
            run.step()
    finally:
        hook.remove()
    assert run.stopped_reason and "lower the learning rate" in run.stopped_reason
    assert_same_state(run.tuned.trainable_state(), good)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_step_zero_evaluation_from_cached_base_embeddings_equals_a_full_forward(tiny_base, method):
    # Step 0 reads the base's cached embeddings (every method starts at the base
    # exactly); it must give what running the model on the held-out set gives.
    run = make_run(tiny_base, method=method, **({"boft_block_size": 4} if method == "boft" else {}))
    shortcut = run.evaluate()
    run.step_count = 1  # take the full forward path on the same, still untrained, model
    full = run.evaluate()
    assert shortcut["accuracy"] == full["accuracy"]
    assert shortcut["loss"] == pytest.approx(full["loss"], rel=1e-5)
    assert shortcut["cka"] == pytest.approx(full["cka"], abs=1e-6)
