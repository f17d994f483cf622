"""Making the shipped comparisons from several seeds: `make_precomputed.py --from` joins seed
runs made elsewhere (files or folders, one- or multi-seed) into one file whose meta names every
command; and a Compare row is the run Train makes with the same settings (what the Compare
page tells a visitor who sees other numbers in Train)."""
from __future__ import annotations

import argparse
import json

import pytest

from demos import make_precomputed as MP
from qgoft_core.explore import compare as C
from qgoft_core.explore.data.tasks import TextTask
from qgoft_core.explore.training import RunConfig, TrainingRun
from tests.engine.test_compare_seeds import _run


def _folder(tmp_path, seed: int, task: str = "sentiment"):
    folder = tmp_path / f"seed{seed}"
    folder.mkdir()
    (folder / f"compare_{task}.json").write_text(C.result_to_json(_run(seed, task=task)))
    return folder


def test_from_folders_writes_one_file_of_every_seed(tmp_path):
    folders = [str(_folder(tmp_path, s)) for s in (2, 0, 1)]
    out = tmp_path / "out"
    MP.main(["--tasks", "sentiment", "--from", *folders, "--out", str(out)])
    result = C.result_from_json((out / "compare_sentiment.json").read_text())
    assert result.seeds == [0, 1, 2] and len(result.per_seed) == 3
    assert "--from" in result.meta["command"]
    assert [r["command"] for r in result.meta["runs"]] == ["make --seed 0", "make --seed 1", "make --seed 2"]
    assert "seeds 0, 1, 2" in result.meta["note"]
    assert result.to_dict()["rows"] == C.aggregate_seeds([_run(s) for s in (0, 1, 2)]).to_dict()["rows"]
    # The joined file and one more seed: a file of four.
    more = _folder(tmp_path, 3)
    MP.main(["--tasks", "sentiment", "--from", str(out / "compare_sentiment.json"), str(more),
             "--out", str(tmp_path / "out4")])
    assert C.result_from_json((tmp_path / "out4" / "compare_sentiment.json").read_text()).seeds == [0, 1, 2, 3]


def test_from_refuses_what_it_cannot_join(tmp_path):
    zero = _folder(tmp_path, 0)
    with pytest.raises(SystemExit, match="seed 0 given more than once"):
        MP.main(["--tasks", "sentiment", "--from", str(zero), str(zero / "compare_sentiment.json"),
                 "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="no compare_<task>.json"):
        MP.main(["--tasks", "topic", "--from", str(zero), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="no such file"):
        MP.main(["--from", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(SystemExit, match="not a method comparison"):
        MP.main(["--from", str(tmp_path / "bad.json"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_seed_lists_are_checked():
    assert MP.seed_list("0,1,2") == [0, 1, 2] and MP.seed_list("5") == [5]
    for text in ("0,0", "a,b", "-1", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            MP.seed_list(text)


def test_a_compare_row_is_the_train_run_with_the_same_settings(tiny_base, one_thread):
    """Compare differs from Train only in the settings its page names (the learning rate); how
    often either evaluates does not change the training."""
    good = ["a wonderful film", "i loved it", "great acting and story", "truly delightful"]
    bad = ["a dreadful film", "i hated it", "terrible acting and story", "truly boring"]
    texts, labels = tuple(good + bad) * 2, tuple([1] * 4 + [0] * 4) * 2
    task = TextTask("tiny", ("negative", "positive"), texts, labels, texts[:8], labels[:8], "tiny test task")
    compared = C.run_comparison(["goft", "lora"], task, seed=3, steps=4, base=tiny_base, batch_size=4,
                                max_length=16, eval_every=4)
    for key in ("goft", "lora"):
        spec = C.COMPARE_METHODS[key]
        train = TrainingRun(RunConfig(method=spec.method, lr=spec.lr, seed=3, steps=4, batch_size=4, max_length=16,
                                      eval_every=1, task="tiny"), task=task, base=tiny_base)
        for _ in train.run():
            pass
        row, last = compared.row(key), train.history.evals[-1]
        assert (row.accuracy, row.cka) == (last["accuracy"], last["cka"])
