"""The method comparison: every method trains inside the compare code path and
fills every column; strict GOFT keeps energy and orthogonality; PEFT OFT's
Cayley-Neumann approximation is measurably non-orthogonal, the exact one is not."""
from __future__ import annotations

import json
import math

import pytest
import torch

from qgoft_core.explore.data.tasks import TextTask
from qgoft_core.explore import compare as C
from qgoft_core.viz import compare_views as CV
from demos.comparisons import load_precomputed
from qgoft_core.explore.models import BaseModel, default_model_path

STEPS = 3


@pytest.fixture(scope="module")
def tiny_base() -> BaseModel:
    """A tiny random BERT (hidden 32: OFT's block 32 and BOFT's block 4 divide every width)
    with the real MiniLM tokenizer, frozen like load_base() leaves a model."""
    import transformers as tf

    source = str(default_model_path())
    tokenizer = tf.AutoTokenizer.from_pretrained(source)
    config = tf.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    encoder = tf.BertModel(config).eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return BaseModel("tiny-bert-test", encoder, tokenizer, "mean")


@pytest.fixture(scope="module")
def tiny_task() -> TextTask:
    good = ["a wonderful film", "i loved it", "great acting and story", "truly delightful"]
    bad = ["a dreadful film", "i hated it", "terrible acting and story", "truly boring"]
    texts = tuple(good + bad) * 2
    labels = tuple([1] * 4 + [0] * 4) * 2
    return TextTask("tiny", ("negative", "positive"), texts, labels, texts[:8], labels[:8], "tiny test task")


@pytest.fixture(scope="module")
def comparison(tiny_base, tiny_task, single_thread):
    events = list(C.compare_runs(C.DEFAULT_METHODS, tiny_task, seed=0, steps=STEPS, base=tiny_base,
                                 batch_size=4, max_length=16, eval_every=STEPS))
    return events


def test_every_method_fills_every_column(comparison):
    kinds = [e.kind for e in comparison]
    assert kinds[-1] == "done"
    result = comparison[-1].result
    assert [r.key for r in result.rows] == list(C.DEFAULT_METHODS)
    assert set(C.DEFAULT_METHODS) == {"goft", "qgoft", "qgoft_big_lambda", "lora", "oft_neumann",
                                      "oft_exact", "boft", "full", "head"}
    for row in result.rows:
        assert row.status == "ok", row
        assert row.steps == STEPS
        numbers = row.numbers()
        assert {"trainable_params", "accuracy", "sec_per_step", "orth_dev", "he_drift", "cka",
                "retention_base", "retention_tuned", "retention_kept", "lr"} <= set(numbers)
        bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
        assert not bad, (row.key, bad)
        assert row.trainable_params > 0 and row.sec_per_step > 0
        curve = result.curves[row.key]
        assert curve["step"] == [0, STEPS] and len(curve["kept"]) == 2
        assert curve["kept"][0] == pytest.approx(1.0)
    # every row is streamed as it finishes, and steps stream too
    assert kinds.count("row") == len(C.DEFAULT_METHODS)
    assert kinds.count("step") == STEPS * len(C.DEFAULT_METHODS)


def test_strict_goft_keeps_energy_and_orthogonality(comparison):
    row = comparison[-1].result.row("goft")
    assert row.orth_dev_kind == C.ORTH_ROTATION
    assert abs(row.he_drift) < 1e-6
    assert row.orth_dev < 1e-5


def test_non_rotation_methods_get_a_defined_deviation(comparison):
    result = comparison[-1].result
    assert result.row("head").orth_dev == 0.0
    assert result.row("head").orth_dev_kind == C.ORTH_UNTOUCHED
    for key in ("lora", "full"):
        assert result.row(key).orth_dev_kind == C.ORTH_LEAST_SQUARES
        assert result.row(key).orth_dev > 0


def test_least_squares_deviation_recovers_a_rotation(tiny_base, tiny_task, single_thread):
    """For a rotation method the least-squares operator is the method's own one."""
    from qgoft_core.explore.training import TrainingRun

    config = C.method_config("oft_neumann", "tiny", 0, 2, lr=0.05, warmup_steps=0, batch_size=4, max_length=16)
    run = TrainingRun(config, task=tiny_task, base=tiny_base)
    run.step()
    run.step()
    _, kind = C.orthogonality_of_run(run)
    assert kind == C.ORTH_ROTATION
    own = {name: layer["orth_dev"] for name, layer in run.snapshot()["layers"].items()}
    fitted = C.least_squares_orth_devs(run)
    assert any(name.endswith("intermediate.dense") for name in fitted)  # 64 x 32: well conditioned
    assert not any(name.endswith("output.dense") and "attention" not in name for name in fitted)  # n < d
    for name, dev in fitted.items():
        assert dev > 1e-6
        assert dev == pytest.approx(own[name], rel=1e-3)


def test_oft_cayley_neumann_deviates_exact_oft_does_not(tiny_base, tiny_task, single_thread):
    # A large learning rate makes the skew part big enough for the Neumann
    # series' truncation error to show (as PEFT documents for the approximation).
    result = C.run_comparison(["oft_neumann", "oft_exact"], tiny_task, seed=0, steps=4, base=tiny_base,
                              batch_size=4, max_length=16, eval_every=4,
                              config_overrides={"lr": 0.05, "warmup_steps": 0})
    neumann, exact = result.row("oft_neumann"), result.row("oft_exact")
    assert neumann.orth_dev > 1e-4, neumann
    assert exact.orth_dev < 1e-5, exact
    assert neumann.orth_dev > 100 * exact.orth_dev


