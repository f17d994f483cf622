"""benchmarks/quality.py: where the data comes from, and the messages when it is not there.

No training here: the valid case only checks that the splits load (and that main gets
past the data step).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import quality  # noqa: E402

SPLIT_SIZES = {"train": 12, "validation": 4, "test": 4}  # 20 rows in all


def _write_split(folder: Path, split: str, n: int) -> None:
    rows = [{"text": f"{split} review {i}: {'great' if i % 2 else 'dull'} film", "label": i % 2}
            for i in range(n)]
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "reviews"
    folder.mkdir()
    for split, n in SPLIT_SIZES.items():
        _write_split(folder, split, n)
    return folder


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    # main() reads sys.argv for --hub and sets HF_HUB_OFFLINE by setdefault: keep both local to a test.
    monkeypatch.setattr(sys, "argv", ["benchmarks/quality.py"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _exit_message(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        quality.main(argv)
    message = info.value.code
    assert isinstance(message, str), f"expected a message, got exit code {message!r}"
    return message


def _says_where_data_comes_from(message: str) -> None:
    for part in ("--data", "--hub", "rotten_tomatoes", "Pang & Lee", "train.jsonl", "validation.jsonl",
                 "test.jsonl"):
        assert part in message, (part, message)


# -- no data source -----------------------------------------------------------------
def test_no_default_data_path():
    args = quality.parse_args([])
    assert args.data is None and args.hub is False
    assert not hasattr(quality, "DEFAULT_DATA")


def test_neither_data_nor_hub_exits_with_a_clear_message():
    message = _exit_message([])
    assert message.startswith("No data given.")
    _says_where_data_comes_from(message)


def test_neither_data_nor_hub_from_the_command_line():
    proc = subprocess.run([sys.executable, "benchmarks/quality.py", "--dry-run", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    _says_where_data_comes_from(proc.stderr)


def test_data_and_hub_together_are_refused(data_dir, capsys):
    with pytest.raises(SystemExit) as info:
        quality.parse_args(["--data", str(data_dir), "--hub"])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_help_says_where_the_data_comes_from(capsys):
    with pytest.raises(SystemExit):
        quality.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--data DIR" in out and "--hub" in out
    assert "Pang & Lee 2005" in out and "rotten_tomatoes" in out


# -- --data pointing at nothing useful --------------------------------------------------
def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    message = _exit_message(["--data", str(missing)])
    assert f"--data {missing}: no such folder" in message
    _says_where_data_comes_from(message)


def test_data_is_a_file_not_a_folder(data_dir):
    message = _exit_message(["--data", str(data_dir / "train.jsonl")])
    assert "no such folder" in message


def test_missing_files(tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    _write_split(folder, "train", 12)
    message = _exit_message(["--data", str(folder)])
    assert f"--data {folder}: missing validation.jsonl, test.jsonl" in message
    _says_where_data_comes_from(message)


def test_load_splits_messages_without_main(tmp_path):
    with pytest.raises(SystemExit, match="No data given"):
        quality.load_splits(None, hub=False)
    with pytest.raises(SystemExit, match="no such folder"):
        quality.load_splits(tmp_path / "nowhere", hub=False)


# -- --hub without the hub ------------------------------------------------------------------
def _fake_datasets(monkeypatch, error: Exception) -> None:
    module = types.ModuleType("datasets")

    def load_dataset(*args, **kwargs):
        raise error

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)


def test_hub_without_the_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    message = _exit_message(["--hub"])
    assert "'datasets' package" in message
    assert "Pass --data DIR instead" in message


def test_hub_while_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_datasets(monkeypatch, ConnectionError("Couldn't reach 'rotten_tomatoes' on the Hub (LocalEntryNotFoundError)"))
    message = _exit_message(["--hub"])
    assert "HF_HUB_OFFLINE is set" in message
    assert "Pass --data DIR instead" in message
    assert "Traceback" not in message


def test_hub_download_fails(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _fake_datasets(monkeypatch, OSError("Temporary failure in name resolution\nmore detail"))
    message = _exit_message(["--hub"])
    assert "could not load 'rotten_tomatoes'" in message
    assert "OSError: Temporary failure in name resolution" in message
    assert "more detail" not in message  # only the first line of the error
    assert "Pass --data DIR instead" in message
    assert "HF_HUB_OFFLINE" not in message


def test_hub_with_the_real_package_offline(monkeypatch, tmp_path):
    """With `datasets` installed, offline and an empty cache: the message, not a traceback."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    message = _exit_message(["--hub"])
    assert "Pass --data DIR instead" in message


def test_hub_loads_when_datasets_answers(monkeypatch):
    rows = {split: {"text": [f"{split} {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
            for split, n in SPLIT_SIZES.items()}
    module = types.ModuleType("datasets")
    module.load_dataset = lambda name: rows if name == "rotten_tomatoes" else None
    monkeypatch.setitem(sys.modules, "datasets", module)
    splits = quality.load_splits(None, hub=True)
    assert {k: len(v[0]) for k, v in splits.items()} == SPLIT_SIZES


# -- a valid folder ----------------------------------------------------------------------------
def test_valid_folder_loads(data_dir):
    args = quality.parse_args(["--data", str(data_dir)])
    assert args.data == data_dir and not args.hub
    splits = quality.load_splits(args.data, args.hub)
    assert set(splits) == {"train", "validation", "test"}
    for split, n in SPLIT_SIZES.items():
        texts, labels = splits[split]
        assert len(texts) == len(labels) == n
        assert set(labels) == {0, 1} and all(isinstance(t, str) for t in texts)
    assert splits["train"][0][1] == "train review 1: great film"


def test_main_gets_past_the_data_step(data_dir, monkeypatch):
    """main reads the folder and goes on to load the model (stopped there: no training)."""
    import importlib

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    for name in ("qgoft_core.models", "qgoft_core.explore.models"):  # before / after the package move
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "load_base"):
            monkeypatch.setattr(module, "load_base", stop)
    with pytest.raises(Stop):
        quality.main(["--data", str(data_dir), "--dry-run", "1"])
