"""benchmarks/quality.py keeps every finished run: an interrupted benchmark resumes, parallel ones merge.

Training is replaced by a stand-in that only counts which (method, rate, seed) runs were
asked for; the bookkeeping (grid pick, reuse of the first seed's grid run, partial
entries, protocol checks) is the benchmark's own.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import quality  # noqa: E402

SEEDS = [0, 1, 2]


class Stop(Exception):
    """Stands for the benchmark being killed."""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "reviews"
    folder.mkdir()
    for split, n in {"train": 8, "validation": 4, "test": 4}.items():
        rows = [{"text": f"{split} {i}", "label": i % 2} for i in range(n)]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


@pytest.fixture
def fake_training(monkeypatch):
    """train/measure stand-ins; `calls` lists (key, lr, seed) trained; `stop_after` kills the run."""
    state = {"calls": [], "stop_after": None}

    def train(key, lr, seed, steps, args, task, base):
        if state["stop_after"] is not None and len(state["calls"]) >= state["stop_after"]:
            raise Stop
        state["calls"].append((key, lr, seed))
        return {"key": key, "lr": lr, "seed": seed}, ""

    def accuracy_on(run, texts, labels):  # the rate nearest 1e-3 wins
        return 1.0 - abs(run["lr"] - 1e-3)

    def measure(key, run, diverged, base_retention):
        return {"key": key, "label": key, "method": key, "trainable_params": 10, "accuracy": 0.5 + run["seed"] / 100,
                "retention_tuned": 0.9, "retention_kept": 1.0, "retention_base": 0.9, "cka": 0.8,
                "he_drift": 0.0, "orth_dev": 0.0, "orth_dev_kind": "rotation", "sec_per_step": 0.1,
                "trained_seed": run["seed"], "trained_lr": run["lr"]}

    monkeypatch.setattr(quality, "train", train)
    monkeypatch.setattr(quality, "accuracy_on", accuracy_on)
    monkeypatch.setattr(quality, "measure", measure)
    monkeypatch.setattr("qgoft_core.explore.models.load_base", lambda *_: None)
    monkeypatch.setattr(sys, "argv", ["benchmarks/quality.py"])
    monkeypatch.setattr(quality, "versions", lambda: {})
    return state


def _argv(data_dir, out, *more):
    return ["--data", str(data_dir), "--train-examples", "8", "--batch-size", "4", "--epochs", "1",
            "--grid", "0.5,1,2", "--seeds", ",".join(map(str, SEEDS)), "--val-examples", "4",
            "--json", str(out), *more]


def test_a_full_run_trains_the_grid_then_the_other_seeds(data_dir, tmp_path, fake_training):
    out = tmp_path / "q.json"
    quality.main(_argv(data_dir, out, "--methods", "head"))
    centre = quality.GRID_CENTER["head"]
    grid = [("head", centre * f, 0) for f in (0.5, 1, 2)]
    pick = min((abs(lr - 1e-3), lr) for _, lr, _ in grid)[1]
    assert fake_training["calls"] == grid + [("head", pick, 1), ("head", pick, 2)]
    method = json.loads(out.read_text())["methods"][0]
    assert not method.get("partial") and method["lr"] == pick
    # the first seed's row is the grid's run at the picked rate, not a retrained one
    assert [(r["seed"], r["trained_lr"]) for r in method["runs"]] == [(s, pick) for s in SEEDS]


def test_an_interrupted_run_keeps_what_finished_and_resumes_from_there(data_dir, tmp_path, fake_training):
    out = tmp_path / "q.json"
    fake_training["stop_after"] = 4  # three grid points and seed 1 finish; seed 2 is killed
    with pytest.raises(Stop):
        quality.main(_argv(data_dir, out, "--methods", "goft"))
    saved = json.loads(out.read_text())["methods"]
    assert [m["key"] for m in saved] == ["goft"] and saved[0]["partial"]
    assert len(saved[0]["grid"]) == 3 and [r["seed"] for r in saved[0]["runs"]] == [0, 1]
    assert "goft" not in json.loads(out.read_text())["markdown"].lower()  # unfinished: not in the table

    fake_training["calls"].clear()
    fake_training["stop_after"] = None
    quality.main(_argv(data_dir, out, "--methods", "goft", "--resume"))
    assert [c[2] for c in fake_training["calls"]] == [2]  # only the missing seed
    method = json.loads(out.read_text())["methods"][0]
    assert not method.get("partial") and [r["seed"] for r in method["runs"]] == SEEDS


def test_resume_skips_complete_methods_and_refuses_another_protocol(data_dir, tmp_path, fake_training):
    out = tmp_path / "q.json"
    quality.main(_argv(data_dir, out, "--methods", "head"))
    fake_training["calls"].clear()
    quality.main(_argv(data_dir, out, "--methods", "head,goft", "--resume"))
    assert {c[0] for c in fake_training["calls"]} == {"goft"}
    assert [m["key"] for m in json.loads(out.read_text())["methods"]] == ["goft", "head"]
    with pytest.raises(SystemExit, match="another protocol"):
        quality.main(_argv(data_dir, out, "--methods", "lora", "--resume") + ["--seeds", "0,1"])


def test_a_known_grid_is_not_rerun(data_dir, tmp_path, fake_training):
    """A resumed file's grid points count: only the missing rate and the seeds are trained."""
    out = tmp_path / "q.json"
    quality.main(_argv(data_dir, out, "--methods", "head"))
    data = json.loads(out.read_text())
    centre = quality.GRID_CENTER["lora"]
    data["methods"].append({"key": "lora", "partial": True, "runs": [],
                            "grid": [{"lr": centre * 0.5, "val_accuracy": 0.9, "diverged": ""},
                                     {"lr": centre, "val_accuracy": 0.95, "diverged": ""}]})
    out.write_text(json.dumps(data))
    fake_training["calls"].clear()
    quality.main(_argv(data_dir, out, "--methods", "lora", "--resume"))
    lrs = [(lr, seed) for _, lr, seed in fake_training["calls"]]
    assert lrs[0] == (centre * 2, 0)  # the one missing grid point
    lora = next(m for m in json.loads(out.read_text())["methods"] if m["key"] == "lora")
    assert lora["lr"] == centre * 2  # the new point validates best (stand-in: nearest 1e-3)...
    assert lrs[1:] == [(centre * 2, 1), (centre * 2, 2)]  # ...so its run is seed 0's: not retrained


