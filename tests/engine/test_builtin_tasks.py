"""Tests for the built-in data sets (package data of qgoft_core.explore.data) and their loader."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # allow plain `pytest` as well as `python -m pytest`
    sys.path.insert(0, str(ROOT))

from qgoft_core.explore.data import tasks  # noqa: E402
from qgoft_core.explore.data.tasks import (  # noqa: E402
    BUILTIN_TASKS,
    SimilarityPairs,
    TextTask,
    load_builtin_task,
    load_retention_pairs,
)

DATA = ROOT / "qgoft_core" / "explore" / "data" / "builtin"
GENERATOR = ROOT / "demos" / "datagen" / "make_builtin_tasks.py"
GENERATED_FILES = ("sentiment.jsonl", "topic.jsonl", "retention_pairs.jsonl", "README.md")

MIN_SIZE = {"sentiment": 1000, "topic": 800}
LABEL_NAMES = {
    "sentiment": ("negative", "positive"),
    "topic": ("sport", "science & technology", "business", "world & politics"),
}


def _rows(filename: str) -> list[dict]:
    with (DATA / filename).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# ---------------------------------------------------------------------------
# classification tasks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_task_size_and_label_names(name):
    task = load_builtin_task(name)
    assert isinstance(task, TextTask)
    assert task.name == name
    assert task.label_names == LABEL_NAMES[name]
    assert task.num_labels == len(LABEL_NAMES[name])
    n = len(task.train_texts) + len(task.test_texts)
    assert n >= MIN_SIZE[name]
    assert len(task.train_texts) == len(task.train_labels)
    assert len(task.test_texts) == len(task.test_labels)
    # roughly 80/20
    assert 0.18 <= len(task.test_texts) / n <= 0.22


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_task_labels_valid_and_balanced(name):
    task = load_builtin_task(name)
    for labels in (task.train_labels, task.test_labels):
        assert all(isinstance(y, int) and 0 <= y < task.num_labels for y in labels)
        counts = Counter(labels)
        assert sorted(counts) == list(range(task.num_labels))
        assert len(set(counts.values())) == 1, f"unbalanced {name} split: {counts}"


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_task_no_duplicates_and_no_overlap(name):
    task = load_builtin_task(name)
    texts = task.train_texts + task.test_texts
    assert len(set(texts)) == len(texts)
    # not even up to case, punctuation and spacing
    assert len({_key(t) for t in texts}) == len(texts)
    assert not {_key(t) for t in task.train_texts} & {_key(t) for t in task.test_texts}


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_task_texts_are_clean(name):
    task = load_builtin_task(name)
    for text in task.train_texts + task.test_texts:
        assert text == text.strip()
        assert "  " not in text
        assert "{" not in text and "}" not in text, f"unfilled template: {text!r}"
        assert 4 <= len(text.split()) <= 35, text


@pytest.mark.parametrize("filename,fields", [
    ("sentiment.jsonl", {"text", "label", "split", "domain"}),
    ("topic.jsonl", {"text", "label", "split"}),
])
def test_file_records_have_exact_fields(filename, fields):
    for row in _rows(filename):
        assert set(row) == fields
        assert row["split"] in ("train", "test")


def test_sentiment_domains_balanced():
    rows = _rows("sentiment.jsonl")
    domains = ("film", "product", "restaurant", "app")
    assert {r["domain"] for r in rows} == set(domains)
    for split in ("train", "test"):
        cells = Counter((r["domain"], r["label"]) for r in rows if r["split"] == split)
        assert len(cells) == 2 * len(domains)
        assert len(set(cells.values())) == 1, f"{split}: {cells}"


def test_sentiment_covers_negation_and_contrast():
    rows = _rows("sentiment.jsonl")
    by_label = {0: [], 1: []}
    for r in rows:
        by_label[r["label"]].append(r["text"].lower())
    for label in (0, 1):
        texts = by_label[label]
        negated = [t for t in texts if re.search(r"\b(not|n't|never|no)\b", t)]
        contrast = [t for t in texts if re.search(r"\b(but|although)\b", t)]
        assert len(negated) >= 50, (label, len(negated))
        assert len(contrast) >= 50, (label, len(contrast))
    assert any(t.startswith("not bad at all") for t in by_label[1])
    assert any(t.startswith("not worth") for t in by_label[0])


def test_task_is_cached_and_frozen():
    task = load_builtin_task("topic")
    assert load_builtin_task("topic") is task
    with pytest.raises(AttributeError):
        task.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["", "Sentiment", "sst2", "news"])
def test_unknown_task_name(name):
    with pytest.raises(ValueError) as info:
        load_builtin_task(name)
    message = str(info.value)
    assert repr(name) in message
    for valid in BUILTIN_TASKS:
        assert valid in message


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_card_mentions_source_size_and_labels(name):
    task = load_builtin_task(name)
    assert "qGOFT Explorer" in task.card
    assert f"{len(task.train_texts)} train" in task.card
    assert f"{len(task.test_texts)} test" in task.card
    for label in task.label_names:
        assert label in task.card


def test_text_task_validates_its_fields():
    ok = dict(
        name="x", label_names=("a", "b"), train_texts=("t",), train_labels=(0,),
        test_texts=("u",), test_labels=(1,), card="",
    )
    assert TextTask(**ok).num_labels == 2
    with pytest.raises(ValueError):
        TextTask(**{**ok, "train_labels": (0, 1)})
    with pytest.raises(ValueError):
        TextTask(**{**ok, "test_labels": (2,)})
    with pytest.raises(ValueError):
        TextTask(**{**ok, "label_names": ("a",)})


# ---------------------------------------------------------------------------
# retention pairs
# ---------------------------------------------------------------------------


def test_retention_pairs_size_and_range():
    pairs = load_retention_pairs()
    assert isinstance(pairs, SimilarityPairs)
    assert len(pairs) >= 300
    assert len(pairs.a) == len(pairs.b) == len(pairs.scores)
    assert all(isinstance(s, float) and 0.0 <= s <= 5.0 for s in pairs.scores)
    assert all(a.strip() and b.strip() and a != b for a, b in zip(pairs.a, pairs.b))
    assert load_retention_pairs() is pairs


def test_retention_pairs_spread_over_scale():
    scores = load_retention_pairs().scores
    bins = Counter(min(int(s), 4) for s in scores)
    assert all(bins[b] >= 30 for b in range(5)), bins
    assert max(scores) == 5.0 and min(scores) == 0.0


def test_retention_pairs_unique():
    pairs = load_retention_pairs()
    keys = [frozenset((_key(a), _key(b))) for a, b in zip(pairs.a, pairs.b)]
    assert len(set(keys)) == len(keys)


def test_similarity_pairs_validates_its_fields():
    with pytest.raises(ValueError):
        SimilarityPairs(a=("x",), b=("y", "z"), scores=(1.0,))
    with pytest.raises(ValueError):
        SimilarityPairs(a=("x",), b=("y",), scores=(5.5,))


# ---------------------------------------------------------------------------
# loader module hygiene and generator determinism
# ---------------------------------------------------------------------------


def test_loader_has_no_heavy_imports():
    code = (
        "import sys, qgoft_core.explore.data.tasks; "
        "heavy = [m for m in ('torch', 'gradio', 'numpy', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_data_dir_is_next_to_module():
    assert tasks.DATA_DIR == Path(tasks.__file__).parent / "builtin"


def test_generator_is_deterministic(tmp_path):
    """Rebuilding into a temporary folder reproduces the committed files exactly."""
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    for filename in GENERATED_FILES:
        fresh = (tmp_path / filename).read_bytes()
        committed = (DATA / filename).read_bytes()
        assert fresh == committed, f"{filename} differs from a fresh build; rerun {GENERATOR.name}"