def test_export_round_trips(comparison, tmp_path):
    result = comparison[-1].result
    text = C.result_to_json(result)
    back = C.result_from_json(text)
    assert [r.key for r in back.rows] == [r.key for r in result.rows]
    assert back.rows[0].accuracy == pytest.approx(result.rows[0].accuracy)
    assert back.curves["qgoft"]["kept"] == pytest.approx(result.curves["qgoft"]["kept"])
    json.loads(text)  # strict JSON (no NaN)
    csv_text = C.rows_to_csv(result.rows)
    lines = csv_text.strip().splitlines()
    assert len(lines) == 1 + len(result.rows)
    assert lines[0].startswith("key,label,method,trainable_params")
    headers, body = CV.table_rows(result)
    assert len(headers) == len(body[0]) and len(body) == len(result.rows)
    assert set(h for h in headers if h != "note") <= set(CV.COLUMN_HELP)
    figs = CV.compare_bar_figures(result)
    assert set(figs) == {name for name, *_ in CV.BAR_METRICS}
    assert len(CV.kept_figure(result).data) == len(result.rows)


def test_bad_input_is_explained(tiny_base, tiny_task):
    with pytest.raises(ValueError, match="unknown comparison method"):
        list(C.compare_runs(["nope"], tiny_task, base=tiny_base))
    with pytest.raises(ValueError, match="at least one method"):
        list(C.compare_runs([], tiny_task, base=tiny_base))
    with pytest.raises(ValueError, match="not a method comparison"):
        C.result_from_json('{"format": "other"}')
    # a setting a method cannot use gives that method an explained row; the rest still run
    result = C.run_comparison(["head", "lora"], tiny_task, steps=1, base=tiny_base, batch_size=4,
                              max_length=16, config_overrides={"lora_r": 0})
    assert result.row("head").status == "ok"
    assert "could not start" in result.row("lora").status


@pytest.mark.parametrize("task", ["sentiment", "topic"])
def test_precomputed_comparisons_ship(task):
    result = load_precomputed(task)
    assert result.task == task
    assert [r.key for r in result.rows] == list(C.DEFAULT_METHODS)
    for row in result.rows:
        assert row.status == "ok"
        assert all(math.isfinite(v) for v in row.numbers().values()), row
    assert result.row("goft").he_drift < 1e-6 and result.row("goft").orth_dev < 1e-5
    assert result.meta.get("command")
    assert all(run.get("command") and run.get("versions") for run in result.meta.get("runs", [result.meta]))
    # made with the rates the tab runs live (regenerate after changing COMPARE_METHODS)
    for run in [result, *result.per_seed]:
        assert {r.key: r.lr for r in run.rows} == {k: m.lr for k, m in C.COMPARE_METHODS.items()}
        assert run.steps == 60 and all(r.steps == 60 for r in run.rows)


# Tasks whose shipped comparison is joined from >= 3 seeds. topic: its seeds 1 and 2 were still
# running when sentiment's were joined; add it once its file is made the same way.
SEEDED_TASKS = ["sentiment", "topic"]


@pytest.mark.parametrize("task", SEEDED_TASKS)
def test_precomputed_comparisons_are_means_of_three_seeds(task):
    """Issue 13, item 8: mean ± sd of at least 3 seeds, every run kept with its command."""
    result = load_precomputed(task)
    assert len(result.seeds) >= 3 and [r.seed for r in result.per_seed] == result.seeds
    assert all(row.n_seeds == len(result.seeds) and math.isfinite(row.accuracy_sd) for row in result.rows)
    assert len(result.meta["runs"]) == len(result.seeds)
    assert result.to_dict()["rows"] == C.aggregate_seeds(result.per_seed).to_dict()["rows"]


def test_tab_explains_bad_live_input():
    from qgoft_core.explore.training import TrainingConfigError
    from ui.compare_tab import check_live_inputs

    assert check_live_inputs(["qgoft", "lora"], "topic", 3, 20.0, 50) == (["qgoft", "lora"], "topic", 3, 20)
    for args, message in [(([], "topic", 0, 10), "at least one method"),
                          ((["qgoft"], "mine", 0, 10), "built-in task"),
                          ((["qgoft"], "topic", "x", 10), "whole numbers"),
                          ((["qgoft"], "topic", -1, 10), "seed must be"),
                          ((["qgoft"], "topic", 0, 51), "between 1 and 50"),
                          ((["qgoft"], "topic", 0, 2.5), "steps must be")]:
        with pytest.raises(TrainingConfigError, match=message):
            check_live_inputs(*args, max_steps=50)


def test_tab_shows_and_exports_a_comparison(comparison, tmp_path, monkeypatch):
    from ui import compare_tab as T

    monkeypatch.setattr(T, "EXPORT_DIR", tmp_path / "exports")
    from demos import comparisons

    monkeypatch.setattr(comparisons, "PRECOMPUTED_DIR", tmp_path)
    result = comparison[-1].result
    (tmp_path / "compare_sentiment.json").write_text(C.result_to_json(result))
    shown, status = T.load_precomputed_view("sentiment", ["qgoft", "goft"])
    assert [r.key for r in shown.rows] == ["goft", "qgoft"] and "task **tiny**" in status
    views = T.views(shown)
    assert list(views["table"]["method"]) == ["GOFT", "qGOFT"]
    assert all(views[k] is not None for k in T.BAR_KEYS + ["kept"])
    missing, status = T.load_precomputed_view("topic", ["qgoft"])
    assert missing is None and "Cannot show" in status
    csv_path, json_path = T.export_files(shown)
    assert C.result_from_json(open(json_path).read()).rows[1].key == "qgoft"
    assert open(csv_path).read().count("\n") == 3
    assert T.export_files(shown) == (csv_path, json_path)  # the same content, the same files