def test_pick_rate_prefers_accuracy_then_the_smaller_rate():
    grid = [{"lr": 3e-3, "val_accuracy": 0.8}, {"lr": 1e-3, "val_accuracy": 0.8}, {"lr": 9e-3, "val_accuracy": 0.7}]
    assert quality.pick_rate(grid) == 1e-3
    assert quality.pick_rate([{"lr": 1e-3, "val_accuracy": 0.0}, {"lr": 2e-3, "val_accuracy": 0.1}]) == 2e-3


def test_merge_joins_parallel_files_complete_over_partial(data_dir, tmp_path, fake_training):
    a, b, merged = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "all.json"
    quality.main(_argv(data_dir, a, "--methods", "head"))
    fake_training["stop_after"] = len(fake_training["calls"]) + 2
    with pytest.raises(Stop):  # b: goft unfinished
        quality.main(_argv(data_dir, b, "--methods", "goft"))
    fake_training["stop_after"] = None
    quality.main(_argv(data_dir, a, "--methods", "goft", "--resume"))  # a: goft complete too
    quality.main(["--merge", str(b), str(a), "--json", str(merged)])
    data = json.loads(merged.read_text())
    assert [(m["key"], bool(m.get("partial"))) for m in data["methods"]] == [("goft", False), ("head", False)]
    assert "GOFT" in data["markdown"] or "goft" in data["markdown"]
    other = json.loads(a.read_text())
    other["protocol"]["steps"] = 999
    b.write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="another protocol"):
        quality.main(["--merge", str(a), str(b), "--json", str(merged)])


def test_the_verdict_says_which_gaps_the_spread_supports():
    def method(label, acc, sd, kept, kept_sd):
        return {"key": label.lower(), "label": label, "accuracy": acc, "accuracy_sd": sd,
                "retention_kept": kept, "retention_kept_sd": kept_sd}
    text = quality.spread_verdict([method("A", 0.82, 0.003, 0.97, 0.004), method("B", 0.817, 0.006, 0.986, 0.002),
                                   method("C", 0.757, 0.005, 1.0, 0.0)])
    accuracy, kept = (line for line in text.splitlines() if line.startswith(("Test accuracy", "Skill kept")))
    assert "A > C" in accuracy and "B > C" in accuracy and "A ~ B" in accuracy  # 0.3 < 0.3 + 0.6
    assert "C > B" in kept and "B > A" in kept and "none" in kept.split("Not separated")[1]
